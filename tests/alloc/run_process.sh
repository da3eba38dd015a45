#!/bin/sh
# Runs test_process in a fresh directory with the snapshot environment it tests.
set -e
bin=$1 dir=$2
rm -rf "$dir" && mkdir -p "$dir"
PALLOC_PROFILE="$dir/proc.%p.pb.gz" PALLOC_PROFILE_SIGNAL=USR2 PALLOC_PROFILE_INTERVAL=1 \
  exec "$bin" "$dir"
