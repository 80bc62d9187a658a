#!/usr/bin/env bash
# Installs everything `make test`, `make demo` and `make bench` need, idempotently.
# Downloads are cached in $VIPD_CACHE (outside the repository).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${VIPD_CACHE:-/var/cache/vipd}
mkdir -p "$CACHE"
say() { printf '==> %s\n' "$*" >&2; }

# Debian packages: real peers and tools the lab and the image use.
APT_PKGS=(qemu-system-x86 bird2 gobgpd ipvsadm conntrack iputils-arping tcpdump iproute2
  kmod cpio xz-utils lz4 binutils dnsutils openssl iputils-ping
  xorriso isolinux syslinux syslinux-common grub-efi-amd64-bin mtools dosfstools ovmf zstd)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt: installing ${missing[*]}"
  stamp=/var/lib/apt/periodic/vipd-update-stamp
  if [ ! -f "$stamp" ] || [ -n "$(find "$stamp" -mmin +360 2>/dev/null)" ]; then
    apt-get update -qq
    mkdir -p "$(dirname "$stamp")"; touch "$stamp"
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "apt: all packages present"
fi

# Kernel for the test VM: whatever linux-image-amd64 points at, never a hard-coded version.
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
if [ -z "$kpkg" ]; then apt-get update -qq; kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}'); fi
kdir="$CACHE/kernel/$kpkg"
if [ ! -d "$kdir/boot" ]; then
  say "kernel: fetching $kpkg"
  ( cd "$CACHE" && ls "${kpkg}"_*.deb >/dev/null 2>&1 || apt-get download "$kpkg" 2>/dev/null )
  rm -rf "$kdir.tmp"; mkdir -p "$kdir.tmp"
  dpkg -x "$(ls "$CACHE/${kpkg}"_*.deb | head -n1)" "$kdir.tmp"
  mv "$kdir.tmp" "$kdir"
else
  say "kernel: $kpkg cached"
fi
ln -sfn "$kdir" "$CACHE/kernel/current"

# gobgpd's gRPC API definition, from Debian, unpacked outside the repository.
pdir="$CACHE/gobgp-proto"
if [ ! -f "$pdir/api/gobgp.proto" ]; then
  say "gobgp protos: fetching golang-github-osrg-gobgp-dev"
  ( cd "$CACHE" && ls golang-github-osrg-gobgp-dev_*.deb >/dev/null 2>&1 || apt-get download golang-github-osrg-gobgp-dev 2>/dev/null )
  tmp=$(mktemp -d); dpkg -x "$(ls "$CACHE"/golang-github-osrg-gobgp-dev_*.deb | head -n1)" "$tmp"
  mkdir -p "$pdir/api"; cp "$tmp"/usr/share/gocode/src/github.com/osrg/gobgp/api/*.proto "$pdir/api/"; rm -rf "$tmp"
else
  say "gobgp protos: cached"
fi

# npm packages.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm: installing packages"
  npm ci --no-audit --no-fund --loglevel=error
else
  say "npm: packages present"
fi
