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
lib=$repo/image/lib.sh
# shellcheck source=image/lib.sh
. "$lib"

# --- Inputs ---------------------------------------------------------------------------------
find_kernel "$CACHE"
alpine=${VIPD_ALPINE_TARBALL:-$repo/../shared/alpine/alpine-minirootfs-3.20.3-x86_64.tar.gz}
check_alpine "$alpine"

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
libs=$(glibc_libs "${bins[@]}")

guest_files=("$here/init" "$here/agent.mjs")
for f in "${guest_files[@]}"; do [ -f "$f" ] || die "missing $f"; done

# Hash of everything the image is made of. Host binaries are identified by path, size and
# mtime (hashing the 100 MB node binary on every boot would cost more than it saves).
hash=$(
  {
    echo "kernel $kroot $kver $(stat -c '%s %Y' "$kernel")"
    echo "alpine $alpine_sha"
    echo "image $image"
    for b in "${bins[@]}"; do stat -L -c 'bin %n %s %Y' "$b"; done
    while read -r _ p; do stat -L -c 'lib %n %s %Y' "$p"; done <<<"$libs"
    sha256sum "${BASH_SOURCE[0]}" "$lib" "${guest_files[@]}" | cut -d' ' -f1
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
# --- Alpine userland ------------------------------------------------------------------------
# Under the lock, so no other build's directory is in use.
stage_alpine_root "$vmdir" .build "$alpine"
echo vipd-vm >"$root/etc/hostname"

# --- Kernel modules ---------------------------------------------------------------------------
# What the director needs (see shared/docs/lab.md); install_modules adds their dependencies.
say "modules: resolving for $kver"
install_modules "$root" crc32c_generic libcrc32c nf_defrag_ipv4 nf_defrag_ipv6 nf_nat nfnetlink \
  ipip tunnel4 ip_tunnel ip6_tunnel tunnel6 dummy \
  virtio_pci virtio_net net_failover failover virtio_console \
  9p 9pnet 9pnet_virtio netfs 'net/netfilter/ipvs/*.ko*' 'net/netfilter/nf_conntrack*.ko*'
say "modules: $modules_count copied"

# --- glibc programs ---------------------------------------------------------------------------
say "glibc: copying ${bins[*]##*/}"
install_glibc "$root" "$libs" "${bins[@]}"

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
