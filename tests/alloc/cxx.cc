// cxx.cc - a C++ program that must work unchanged under libpalloc: operator new/delete,
// containers, strings, exceptions, threads.
//
// `cxx_prog ops` instead calls every replaceable operator new and delete (C++17) and checks
// their contracts: alignment of aligned new (alignas 256, 4096, 65536), new(0) unique,
// delete(nullptr) a no-op, the new_handler loop (a handler that frees a reserve lets the
// request succeed; one that uninstalls itself ends in bad_alloc; one that throws makes a
// nothrow new return nullptr), bad_alloc with no handler, nothrow's nullptr. It prints only
// what any correct implementation prints (the plain run is the reference), and allocates
// OBJECTS objects in new_object_here, for the profile's alloc_objects at PALLOC_SAMPLE_RATE=1.
#include <sys/mman.h>
#include <sys/resource.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
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

static int failures;
static void expect(bool ok, const char *what) {
  if (!ok) {
    std::printf("FAIL %s\n", what);
    failures++;
  }
}

struct Obj { long v[5]; };
enum { OBJECTS = 8000 };
static Obj *objs[OBJECTS];
__attribute__((noinline)) void new_object_here(int i) { objs[i] = new Obj{{i, 0, 0, 0, 0}}; }

struct alignas(256) A256 { char c[300]; };
struct alignas(4096) A4096 { char c[5000]; };
struct alignas(65536) A65536 { char c[100]; };
template <class T> static bool aligned_to(T *p) {
  return p != nullptr && (reinterpret_cast<uintptr_t>(p) & (alignof(T) - 1)) == 0;
}
template <class T> static void check_aligned(const char *name) {
  T *one = new T;              // operator new(size_t, align_val_t)
  T *arr = new T[3];           // operator new[](size_t, align_val_t)
  T *nt = new (std::nothrow) T; // operator new(size_t, align_val_t, nothrow_t)
  T *ntarr = new (std::nothrow) T[2];
  bool ok = aligned_to(one) && aligned_to(arr) && aligned_to(nt) && aligned_to(ntarr);
  std::memset(one, 1, sizeof *one);
  std::memset(arr, 2, 3 * sizeof *arr);
  std::memset(nt, 3, sizeof *nt);
  std::memset(ntarr, 4, 2 * sizeof *ntarr);
  delete one;                  // sized aligned delete (sized deallocation is on in C++14)
  delete[] arr;
  ::operator delete(nt, std::align_val_t(alignof(T)), std::nothrow);
  ::operator delete[](ntarr, std::align_val_t(alignof(T)), std::nothrow);
  std::printf("aligned new %s: %s\n", name, ok ? "ok" : "MISALIGNED");
  failures += !ok;
}

static const size_t HUGE_REQUEST = (size_t)1 << 62;
static int handler_calls;
static void *reserve;
static size_t reserve_size;
static void free_reserve() { // a handler that frees memory, after which the request succeeds
  handler_calls++;
  if (reserve != nullptr) munmap(reserve, reserve_size);
  reserve = nullptr;
  if (handler_calls > 10) std::set_new_handler(nullptr);
}
static void give_up_after_3() {
  if (++handler_calls == 3) std::set_new_handler(nullptr);
}
static void throw_bad_alloc() {
  handler_calls++;
  throw std::bad_alloc();
}

static size_t vm_size() {
  FILE *f = std::fopen("/proc/self/statm", "r");
  unsigned long pages = 0;
  if (f != nullptr) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  return pages * 4096;
}

// Under RLIMIT_AS, a request that fits only once the reserve is unmapped: the handler frees it
// and the next try succeeds.
template <class Alloc> static void handler_frees_reserve(const char *name, Alloc alloc) {
  struct rlimit old;
  getrlimit(RLIMIT_AS, &old);
  reserve_size = (size_t)512 << 20;
  reserve = mmap(nullptr, reserve_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (reserve == MAP_FAILED) {
    std::printf("FAIL %s: no reserve\n", name);
    failures++;
    return;
  }
  struct rlimit lim = old;
  lim.rlim_cur = vm_size() + ((size_t)128 << 20);
  setrlimit(RLIMIT_AS, &lim);
  handler_calls = 0;
  std::set_new_handler(free_reserve);
  void *p = nullptr;
  try {
    p = alloc((size_t)384 << 20);
  } catch (const std::bad_alloc &) {
  }
  std::set_new_handler(nullptr);
  setrlimit(RLIMIT_AS, &old);
  bool ok = p != nullptr && handler_calls == 1 && reserve == nullptr;
  std::printf("%s: handler frees a reserve, then succeeds: %s\n", name, ok ? "ok" : "FAIL");
  failures += !ok;
  if (reserve != nullptr) munmap(reserve, reserve_size);
  reserve = nullptr;
  if (p != nullptr) std::memset(p, 5, 4096);
  ::operator delete(p);
}

static int ops() {
  // Every new and delete by name, in pairs.
  void *p;
  p = ::operator new(24); std::memset(p, 1, 24); ::operator delete(p);
  p = ::operator new(24); std::memset(p, 1, 24); ::operator delete(p, 24);
  p = ::operator new(24, std::nothrow); expect(p != nullptr, "new nothrow"); ::operator delete(p, std::nothrow);
  p = ::operator new[](40); std::memset(p, 1, 40); ::operator delete[](p);
  p = ::operator new[](40); std::memset(p, 1, 40); ::operator delete[](p, 40);
  p = ::operator new[](40, std::nothrow); expect(p != nullptr, "new[] nothrow"); ::operator delete[](p, std::nothrow);
  const std::align_val_t al{128};
  p = ::operator new(100, al); expect(((uintptr_t)p & 127) == 0, "new aligned"); ::operator delete(p, al);
  p = ::operator new(100, al); expect(((uintptr_t)p & 127) == 0, "new aligned"); ::operator delete(p, 100, al);
  p = ::operator new(100, al, std::nothrow); expect(((uintptr_t)p & 127) == 0, "new aligned nothrow"); ::operator delete(p, al, std::nothrow);
  p = ::operator new[](100, al); expect(((uintptr_t)p & 127) == 0, "new[] aligned"); ::operator delete[](p, al);
  p = ::operator new[](100, al); expect(((uintptr_t)p & 127) == 0, "new[] aligned"); ::operator delete[](p, 100, al);
  p = ::operator new[](100, al, std::nothrow); expect(((uintptr_t)p & 127) == 0, "new[] aligned nothrow"); ::operator delete[](p, al, std::nothrow);
  // Sized deletes of every small size, through the thread cache and back out of it.
  for (int round = 0; round < 3; round++) {
    std::vector<std::pair<void *, size_t>> v;
    for (size_t n = 0; n <= 3000; n += 7) {
      void *q = ::operator new(n);
      std::memset(q, 7, n);
      v.push_back({q, n});
    }
    for (auto &e : v) ::operator delete(e.first, e.second);
  }
  // delete(nullptr) does nothing, sized or not.
  ::operator delete(nullptr); ::operator delete(nullptr, 8); ::operator delete[](nullptr);
  ::operator delete[](nullptr, 8); ::operator delete(nullptr, al); ::operator delete(nullptr, 8, al);
  ::operator delete(nullptr, std::nothrow); ::operator delete(nullptr, al, std::nothrow);
  // new(0) gives distinct pointers.
  void *z1 = ::operator new(0), *z2 = ::operator new(0), *z3 = ::operator new[](0);
  expect(z1 != nullptr && z2 != nullptr && z3 != nullptr && z1 != z2 && z2 != z3 && z1 != z3, "new(0) unique");
  ::operator delete(z1); ::operator delete(z2, (size_t)0); ::operator delete[](z3);
  std::printf("operators by name: %s\n", failures ? "FAIL" : "ok");

  check_aligned<A256>("alignas(256)");
  check_aligned<A4096>("alignas(4096)");
  check_aligned<A65536>("alignas(65536)");

  // Failure without a handler: bad_alloc, or nullptr from the nothrow forms.
  bool threw = false;
  try { p = ::operator new(HUGE_REQUEST); } catch (const std::bad_alloc &) { threw = true; }
  bool threw_al = false;
  try { p = ::operator new[](HUGE_REQUEST, al); } catch (const std::bad_alloc &) { threw_al = true; }
  void *nt = ::operator new(HUGE_REQUEST, std::nothrow);
  void *nt_al = ::operator new[](HUGE_REQUEST, al, std::nothrow);
  std::printf("no handler: bad_alloc %d %d, nothrow %s %s\n", threw, threw_al,
              nt ? "non-null" : "null", nt_al ? "non-null" : "null");
  failures += !threw + !threw_al + (nt != nullptr) + (nt_al != nullptr);

  // The handler loop reads the handler anew each time: this one uninstalls itself at its 3rd.
  handler_calls = 0;
  std::set_new_handler(give_up_after_3);
  threw = false;
  try { p = ::operator new(HUGE_REQUEST); } catch (const std::bad_alloc &) { threw = true; }
  std::printf("handler uninstalls itself: %d calls, bad_alloc %d\n", handler_calls, threw);
  failures += handler_calls != 3 || !threw;
  handler_calls = 0;
  std::set_new_handler(give_up_after_3);
  nt = ::operator new(HUGE_REQUEST, std::nothrow);
  std::printf("nothrow, handler uninstalls itself: %d calls, %s\n", handler_calls, nt ? "non-null" : "null");
  failures += handler_calls != 3 || nt != nullptr;
  // A handler that throws: the throwing new passes the exception on, nothrow returns nullptr.
  handler_calls = 0;
  std::set_new_handler(throw_bad_alloc);
  threw = false;
  try { p = ::operator new(HUGE_REQUEST, al); } catch (const std::bad_alloc &) { threw = true; }
  nt = ::operator new(HUGE_REQUEST, std::nothrow);
  nt_al = ::operator new[](HUGE_REQUEST, al, std::nothrow);
  std::set_new_handler(nullptr);
  std::printf("handler throws: %d calls, bad_alloc %d, nothrow %s %s\n", handler_calls, threw,
              nt ? "non-null" : "null", nt_al ? "non-null" : "null");
  failures += handler_calls != 3 || !threw || nt != nullptr || nt_al != nullptr;

  handler_frees_reserve("new", [](size_t n) { return ::operator new(n); });
  handler_frees_reserve("new[] aligned", [](size_t n) { return ::operator new[](n, std::align_val_t(4096)); });
  handler_frees_reserve("new nothrow", [](size_t n) { return ::operator new(n, std::nothrow); });
  handler_frees_reserve("new aligned nothrow",
                        [](size_t n) { return ::operator new(n, std::align_val_t(64), std::nothrow); });

  // OBJECTS objects at one site, half of them deleted (sized delete): alloc_objects counts all.
  for (int i = 0; i < OBJECTS; i++) new_object_here(i);
  long sum = 0;
  for (int i = 0; i < OBJECTS; i++) sum += objs[i]->v[0];
  for (int i = 0; i < OBJECTS; i += 2) delete objs[i];
  std::printf("%d objects, sum %ld\n", (int)OBJECTS, sum);
  std::printf("%s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && std::strcmp(argv[1], "ops") == 0) return ops();
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
