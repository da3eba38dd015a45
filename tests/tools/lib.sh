# lib.sh - sourced by the tools' shell tests: a temporary directory $d removed at exit, fail()
# to report one failed check and go on, and finish to print the count and set the exit status.
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
finish() {
  echo "$fails failures"
  [ "$fails" = 0 ]
}
