/* explog.h - exp and log without libm (explog.c says why), for libpalloc's sampler and the
 * unsampling of profiles (scale.c). fdlibm's algorithms: error < 1 ulp. */
#ifndef PALLOC_EXPLOG_H
#define PALLOC_EXPLOG_H

double palloc_exp(double x);
double palloc_log(double x);
/* sqrt(x) for x >= 0 (NaN otherwise), correctly rounded: the sqrtsd instruction where there is
 * one, so that no call to libm's sqrt (kept for errno) is emitted. */
double palloc_sqrt(double x);

#endif
