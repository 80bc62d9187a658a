# Shell functions shared by image/build.sh (the appliance) and test/lab/vm/build-initramfs.sh
# (the test VM): both make an Alpine root with Debian's kernel modules and this machine's glibc
# programs. Sourced under `set -euo pipefail`; the caller defines die().

# Sets kroot, kernel, kver and moddir from $1 (the cache that scripts/deps.sh filled).
find_kernel() {
  kroot=$(readlink -f "$1/kernel/current" 2>/dev/null) || true
  kernel=$(ls "$kroot"/boot/vmlinuz-* 2>/dev/null | head -n1) || true
  [ -n "$kernel" ] || die "no kernel under $1/kernel/current/boot: run scripts/deps.sh"
  kver=${kernel##*/vmlinuz-}
  moddir=$kroot/lib/modules/$kver
  [ -d "$moddir/kernel" ] || die "no modules at $moddir"
}

# Checks the Alpine minirootfs $1 against the SHA256SUMS beside it; sets alpine_sha.
check_alpine() {
  [ -f "$1" ] || die "Alpine minirootfs not found: $1 (set VIPD_ALPINE_TARBALL)"
  local sums want
  sums=$(dirname "$1")/SHA256SUMS
  [ -f "$sums" ] || die "no SHA256SUMS beside $1"
  want=$(awk -v f="$(basename "$1")" '$2 == f || $2 == "*"f {print $1}' "$sums")
  [ -n "$want" ] || die "$sums has no entry for $(basename "$1")"
  alpine_sha=$(sha256sum "$1" | cut -d' ' -f1)
  [ "$want" = "$alpine_sha" ] || die "CHECKSUM MISMATCH for $1: expected $want, got $alpine_sha"
}

# Unpacks the minirootfs $1 into $2, with the device nodes the kernel opens for init before
# init can mount devtmpfs.
unpack_alpine() {
  tar -xzf "$1" -C "$2"
  mknod -m 600 "$2/dev/console" c 5 1
  mknod -m 666 "$2/dev/null" c 1 3
}

# A fresh staging directory under $1 (named $2.XXXXXX, removed on exit; any earlier one is what
# a killed build left behind) with the Alpine minirootfs $3 unpacked: sets $stage and $root.
stage_alpine_root() {
  rm -rf "$1/$2".*
  stage=$(mktemp -d "$1/$2.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  root=$stage/root
  mkdir -p "$root"
  say "alpine: unpacking $(basename "$3") (sha256 ok)"
  unpack_alpine "$3" "$root"
}

# The shared libraries (and the loader) of the programs given, as sorted "soname path" lines.
glibc_libs() {
  local b
  for b in "$@"; do ldd "$b" 2>/dev/null || true; done | awk '
    $2 == "=>" && $3 ~ /^\// {print $1, $3}
    $1 ~ /^\/.*ld-linux/      {n=$1; sub(/.*\//, "", n); print n, $1}' | sort -u
}

# install_modules ROOT ENTRY...: copies the modules named (a module name, or a glob under
# lib/modules/KVER/kernel/ when it holds a slash) and everything they depend on (modinfo
# "depends") from $moddir into ROOT, then runs depmod. Sets modules_count and modules_total.
install_modules() {
  local root=$1 f n m rel entry found deps
  shift
  local -A modpath=() picked=()
  local -a queue=() more=()
  while IFS= read -r f; do
    n=${f##*/}; n=${n%%.ko*}; modpath[${n//-/_}]=$f
  done < <(find "$moddir/kernel" -name '*.ko*')
  for entry in "$@"; do
    case $entry in
      */*)
        found=0
        for f in "$moddir"/kernel/$entry; do
          [ -e "$f" ] || continue
          n=${f##*/}; queue+=("${n%%.ko*}"); found=1
        done
        [ $found = 1 ] || die "no module matches $entry"
        ;;
      *) queue+=("$entry") ;;
    esac
  done
  while [ ${#queue[@]} -gt 0 ]; do
    m=${queue[0]//-/_}; queue=("${queue[@]:1}")
    [ -n "${picked[$m]:-}" ] && continue
    if [ -z "${modpath[$m]:-}" ]; then
      grep -qE "/${m//_/[-_]}\.ko" "$moddir/modules.builtin" && continue # built into the kernel
      die "module $m not found in $moddir"
    fi
    picked[$m]=1
    deps=$(modinfo -F depends "${modpath[$m]}")
    [ -n "$deps" ] && IFS=, read -ra more <<<"$deps" && queue+=("${more[@]}")
  done
  for m in "${!picked[@]}"; do
    rel=${modpath[$m]#"$moddir"/}
    install -D -m 0644 "${modpath[$m]}" "$root/lib/modules/$kver/$rel"
  done
  cp "$moddir"/modules.builtin "$moddir"/modules.builtin.modinfo "$moddir"/modules.order "$root/lib/modules/$kver/"
  # (No `depmod -e`: Debian ships a stub System.map; modinfo's depends above is the check.)
  depmod -b "$root" "$kver" || die "depmod failed"
  modules_count=${#picked[@]}
  modules_total=${#modpath[@]}
}

# install_glibc ROOT LIBS PROGRAM...: the programs (stripped: Debian's node carries ~12 MB of
# symbols) in ROOT/usr/glibc/bin, LIBS ("soname path" lines, from glibc_libs) in
# ROOT/usr/glibc/lib, apart from Alpine's musl. glibc's loader sits where their PT_INTERP
# points (/lib64) and /lib/x86_64-linux-gnu is its default search path, so they run natively
# (node's process.execPath stays node, and child processes work). Links in /usr/local/bin,
# which comes first in PATH, put them before busybox's own ip and arping.
install_glibc() {
  local root=$1 libs=$2 b soname p
  shift 2
  mkdir -p "$root/usr/glibc/bin" "$root/usr/glibc/lib" "$root/usr/local/bin" "$root/lib64"
  for b in "$@"; do
    strip -s -o "$root/usr/glibc/bin/${b##*/}" "$b"
    ln -s "/usr/glibc/bin/${b##*/}" "$root/usr/local/bin/${b##*/}"
  done
  while read -r soname p; do
    install -m 0755 "$p" "$root/usr/glibc/lib/$soname"
  done <<<"$libs"
  ln -s /usr/glibc/lib/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
  ln -s /usr/glibc/lib "$root/lib/x86_64-linux-gnu"
}
