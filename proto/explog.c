/* explog.c - exp and log without libm, for the sampler (palloc_log: the exponential intervals
 * between samples, alloc/countdown.c) and the unsampling of profiles (palloc_exp: scale.c).
 *
 * Why not libm: loading libm.so.6 costs every process that preloads libpalloc ~330 KB of
 * resident memory (its IFUNC resolvers run at load time and touch text pages all over the
 * library, which the kernel's fault-around maps 64 KB at a time), more than libpalloc itself.
 * palloc needs two functions from it. palloc_exp and palloc_log are fdlibm's e_exp.c and
 * e_log.c algorithms (argument reduction by ln2, a minimax polynomial on the reduced range;
 * error < 1 ulp, as glibc's), in plain C on the IEEE bit patterns.
 */
#include <stdint.h>
#include <string.h>
#include "explog.h"

static uint64_t bits(double x) {
  uint64_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}
static double from_bits(uint64_t u) {
  double x;
  memcpy(&x, &u, sizeof x);
  return x;
}

static const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;

double palloc_exp(double x) {
  static const double invln2 = 1.44269504088896338700e+00, P1 = 1.66666666666666019037e-01,
                      P2 = -2.77777777770155933842e-03, P3 = 6.61375632143793436117e-05,
                      P4 = -1.65339022054652515390e-06, P5 = 4.13813679705723846039e-08;
  if (x != x) return x;                          /* NaN */
  if (x > 7.09782712893383973096e+02) return from_bits(0x7ff0000000000000ull); /* +inf */
  if (x < -7.45133219101941108420e+02) return 0; /* underflow */
  double hi = 0, lo = 0;
  int k = 0;
  double ax = x < 0 ? -x : x;
  if (ax > 0.5 * 6.93147180559945286227e-01) {
    /* x = k*ln2 + r, |r| <= 0.5*ln2; ln2 split in two so that k*ln2_hi is exact. */
    k = (int)(invln2 * x + (x < 0 ? -0.5 : 0.5));
    hi = x - k * ln2_hi;
    lo = k * ln2_lo;
    x = hi - lo;
  } else if (ax < 3.7252902984e-09) { /* 2^-28: exp(x) = 1 + x to double precision */
    return 1.0 + x;
  }
  double t = x * x;
  double c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return 1.0 - ((x * c) / (c - 2.0) - x);
  double y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi);
  /* y * 2^k, through the exponent field; k < -1021 would make a subnormal: scale in two steps. */
  if (k >= -1021) return from_bits(bits(y) + ((uint64_t)(int64_t)k << 52));
  return from_bits(bits(y) + ((uint64_t)(int64_t)(k + 1000) << 52)) * 9.33263618503218878990e-302;
}

double palloc_log(double x) {
  static const double two54 = 1.80143985094819840000e+16, Lg1 = 6.666666666666735130e-01,
                      Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
                      Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01,
                      Lg6 = 1.531383769920937332e-01, Lg7 = 1.479819860511658591e-01;
  uint64_t u = bits(x);
  int32_t hx = (int32_t)(u >> 32);
  uint32_t lx = (uint32_t)u;
  int k = 0;
  if (hx < 0x00100000) {                               /* x < 2^-1022 */
    if (((hx & 0x7fffffff) | lx) == 0) return -from_bits(0x7ff0000000000000ull); /* -inf */
    if (hx < 0) return from_bits(0x7ff8000000000000ull); /* log(negative) = NaN */
    k -= 54;                                            /* subnormal: scale up */
    x *= two54;
    u = bits(x);
    hx = (int32_t)(u >> 32);
  }
  if (hx >= 0x7ff00000) return x + x; /* inf or NaN */
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  int32_t i = (hx + 0x95f64) & 0x100000;
  /* x (or x/2) normalized into [sqrt(2)/2, sqrt(2)); log(x) = k*ln2 + log(1+f) */
  x = from_bits(((uint64_t)(uint32_t)(hx | (i ^ 0x3ff00000)) << 32) | (u & 0xffffffffull));
  k += i >> 20;
  double f = x - 1.0, dk = (double)k;
  if ((0x000fffff & (2 + hx)) < 3) { /* |f| < 2^-20 */
    if (f == 0) return k == 0 ? 0 : dk * ln2_hi + dk * ln2_lo;
    double R = f * f * (0.5 - 0.33333333333333333 * f);
    return k == 0 ? f - R : dk * ln2_hi - ((R - dk * ln2_lo) - f);
  }
  double s = f / (2.0 + f), z = s * s, w = z * z;
  int32_t j = 0x6b851 - hx;
  i = hx - 0x6147a;
  double t1 = w * (Lg2 + w * (Lg4 + w * Lg6)), t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
  double R = t2 + t1;
  if ((i | j) > 0) {
    double hfsq = 0.5 * f * f;
    return k == 0 ? f - (hfsq - s * (hfsq + R))
                  : dk * ln2_hi - ((hfsq - (s * (hfsq + R) + dk * ln2_lo)) - f);
  }
  return k == 0 ? f - s * (f - R) : dk * ln2_hi - ((s * (f - R) - dk * ln2_lo) - f);
}

double palloc_sqrt(double x) {
  if (!(x >= 0)) return 0.0 / 0.0; /* NaN, negative */
#if defined(__x86_64__)
  double r;
  __asm__("sqrtsd %1, %0" : "=x"(r) : "x"(x));
  return r;
#else
  /* Newton's iteration from the halved exponent: quadratic convergence, 8 steps from any start
   * within a factor 2 reach the last bit for every finite double. */
  if (x == 0 || x != x || x > 1.7976931348623157e308) return x;
  uint64_t u = bits(x);
  double r = from_bits(((u >> 1) + (0x3ffull << 51)) & 0x7fffffffffffffffull);
  for (int i = 0; i < 8; i++) r = 0.5 * (r + x / r);
  return r;
#endif
}
