// cxxnames.cc - a C++ program whose allocation sites have the names C++ users read: a class
// template in a namespace, an anonymous namespace, a lambda, operator new directly and through
// std::vector. tests/tools/cxxnames.sh profiles it and looks for the demangled names in every
// palloc command. argv[1] scales the work, so that two runs make a diff.
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace app {
template <class T> struct Cache {
  std::vector<T *> items;
  __attribute__((noinline)) void insert(T v) { items.push_back(new T(v)); }
};

namespace {
__attribute__((noinline)) std::vector<std::string> *build_index(int n) {
  auto *v = new std::vector<std::string>();
  for (int i = 0; i < n; i++) v->push_back(std::string(100 + i % 50, 'x'));
  return v;
}
} // namespace

__attribute__((noinline)) void run(int n, std::vector<void *> &keep) {
  Cache<int> ci;
  for (int i = 0; i < n * 100; i++) ci.insert(i);
  Cache<double> cd;
  for (int i = 0; i < n * 50; i++) cd.insert(i);
  auto grab = [&keep](int size) { keep.push_back(operator new(size)); };
  for (int i = 0; i < n * 20; i++) grab(4096);
  keep.push_back(build_index(n * 10));
  for (int *p : ci.items) keep.push_back(p);
  for (double *p : cd.items) keep.push_back(p);
}
} // namespace app

int main(int argc, char **argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 10;
  static std::vector<void *> keep; // reachable at exit: in use in the profile
  app::run(n, keep);
  return 0;
}
