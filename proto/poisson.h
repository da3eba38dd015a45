/* poisson.h - the uncertainty of an estimate unsampled from heap samples: one helper for
 * libpalloc (the leak report, the peak profile's comments) and the tools (`palloc top`'s and
 * `palloc diff`'s +- columns). Header only; exp and sqrt are explog.c's (no libm in libpalloc).
 *
 * The model (../shared/docs/profiling.md, section 1). Sampling is a Poisson process over bytes
 * at mean interval R, so each object of size s is sampled, independently, with probability
 * p = 1 - exp(-s/R). A bucket of n objects of size s yields k ~ Binomial(n, p) samples; the
 * estimate is n^ = k / p objects and n^ s bytes (Go's scaleHeapSample, with s the bucket's
 * average sampled size), and
 *     Var(n^) = n (1 - p) / p,  estimated from the samples actually taken as  k (1 - p) / p^2.
 * For small objects (p << 1) that is Poisson's Var(k) = k: a relative standard error of
 * 1/sqrt(k). At rate 1 (p = 1) every object is sampled and the variance is 0: exact.
 *
 * The interval of one bucket is the score (Wilson) interval of the mean m = n p of k, solving
 * (k - m)^2 = z^2 m (1 - p) for m: its coverage holds for k of a few samples, where the plain
 * k +- z sqrt(k) interval does not (it is [0, 0] at k = 0 and too narrow below ~10). A total over
 * independent buckets adds their variances: palloc_est_add, then palloc_est_close for a normal
 * interval (many buckets, many samples: the sum is close to normal).
 */
#ifndef PALLOC_POISSON_H
#define PALLOC_POISSON_H
#include <stdint.h>
#include "explog.h"

#define PALLOC_Z95 1.959963984540054 /* two-sided 95% */
#define PALLOC_Z997 3.0              /* the leak gate's "more than the noise": 3 standard errors */

typedef struct palloc_est_s {
  double value;  /* the estimate */
  double var;    /* its variance, estimated from the samples (0: exact) */
  double lo, hi; /* the interval at the z it was made with */
} palloc_est_t;

/* The probability that an object of size avg is sampled at rate (1 at rate <= 1). */
static inline double palloc_sample_prob(double avg, int64_t rate) {
  if (rate <= 1) return 1.0;
  if (!(avg > 0)) return 0.0;
  return 1.0 - palloc_exp(-avg / (double)rate);
}

/* What one sampled object of size s stands for, in bytes: s / p(s), Go's scaleHeapSample of one
 * object (s at rate <= 1, 0 for s <= 0). It is rate * g(x), x = s / rate, g(x) = x / (1 - e^-x),
 * and for x <= 1/2 g is summed from its Taylor series (Bernoulli numbers): the first term left
 * out, (3617/510) x^16 / 16!, is under 2^-57 of g there, so the sum is g to the double's precision,
 * closer than 1 - exp(-x) divided into s, which loses leading bits of a small x to cancellation.
 * It costs a division and a few multiplications, not palloc_exp's ~70 instructions: the sampled
 * paths weigh every sampled allocation and free with it (alloc/peak.c, alloc/usdt.h). */
static inline double palloc_sample_weight(double s, int64_t rate) {
  if (rate <= 1) return s;
  if (!(s > 0)) return 0.0;
  double r = (double)rate, x = s / r;
  if (!(x <= 0.5)) return s / (1.0 - palloc_exp(-x));
  double z = x * x;
  if (x <= 0.125) /* the first term left out, x^10 / 47900160, is under 2^-55 of g */
    return r * (1.0 + 0.5 * x +
                z * (1.0 / 12 + z * (-1.0 / 720 + z * (1.0 / 30240 - z * (1.0 / 1209600)))));
  return r * (1.0 + 0.5 * x +
              z * (1.0 / 12 +
                   z * (-1.0 / 720 +
                        z * (1.0 / 30240 +
                             z * (-1.0 / 1209600 +
                                  z * (1.0 / 47900160 +
                                       z * (-691.0 / 1307674368000.0 +
                                            z * (1.0 / 74724249600.0))))))));
}

/* k samples holding bytes requested bytes in all, at rate: the estimate of the true number of
 * objects (which = PALLOC_EST_OBJECTS) or bytes (PALLOC_EST_BYTES) they stand for, its variance,
 * and its interval at z. The sampling probability is that of their average size. */
enum { PALLOC_EST_OBJECTS = 0, PALLOC_EST_BYTES = 1 };
static inline palloc_est_t palloc_est_samples(double k, double bytes, int64_t rate, int which,
                                              double z) {
  palloc_est_t e = {0, 0, 0, 0};
  if (!(k > 0) || !(bytes > 0)) return e;
  double avg = bytes / k;
  double p = palloc_sample_prob(avg, rate);
  if (!(p > 0)) return e;
  double w = (which == PALLOC_EST_BYTES ? avg : 1.0) / p; /* what one sample stands for */
  double q = 1.0 - p, c = z * z * q;
  e.value = k * w;
  e.var = k * q * w * w;
  double r = palloc_sqrt(c * k + c * c / 4);
  double lo = k + c / 2 - r, hi = k + c / 2 + r; /* bounds of n p, the mean of k */
  e.lo = (lo > 0 ? lo : 0) * w;
  e.hi = hi * w;
  return e;
}

/* The same from a profile's scaled values (what a reader has): objects and space estimated by
 * scaleHeapSample at the profile's rate (its period). The samples behind them are recovered as
 * k = objects * p, p the sampling probability of the average size space / objects. */
static inline palloc_est_t palloc_est_scaled(int64_t objects, int64_t space, int64_t rate,
                                             int which, double z) {
  palloc_est_t e = {0, 0, 0, 0};
  if (objects <= 0 || space <= 0) {
    e.value = which == PALLOC_EST_BYTES ? (double)space : (double)objects;
    e.lo = e.hi = e.value;
    return e;
  }
  double avg = (double)space / (double)objects;
  double k = (double)objects * palloc_sample_prob(avg, rate);
  return palloc_est_samples(k, k * avg, rate, which, z);
}

/* Sums of independent estimates: add each, then make the interval of the sum. */
static inline void palloc_est_add(palloc_est_t *sum, const palloc_est_t *e) {
  sum->value += e->value;
  sum->var += e->var;
}
static inline double palloc_est_se(const palloc_est_t *e) { return palloc_sqrt(e->var); }
static inline void palloc_est_close(palloc_est_t *e, double z) {
  double h = z * palloc_est_se(e);
  e->lo = e->value > h ? e->value - h : 0;
  e->hi = e->value + h;
}

#endif
