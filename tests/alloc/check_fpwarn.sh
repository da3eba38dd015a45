#!/bin/sh
# check_fpwarn.sh LIBPALLOC_SO NOFP_PROGRAM FP_PROGRAM - PALLOC_UNWIND=fp in a program built
# without frame pointers says so in one palloc: line (its stacks come out one frame deep);
# the same program built with frame pointers gets no such line; libunwind never prints it.
lib=$1 nofp=$2 fp=$3
fails=0
count() { # PROGRAM UNWIND -> number of frame-pointer lines on stderr
  PALLOC_UNWIND=$2 PALLOC_SAMPLE_RATE=1 PALLOC_PROFILE= LD_PRELOAD=$lib "$1" 2>&1 >/dev/null |
    grep -c '^palloc: PALLOC_UNWIND=fp: .*no frame pointers'
}
n=$(count "$nofp" fp)
[ "$n" = 1 ] && echo "ok: without frame pointers: one line" || { echo "FAIL: without frame pointers: $n lines"; fails=1; }
n=$(count "$fp" fp)
[ "$n" = 0 ] && echo "ok: with frame pointers: no line" || { echo "FAIL: with frame pointers: $n lines"; fails=1; }
n=$(count "$nofp" libunwind)
[ "$n" = 0 ] && echo "ok: libunwind: no line" || { echo "FAIL: libunwind: $n lines"; fails=1; }
exit $fails
