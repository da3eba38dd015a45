#!/bin/sh
# Runs test_process in a fresh directory with the snapshot environment it tests, then checks
# that no temporary profile was left behind once every process has exited.
bin=$1 dir=$2
rm -rf "$dir" && mkdir -p "$dir"
PALLOC_PROFILE="$dir/proc.%p.pb.gz" PALLOC_PROFILE_SIGNAL=USR2 PALLOC_PROFILE_INTERVAL=1 \
  "$bin" "$dir"
rc=$?
left=$(ls "$dir" | grep -c '\.tmp\.')
if [ "$left" -ne 0 ]; then
  echo "FAIL: $left temporary files left in $dir: $(ls "$dir" | grep '\.tmp\.')"
  exit 1
fi
exit $rc
