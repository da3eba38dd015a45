/* explog.h - exp and log without libm (explog.c says why), for libpalloc's sampler and the
 * unsampling of profiles (scale.c). fdlibm's algorithms: error < 1 ulp. */
#ifndef PALLOC_EXPLOG_H
#define PALLOC_EXPLOG_H

double palloc_exp(double x);
double palloc_log(double x);

#endif
