#!/usr/bin/env bash
# Builds the vipd appliance image: the Alpine minirootfs, Debian's kernel with only the modules
# in image/modules.txt, this machine's glibc node/gobgpd/ipvsadm/conntrack/ip/arping, vipd
# bundled from this checkout (dependencies included), and image/rootfs/ (init).
# The whole root is one initramfs that runs from RAM.
#
# Outputs, in $VIPD_IMAGE_OUT (default $VIPD_CACHE/image, outside the repository):
#   vipd.iso             hybrid ISO: BIOS (isolinux) and UEFI (GRUB) from CD or dd'd to USB
#   vipd.img             raw disk image: one FAT partition labelled VIPDCFG that holds the boot
#                        files and is the config volume (copy vipd.yaml onto it); BIOS and UEFI
#   vmlinuz, initramfs   for PXE, with the kernel command line in cmdline.txt
#   SHA256SUMS, manifest.txt (input versions and sizes)
#
# Options (environment): VIPD_ALPINE_TARBALL (checked against SHA256SUMS beside it),
# VIPD_CACHE, VIPD_IMAGE_OUT, SOURCE_DATE_EPOCH (default: the last commit's time).
# Reproducible: the same inputs give byte-identical outputs. Idempotent: when no input changed
# since the last build, nothing is rebuilt. Progress goes to stderr as "==> ..."; the output
# directory is printed on stdout.
set -euo pipefail
export LC_ALL=C TZ=UTC
umask 022
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
CACHE=${VIPD_CACHE:-/var/cache/vipd}
OUT=${VIPD_IMAGE_OUT:-$CACHE/image}
say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'image/build.sh: error: %s\n' "$*" >&2; exit 1; }
started=$(date +%s.%N)
elapsed() { awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN{printf "%.0f", e-s}'; }
# shellcheck source=image/lib.sh
. "$here/lib.sh"

# The kernel command line of every boot medium. Both consoles: the screen and the first
# serial port (the last one named is /dev/console; init writes to both). panic=10: a kernel
# panic reboots the director instead of leaving it hung.
CMDLINE='console=tty0 console=ttyS0,115200n8 quiet panic=10'

# --- Inputs -----------------------------------------------------------------------------------
for t in xorriso mkfs.vfat mcopy syslinux grub-mkimage zstd cpio depmod modinfo strip; do
  command -v "$t" >/dev/null || die "$t not installed (apt: xorriso isolinux syslinux syslinux-common grub-efi-amd64-bin mtools dosfstools zstd cpio kmod binutils)"
done
isolinux_bin=/usr/lib/ISOLINUX/isolinux.bin
isohybrid_mbr=/usr/lib/ISOLINUX/isohdpfx.bin
syslinux_mods=/usr/lib/syslinux/modules/bios
syslinux_mbr=/usr/lib/syslinux/mbr/mbr.bin
grub_efi=/usr/lib/grub/x86_64-efi
for f in "$isolinux_bin" "$isohybrid_mbr" "$syslinux_mods/ldlinux.c32" "$syslinux_mbr" "$grub_efi/linux.mod"; do
  [ -e "$f" ] || die "missing $f (apt: isolinux syslinux-common grub-efi-amd64-bin)"
done

find_kernel "$CACHE"
esbuild=$repo/node_modules/.bin/esbuild
[ -x "$esbuild" ] || die "no $esbuild: run scripts/deps.sh (npm ci)"
protos=$CACHE/gobgp-proto/api
[ -f "$protos/gobgp.proto" ] || die "no gobgp protos in $protos: run scripts/deps.sh"

alpine=${VIPD_ALPINE_TARBALL:-$repo/../shared/alpine/alpine-minirootfs-3.20.3-x86_64.tar.gz}
check_alpine "$alpine"

# Programs from this machine (Debian packages): what vipd runs at runtime.
bins=()
for b in node gobgpd ipvsadm conntrack ip arping; do
  p=$(command -v "$b" 2>/dev/null) || die "$b not installed: run scripts/deps.sh"
  bins+=("$(readlink -f "$p")")
done
"${bins[5]}" -V 2>&1 | grep -q iputils || die "arping is not iputils' (apt: iputils-arping)"
libs=$(glibc_libs "${bins[@]}")

# What the image is made of, from the repository: vipd's sources and the image's own files.
srcs=$(cd "$repo" && git ls-files -co --exclude-standard -- src package.json package-lock.json tsconfig.json image | sort)
version=$(node -p 'require(process.argv[1]).version' "$repo/package.json")
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
pkgs=(nodejs gobgpd ipvsadm conntrack iproute2 iputils-arping libc6 isolinux syslinux syslinux-common grub-efi-amd64-bin xorriso mtools dosfstools zstd binutils cpio kmod)
pkgversions=$(dpkg-query -W -f='${Package} ${Version}\n' "${pkgs[@]}" 2>/dev/null | sort)

# Everything by content (hashing the host's 130 MB of programs takes a second), so that the
# same inputs give the same build id, and so the same image, on any machine.
inputs=$(
  {
    echo "epoch $SOURCE_DATE_EPOCH cmdline $CMDLINE"
    echo "alpine $alpine_sha"
    echo "kernel $kver $(sha256sum <"$kernel")"
    sha256sum "${bins[@]}"
    while read -r _ p; do sha256sum "$p"; done <<<"$libs"
    echo "$pkgversions"
    (cd "$protos" && sha256sum ./*.proto)
    # (A file deleted from the checkout but still in git's index is simply not there.)
    (cd "$repo" && tr '\n' '\0' <<<"$srcs" | xargs -0 sha256sum 2>/dev/null || true)
  } | sha256sum | cut -c1-16
)
buildid="$version-$inputs"

mkdir -p "$OUT"
exec 9>"$OUT/.lock"
flock -w 1200 9 || die "timed out waiting for $OUT/.lock (another build running?)"
if [ "$(cat "$OUT/.inputs" 2>/dev/null)" = "$inputs" ] && [ -f "$OUT/vipd.iso" ] && [ -f "$OUT/vipd.img" ]; then
  say "image: up to date ($OUT, build $buildid)"
  echo "$OUT"
  exit 0
fi
rm -f "$OUT/.inputs"
say "image: building vipd $version (build $buildid, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"

# --- Alpine userland --------------------------------------------------------------------------
stage_alpine_root "$OUT" .work "$alpine"
# No package manager on an appliance (and nothing it could reach): apk and the TLS libraries
# only apk and busybox's ssl_client use.
rm -rf "$root"/sbin/apk "$root"/lib/apk "$root"/etc/apk "$root"/usr/share/apk "$root"/var/cache/apk \
  "$root"/lib/libapk.so* "$root"/lib/libcrypto.so* "$root"/lib/libssl.so* "$root"/usr/lib/libcrypto.so* \
  "$root"/usr/lib/libssl.so* "$root"/usr/lib/ossl-modules "$root"/usr/lib/engines-3 "$root"/usr/bin/ssl_client

# --- Kernel modules ---------------------------------------------------------------------------
say "modules: resolving image/modules.txt for $kver"
mapfile -t wanted < <(sed 's/#.*//; s/[[:space:]]*$//; /^$/d' "$here/modules.txt")
install_modules "$root" "${wanted[@]}"
say "modules: $modules_count of $modules_total"

# --- glibc programs ---------------------------------------------------------------------------
say "glibc: ${bins[*]##*/} and $(wc -l <<<"$libs") libraries"
install_glibc "$root" "$libs" "${bins[@]}"

# --- vipd ---------------------------------------------------------------------------------------
# One file each for vipd and vipctl, with their dependencies inside (the flags of
# scripts/bundle.sh): node then reads two files at start instead of hundreds, which is seconds
# of boot on a slow machine or under emulation, and no node_modules tree is needed. They read
# ../package.json (the version), so the layout is /usr/lib/vipd/{dist,package.json}.
say "vipd: bundling src/cli/vipd.ts and src/cli/vipctl.ts (esbuild)"
# (The banner gives bundled CommonJS code a require() for node's built-in modules.)
bundle=(--bundle --platform=node --target=node20 --format=esm --log-level=warning
  --banner:js="import { createRequire as __vipdRequire } from 'node:module'; const require = __vipdRequire(import.meta.url);")
app=$root/usr/lib/vipd
mkdir -p "$app"
(cd "$repo" && "$esbuild" src/cli/vipd.ts src/cli/vipctl.ts "${bundle[@]}" --outdir="$app/dist" --out-extension:.js=.mjs) ||
  die "esbuild failed"
install -m 0644 "$repo/package.json" "$app/package.json"

# gobgpd's API definition, which vipd loads at run time (supervise points VIPD_GOBGP_PROTO_DIR here).
install -D -m 0644 -t "$root/usr/share/vipd/gobgp-proto/api" "$protos"/*.proto

# --- Our files --------------------------------------------------------------------------------
say "rootfs: image/rootfs overlay"
while IFS= read -r -d '' f; do
  # Scripts (a #! line) are executable; the rest is data. Git's file modes do not matter.
  mode=0644
  [ "$(head -c2 "$f")" = '#!' ] && mode=0755
  install -D -m "$mode" "$f" "$root/${f#"$here/rootfs/"}"
done < <(find "$here/rootfs" -type f -print0)
# netconf.mjs takes its YAML parser (vipd's own, from the lockfile) along in the same way.
"$esbuild" "$here/rootfs/usr/lib/vipd-image/netconf.mjs" "${bundle[@]}" --outfile="$root/usr/lib/vipd-image/netconf.mjs" \
  --allow-overwrite || die "esbuild failed (netconf.mjs)"
ln -sf /sbin/init "$root/init"
cat >"$root/etc/vipd-image.release" <<EOF
VERSION=$version
BUILD=$buildid
KERNEL=$kver
EOF

# --- initramfs ----------------------------------------------------------------------------------
# Fixed owners and mtimes and a sorted file list make the archive depend on content only.
# zstd rather than xz: bigger, but the kernel unpacks it 3x faster (10 s less per boot under
# emulation; about a second on hardware). Level 9, not 19: 15% bigger (44 vs 38 MB) for 4 s of
# CPU instead of 100 s, which `make test` pays whenever src/ changes.
say "initramfs: packing $(du -sh "$root" | cut -f1) (zstd -9)"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$stage/iso/boot/grub" "$stage/iso/isolinux"
(cd "$root" && find . -print0 | sort -z | cpio --null -o -H newc -R 0:0 --reproducible --quiet) |
  zstd -9 -T2 -q -c >"$stage/iso/boot/initramfs"
install -m 0644 "$kernel" "$stage/iso/boot/vmlinuz"
say "initramfs: $(du -m "$stage/iso/boot/initramfs" | cut -f1) MB, kernel $(du -m "$kernel" | cut -f1) MB ($(elapsed) s so far)"

# --- Boot loaders ---------------------------------------------------------------------------------
subst() { sed -e "s|@VERSION@|$version|g" -e "s|@BUILD@|$buildid|g" -e "s|@CMDLINE@|$CMDLINE|g" "$1"; }
# GRUB for UEFI finds its medium (CD, USB, raw disk) by a file only this build has.
marker=boot/vipd-$buildid
touch "$stage/iso/$marker"
printf 'search --no-floppy --set=root --file /%s\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n' "$marker" >"$stage/early.cfg"
grub-mkimage -O x86_64-efi -d "$grub_efi" -c "$stage/early.cfg" -p /boot/grub -o "$stage/BOOTX64.EFI" \
  normal configfile search search_fs_file linux iso9660 fat part_gpt part_msdos serial terminal echo test all_video efi_gop gzio
subst "$here/boot/grub.cfg" >"$stage/iso/boot/grub/grub.cfg"
subst "$here/boot/syslinux.cfg" >"$stage/iso/isolinux/isolinux.cfg"
install -m 0644 "$isolinux_bin" "$syslinux_mods/ldlinux.c32" "$stage/iso/isolinux/"

# The EFI system partition image El Torito points UEFI firmware at.
efikb=$(( $(stat -c %s "$stage/BOOTX64.EFI") / 1024 + 256 ))
mkfs.vfat -C --invariant -i 56495044 -n VIPDEFI "$stage/iso/boot/efiboot.img" "$efikb" >/dev/null
mmd -i "$stage/iso/boot/efiboot.img" ::/EFI ::/EFI/BOOT
touch -d "@$SOURCE_DATE_EPOCH" "$stage/BOOTX64.EFI"
mcopy -m -i "$stage/iso/boot/efiboot.img" "$stage/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
find "$stage/iso" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# --- Hybrid ISO -----------------------------------------------------------------------------------
say "iso: xorriso (isolinux for BIOS, GRUB for UEFI, hybrid MBR+GPT for USB)"
volid="VIPD_${version//./_}"
xorriso -as mkisofs -o "$stage/vipd.iso" -iso-level 3 -full-iso9660-filenames -rational-rock \
  -volid "${volid:0:32}" -appid "vipd $version" \
  -isohybrid-mbr "$isohybrid_mbr" \
  -eltorito-boot isolinux/isolinux.bin -eltorito-catalog isolinux/boot.cat \
  -no-emul-boot -boot-load-size 4 -boot-info-table \
  -eltorito-alt-boot -e boot/efiboot.img -no-emul-boot -isohybrid-gpt-basdat \
  "$stage/iso" 2>"$stage/xorriso.log" || { cat "$stage/xorriso.log" >&2; die "xorriso failed"; }
[ -s "$stage/vipd.iso" ] || die "xorriso made no ISO"

# --- Raw disk image -------------------------------------------------------------------------------
# MBR with one bootable FAT32 partition (1 MiB aligned) labelled VIPDCFG: syslinux boots it on
# BIOS, GRUB (EFI/BOOT/BOOTX64.EFI) on UEFI, and init takes it as the config volume, so the
# stick that boots the director also carries vipd.yaml and its persistent state.
say "raw image: FAT32 partition VIPDCFG with syslinux and GRUB"
img=$stage/vipd.img
# Room beyond the boot files for vipd.yaml and the state directory (journal, overrides).
part_sectors=$(( ($(du -sm "$stage/iso/boot" | cut -f1) + 64) * 2048 ))
truncate -s $(( (2048 + part_sectors) * 512 )) "$img"
mkfs.vfat -F 32 --offset 2048 --invariant -i 56495044 -n VIPDCFG "$img" $((part_sectors / 2)) >/dev/null
fat="$img@@$((2048 * 512))"
mmd -i "$fat" ::/boot ::/boot/grub ::/EFI ::/EFI/BOOT ::/syslinux
mcopy -m -i "$fat" "$stage/iso/boot/vmlinuz" "$stage/iso/boot/initramfs" "$stage/iso/$marker" ::/boot/
mcopy -m -i "$fat" "$stage/iso/boot/grub/grub.cfg" ::/boot/grub/
mcopy -m -i "$fat" "$stage/BOOTX64.EFI" ::/EFI/BOOT/
mcopy -m -i "$fat" "$stage/iso/isolinux/isolinux.cfg" ::/syslinux/syslinux.cfg
install -m 0644 "$here/vipd.yaml.example" "$stage/vipd.yaml.example"
touch -d "@$SOURCE_DATE_EPOCH" "$stage/vipd.yaml.example"
mcopy -m -i "$fat" "$stage/vipd.yaml.example" ::/
syslinux --install --offset $((2048 * 512)) --directory /syslinux "$img"
# Boot code, a fixed disk signature, and partition 1: active, type 0x0c (FAT32, LBA), from
# sector 2048. CHS fields say "use LBA" (fe ff ff).
dd if="$syslinux_mbr" of="$img" conv=notrunc bs=440 count=1 status=none
le32() { printf "\\x$(printf %02x $(($1 & 255)))\\x$(printf %02x $(($1 >> 8 & 255)))\\x$(printf %02x $(($1 >> 16 & 255)))\\x$(printf %02x $(($1 >> 24 & 255)))"; }
{
  le32 0x56495044; printf '\x00\x00'
  printf '\x80\xfe\xff\xff\x0c\xfe\xff\xff'; le32 2048; le32 "$part_sectors"
  head -c 48 /dev/zero
  printf '\x55\xaa'
} | dd of="$img" conv=notrunc bs=1 seek=440 status=none

# --- Outputs --------------------------------------------------------------------------------------
mkdir -p "$stage/out"
mv "$stage/vipd.iso" "$stage/vipd.img" "$stage/out/"
cp "$stage/iso/boot/vmlinuz" "$stage/iso/boot/initramfs" "$stage/out/"
echo "$CMDLINE" >"$stage/out/cmdline.txt"
iso_mb=$(awk -v b="$(stat -c %s "$stage/out/vipd.iso")" 'BEGIN{printf "%.1f", b/1048576}')
{
  echo "vipd $version build $buildid"
  echo "kernel $kver; modules: $modules_count"
  echo "alpine $(basename "$alpine") sha256 $alpine_sha"
  echo "SOURCE_DATE_EPOCH $SOURCE_DATE_EPOCH"
  echo "$pkgversions"
  echo "sizes (bytes):"
  (cd "$stage/out" && stat -c '  %n %s' vipd.iso vipd.img vmlinuz initramfs)
  echo "root filesystem unpacked: $(du -sm "$root" | cut -f1) MB"
} >"$stage/out/manifest.txt"
(cd "$stage/out" && sha256sum vipd.iso vipd.img vmlinuz initramfs cmdline.txt manifest.txt >SHA256SUMS)
for f in vipd.iso vipd.img vmlinuz initramfs cmdline.txt manifest.txt SHA256SUMS; do mv -f "$stage/out/$f" "$OUT/$f"; done
echo "$inputs" >"$OUT/.inputs"
say "image: vipd.iso $iso_mb MB, root in RAM $(du -sm "$root" | cut -f1) MB, built in $(elapsed) s"
say "image: $OUT/vipd.iso $OUT/vipd.img"
echo "$OUT"
