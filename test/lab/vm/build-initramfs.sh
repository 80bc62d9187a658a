#!/usr/bin/env bash
# Builds the test VM's initramfs: Alpine minirootfs + the director's kernel modules + this
# machine's glibc node/ipvsadm/conntrack/gobgpd + our /init and guest agent.
# Output goes to ${VIPD_CACHE:-/var/cache/vipd}/vm/<hash>/ (initramfs.cpio.lz4, or .gz where
# lz4 is missing, and a vmlinuz link), where <hash> covers every input, so a rebuild happens
# only when an input changes.
# Prints that directory on stdout; progress goes to stderr as "==> ...".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
CACHE=${VIPD_CACHE:-/var/cache/vipd}
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-initramfs: error: %s\n' "$*" >&2; exit 1; }

# --- Inputs ---------------------------------------------------------------------------------
kroot=$(readlink -f "$CACHE/kernel/current" 2>/dev/null) || true
kernel=$(ls "$kroot"/boot/vmlinuz-* 2>/dev/null | head -n1) || true
[ -n "$kernel" ] || die "no kernel under $CACHE/kernel/current/boot: run scripts/deps.sh"
kver=${kernel##*/vmlinuz-}
moddir=$kroot/lib/modules/$kver
[ -d "$moddir/kernel" ] || die "no modules at $moddir"

alpine=${VIPD_ALPINE_TARBALL:-$repo/../shared/alpine/alpine-minirootfs-3.20.3-x86_64.tar.gz}
[ -f "$alpine" ] || die "Alpine minirootfs not found: $alpine (set VIPD_ALPINE_TARBALL)"
sums=$(dirname "$alpine")/SHA256SUMS
[ -f "$sums" ] || die "no SHA256SUMS beside $alpine"
want=$(awk -v f="$(basename "$alpine")" '$2 == f || $2 == "*"f {print $1}' "$sums")
[ -n "$want" ] || die "$sums has no entry for $(basename "$alpine")"
have=$(sha256sum "$alpine" | cut -d' ' -f1)
[ "$want" = "$have" ] || die "CHECKSUM MISMATCH for $alpine: expected $want, got $have"

# glibc programs copied into the guest. Required: what the director cannot work without.
# Optional: gobgpd, and iproute2's ip and iputils' arping so the guest takes the same
# commands and flags as the host namespaces (busybox's ip and arping lack many).
bins=()
for b in node ipvsadm conntrack gobgpd ip arping; do
  if p=$(command -v "$b" 2>/dev/null); then
    bins+=("$(readlink -f "$p")")
  else
    case $b in node | ipvsadm | conntrack) die "$b not installed: run scripts/deps.sh" ;; esac
  fi
done
# lz4 (legacy frame, as the kernel wants it) unpacks fastest under emulation: the VM reaches
# its agent ~2 s sooner than with gzip. gzip is the fallback where lz4 is not installed.
if command -v lz4 >/dev/null; then
  image=initramfs.cpio.lz4 compress=(lz4 -q -l -c)
else
  image=initramfs.cpio.gz compress=(gzip -1 -c)
fi
# Shared libraries (and the loader) of all of them, as "soname path" lines.
libs=$(for b in "${bins[@]}"; do ldd "$b" 2>/dev/null || true; done | awk '
  $2 == "=>" && $3 ~ /^\// {print $1, $3}
  $1 ~ /^\/.*ld-linux/      {n=$1; sub(/.*\//, "", n); print n, $1}' | sort -u)

guest_files=("$here/init" "$here/agent.mjs")
for f in "${guest_files[@]}"; do [ -f "$f" ] || die "missing $f"; done

# Hash of everything the image is made of. Host binaries are identified by path, size and
# mtime (hashing the 100 MB node binary on every boot would cost more than it saves).
hash=$(
  {
    echo "kernel $kroot $kver $(stat -c '%s %Y' "$kernel")"
    echo "alpine $have"
    echo "image $image"
    for b in "${bins[@]}"; do stat -L -c 'bin %n %s %Y' "$b"; done
    while read -r _ p; do stat -L -c 'lib %n %s %Y' "$p"; done <<<"$libs"
    sha256sum "${BASH_SOURCE[0]}" "${guest_files[@]}" | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)
vmdir=$CACHE/vm
out=$vmdir/$hash
mkdir -p "$vmdir"

if [ -f "$out/$image" ]; then
  touch "$out" # marks it as in use for the pruning below
  say "initramfs: cached ($out)"
  echo "$out"
  exit 0
fi

# Two test runs may start at once: one builds, the other waits and then finds the result.
exec 9>"$vmdir/.lock"
flock -w 600 9 || die "timed out waiting for $vmdir/.lock"
if [ -f "$out/$image" ]; then
  say "initramfs: built by another process ($out)"
  echo "$out"
  exit 0
fi

started=$(date +%s.%N)
# Under the lock, any other build directory is what a killed build left behind.
rm -rf "$vmdir"/.build.*
stage=$(mktemp -d "$vmdir/.build.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root"

# --- Alpine userland ------------------------------------------------------------------------
say "alpine: unpacking $(basename "$alpine") (sha256 ok)"
tar -xzf "$alpine" -C "$root"
# The kernel opens /dev/console for /init before /init can mount devtmpfs.
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
echo vipd-vm >"$root/etc/hostname"

# --- Kernel modules ---------------------------------------------------------------------------
say "modules: resolving for $kver"
declare -A modpath=()
while IFS= read -r f; do
  n=${f##*/}; n=${n%%.ko*}; modpath[${n//-/_}]=$f
done < <(find "$moddir/kernel" -name '*.ko*')

# What the director needs (see shared/docs/lab.md); dependencies are added below.
wanted=(crc32c_generic libcrc32c nf_defrag_ipv4 nf_defrag_ipv6 nf_nat nfnetlink
  ipip tunnel4 ip_tunnel ip6_tunnel tunnel6 dummy
  virtio_pci virtio_net net_failover failover virtio_console
  9p 9pnet 9pnet_virtio netfs)
for f in "$moddir"/kernel/net/netfilter/ipvs/*.ko* "$moddir"/kernel/net/netfilter/nf_conntrack*.ko*; do
  n=${f##*/}; wanted+=("${n%%.ko*}")
done

declare -A picked=()
queue=("${wanted[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  m=${queue[0]//-/_}; queue=("${queue[@]:1}")
  [ -n "${picked[$m]:-}" ] && continue
  [ -n "${modpath[$m]:-}" ] || {
    grep -qE "/${m//_/[-_]}\.ko" "$moddir/modules.builtin" && continue # built into the kernel
    die "module $m not found in $moddir"
  }
  picked[$m]=1
  deps=$(modinfo -F depends "${modpath[$m]}")
  [ -n "$deps" ] && IFS=, read -ra more <<<"$deps" && queue+=("${more[@]}")
done
dst=$root/lib/modules/$kver
for m in "${!picked[@]}"; do
  rel=${modpath[$m]#"$moddir"/}
  mkdir -p "$dst/$(dirname "$rel")"
  cp "${modpath[$m]}" "$dst/$rel"
done
cp "$moddir"/modules.builtin* "$moddir"/modules.order "$dst/" 2>/dev/null || true
# (No `depmod -e`: Debian ships a stub System.map; modinfo's depends above is the check.)
depmod -b "$root" "$kver" || die "depmod failed"
say "modules: ${#picked[@]} copied"

# --- glibc programs ---------------------------------------------------------------------------
say "glibc: copying ${bins[*]##*/}"
gb=$root/usr/glibc/bin
gl=$root/usr/glibc/lib
mkdir -p "$gb" "$gl" "$root/usr/local/bin" "$root/lib64"
for b in "${bins[@]}"; do
  n=${b##*/}
  if [ "$n" = node ]; then
    strip -s -o "$gb/$n" "$b" # Debian's node carries ~12 MB of debug info
  else
    # Go's gobgpd may be static; then it needs no libraries, and copying it is all there is.
    cp "$b" "$gb/$n"
  fi
  # Wrappers in PATH. Links, not loader-invoking scripts: with the loader and library dir
  # below the binaries run natively, and node's process.execPath then stays usable
  # (run through ld.so, execPath would be ld.so itself and child_process.fork would break).
  # (/usr/local/bin comes first in the guest's PATH, before busybox's ip and arping.)
  ln -s "/usr/glibc/bin/$n" "$root/usr/local/bin/$n"
done
while read -r soname p; do
  cp -L "$p" "$gl/$soname"
done <<<"$libs"
# Where glibc's loader is expected (PT_INTERP) and the first directory it searches by default.
# Alpine (musl) uses neither path, so nothing of Alpine's is shadowed.
ln -s /usr/glibc/lib/ld-linux-x86-64.so.2 "$root/lib64/ld-linux-x86-64.so.2"
ln -s /usr/glibc/lib "$root/lib/x86_64-linux-gnu"

# --- Our init and agent -----------------------------------------------------------------------
install -m 0755 "$here/init" "$root/init"
install -D -m 0644 "$here/agent.mjs" "$root/usr/lib/vipd-lab/agent.mjs"

# --- Archive ----------------------------------------------------------------------------------
say "cpio: packing $(du -sh "$root" | cut -f1) with ${compress[0]}"
mkdir -p "$stage/out"
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc -R 0:0 --quiet) | "${compress[@]}" >"$stage/out/$image"
ln -s "$kernel" "$stage/out/vmlinuz"
rm -rf "$out"
mv "$stage/out" "$out"

# Prune images nobody booted for a week (each is ~50 MB); the current one was just made.
find "$vmdir" -mindepth 1 -maxdepth 1 -type d -name '[0-9a-f]*' -mtime +7 -exec rm -rf {} + 2>/dev/null || true

say "initramfs: $(du -h "$out/$image" | cut -f1) in $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}') s ($out)"
echo "$out"
