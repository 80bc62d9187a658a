# Shell functions shared by the image's init scripts (busybox ash); sourced, not run.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root

# What boot found (config file and source, state, --set options) and pid files, for
# supervise, console and shutdown.
RUN=/run/vipd-image
# The labels init looks for when the kernel command line names no other source.
CONFIG_LABEL=VIPDCFG
STATE_LABEL=VIPDSTATE
CONFIG_MNT=/media/vipdcfg
STATE_DIR=/var/lib/vipd
STATUS_SOCKET=/run/vipd/vipd.sock

# Prints to every kernel console (screen and serial), so a message is seen wherever the
# operator looks, and to the system log (logread).
say() {
  for t in $(cat /sys/class/tty/console/active 2>/dev/null); do
    printf '%s\n' "$@" >"/dev/$t" 2>/dev/null
  done
  for l in "$@"; do logger -t vipd-image -- "$l" 2>/dev/null; done
}

# cmdline KEY: the values of KEY=... on the kernel command line, one per line.
cmdline() {
  for w in $(cat /proc/cmdline); do
    case $w in "$1"=*) printf '%s\n' "${w#*=}" ;; esac
  done
}

# The release file written by image/build.sh: VERSION, BUILD, KERNEL.
. /etc/vipd-image.release

# Loads drivers for the devices present: each device's modalias matched against modules.alias.
# Run again whenever devices may have appeared (a USB stick shows up after its controller).
coldplug() {
  find /sys/devices -name modalias -exec cat {} + 2>/dev/null | sort -u | xargs modprobe -qa 2>/dev/null
}

# blockdev_of LABEL=X|UUID=X|/dev/X: the block device, if it is there.
blockdev_of() {
  case $1 in
    /dev/*) [ -b "$1" ] && echo "$1" ;;
    *) findfs "$1" 2>/dev/null ;;
  esac
}

# mount_fs DEVICE DIR OPTIONS: mounts by the filesystem's own type, so that the kernel loads
# its module (mount's "auto" only tries filesystems already loaded).
mount_fs() {
  type=$(blkid "$1" | sed -n 's/.* TYPE="\([^"]*\)".*/\1/p')
  mount -t "${type:-auto}" -o "$3" "$1" "$2"
}

# find_config SECONDS: finds and mounts the config source named by vipd.config= (default
# LABEL=VIPDCFG), waiting up to SECONDS for the device. Writes $RUN/config (where vipd.yaml is,
# or will be once the source turns up) and $RUN/config-source (a description), or
# $RUN/config-error (why there is none). Returns 0 when found.
find_config() {
  rm -f "$RUN/config-source" "$RUN/config-error"
  src=$(cmdline vipd.config | tail -n1)
  src=${src:-LABEL=$CONFIG_LABEL}
  case $src in
    http://* | https://*)
      echo "$RUN/vipd.yaml" >"$RUN/config"
      # No shell tool here speaks https; node does.
      if node --input-type=module -e '
        const [url, out] = process.argv.slice(1);
        const r = await fetch(url, { signal: AbortSignal.timeout(10000) });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        (await import("node:fs")).writeFileSync(out, await r.text(), { mode: 0o600 });
      ' "$src" "$RUN/vipd.yaml" >"$RUN/fetch.err" 2>&1; then
        echo "$src" >"$RUN/config-source"
        return 0
      fi
      echo "cannot fetch the config from $src: $(grep -m1 -o '[A-Za-z]*Error.*' "$RUN/fetch.err")" >"$RUN/config-error"
      return 1
      ;;
  esac
  echo "$CONFIG_MNT/vipd.yaml" >"$RUN/config"
  if ! mountpoint -q "$CONFIG_MNT"; then
    i=0
    while :; do
      dev=$(blockdev_of "$src")
      [ -n "$dev" ] || [ "$i" -ge "$1" ] && break
      sleep 1; i=$((i + 1))
      coldplug
    done
    if [ -z "$dev" ]; then
      echo "no config volume: nothing has $src (a FAT or ISO9660 filesystem labelled $CONFIG_LABEL holding vipd.yaml; see vipd.config= for other sources)" >"$RUN/config-error"
      return 1
    fi
    mkdir -p "$CONFIG_MNT"
    # FAT read-write (it can then hold the state directory), ISO9660 and others read-only.
    if ! mount -t vfat -o rw,noatime,flush,umask=0077 "$dev" "$CONFIG_MNT" 2>/dev/null &&
      ! mount_fs "$dev" "$CONFIG_MNT" ro 2>"$RUN/mount.err"; then
      echo "cannot mount the config volume $dev ($src): $(cat "$RUN/mount.err")" >"$RUN/config-error"
      return 1
    fi
  fi
  fstype=$(awk -v m="$CONFIG_MNT" '$2 == m {print $3, $4; exit}' /proc/mounts)
  echo "$src (${fstype%%,*}) mounted on $CONFIG_MNT" >"$RUN/config-source"
}
