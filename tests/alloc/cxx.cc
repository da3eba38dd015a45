// cxx.cc - a C++ program that must work unchanged under libpalloc: operator new/delete
// (through libstdc++'s, which call malloc), containers, strings, exceptions, threads.
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static long build(int n) {
  std::map<std::string, std::vector<int>> m;
  for (int i = 0; i < n; i++) m["key" + std::to_string(i % 997)].push_back(i);
  long s = 0;
  for (auto &kv : m) s += (long)kv.second.size() * (long)kv.first.size();
  return s;
}

int main() {
  long total = 0;
  std::vector<std::thread> ts;
  std::vector<long> out(4);
  for (int t = 0; t < 4; t++) ts.emplace_back([t, &out] { out[t] = build(100000 + t); });
  for (auto &t : ts) t.join();
  for (long v : out) total += v;
  int caught = 0;
  for (int i = 0; i < 1000; i++) {
    try {
      auto p = std::make_unique<std::vector<double>>(1000);
      throw std::runtime_error("boom " + std::to_string(p->size()));
    } catch (const std::exception &e) {
      caught += e.what()[0] == 'b';
    }
  }
  std::printf("total %ld caught %d\n", total, caught);
  return 0;
}
