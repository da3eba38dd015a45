#!/usr/bin/env bash
# alloc/mimalloc/fetch.sh CACHE_DIR VERSION PATCH_DIR
#
# Makes mimalloc's source, as Debian ships it, ready to compile into libpalloc, and prints the
# path of the source tree on stdout. The package comes from Debian's archive through a private
# apt configuration under CACHE_DIR (its own sources list with a deb-src entry, its own lists and
# cache), so the system's apt sources are left alone. apt verifies what it downloads: the .dsc
# and the tarballs must match the hashes in the archive's signed Sources index. The exact VERSION
# is pinned by the caller (alloc/meson.build); a version the archive no longer has is an error.
# palloc's own changes are the patch files listed in PATCH_DIR/series, applied in order; the
# tree is named after the version and a hash of the patches, so editing a patch gives a new tree.
# Idempotent: a tree that is already ready is printed without touching the network.
set -euo pipefail
cache=$1 version=$2 patches=$3
suite=${PALLOC_MIMALLOC_SUITE:-bookworm}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
patch_hash=$(cd "$patches" && cat series $(grep -v '^#' series) | sha256sum | cut -c1-12)
tree=$cache/mimalloc-$version-$patch_hash
if [ -f "$tree/.palloc-ready" ]; then echo "$tree"; exit 0; fi

say() { echo "fetch.sh: $*" >&2; }
upstream=${version%%-*}              # 2.0.9+ds-2 -> 2.0.9+ds
dsc=$cache/pkg/mimalloc_${version#*:}.dsc
if [ ! -f "$dsc" ]; then
  apt=$cache/apt
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$cache/pkg"
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" \
    > "$apt/sources.list"
  opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache"
        -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)" -qq)
  say "downloading Debian's mimalloc $version source package ($suite)"
  apt-get "${opts[@]}" update >&2
  (cd "$cache/pkg" && apt-get "${opts[@]}" source --download-only "mimalloc=$version" >&2) || {
    say "Debian's archive has no mimalloc source $version for $suite (see alloc/mimalloc/README.md)"
    exit 1
  }
fi
rm -rf "$tree.tmp"
mkdir -p "$tree.tmp"
# apt has checked the files against the signed index; dpkg-source checks them against the .dsc.
dpkg-source --no-copy -x "$dsc" "$tree.tmp/src" > "$tree.tmp/dpkg-source.log" 2>&1 || {
  cat "$tree.tmp/dpkg-source.log" >&2; say "dpkg-source could not unpack $dsc"; exit 1; }
while read -r p; do
  case "$p" in ''|'#'*) continue ;; esac
  patch -d "$tree.tmp/src" -p1 --forward --batch --quiet < "$patches/$p" >&2 || {
    say "patch $p does not apply to mimalloc $version"; exit 1; }
done < "$patches/series"
rm -rf "$tree"
mv "$tree.tmp/src" "$tree"
rm -rf "$tree.tmp"
touch "$tree/.palloc-ready"
echo "$tree"
