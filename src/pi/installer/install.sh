#!/bootherd/busybox sh
# shellcheck shell=sh
# bootherd's Raspberry Pi installer: writes Ubuntu's preinstalled raspi image
# to this Pi's disk, checks it, seeds cloud-init's NoCloud on its system-boot
# partition and reports to bootherd. Run by /scripts/bootherd (the initramfs
# boot script) once the network is up; its settings are the `bootherd.*`
# words of the kernel command line bootherd rendered for this Pi:
#
#   bootherd.url=    bootherd's HTTP base (http://ADDRESS:PORT)
#   bootherd.mac=    this Pi's MAC, hyphenated as bootherd's URLs take it
#   bootherd.token=  the install token the callbacks carry
#   bootherd.image=  path of the .img.xz under bootherd.url
#   bootherd.sha256= sha256 of the .img.xz (the line of Ubuntu's SHA256SUMS)
#   bootherd.size=   size of the .img.xz in bytes (for progress)
#   bootherd.disk=   target disk, or `auto`: the first of NVMe, USB, SD
#
# It runs under the static busybox bootherd's archive carries
# (/bootherd/busybox, Debian's busybox-static), and every tool it runs is one
# of that busybox's applets (TOOLS), linked into /bootherd/bin, which is all
# of PATH here: Ubuntu's raspi initrd has a reduced busybox, or only klibc's
# tools. Only the initramfs's modprobe and udevadm, which belong to its
# kernel and udev, are used, by their path (initramfs_tool). /init and the
# rest of the boot keep their own tools. Exit status 0 means installed and
# reported.
set -u

BB=/bootherd/busybox
bin=/bootherd/bin
# Every command below that is not a shell builtin.
TOOLS="wget xzcat sha256sum dd tee mkfifo mount umount sync cat cut sed sleep rm mkdir mv readlink blockdev partprobe kill printf"
work=/run/bootherd
mnt=$work/system-boot

initramfs_path=$PATH
applets=" $("$BB" --list 2>/dev/null | "$BB" tr '\n' ' ') "
missing=""
"$BB" mkdir -p "$bin"
for tool in $TOOLS; do
	case "$applets" in
		*" $tool "*) "$BB" ln -sf "$BB" "$bin/$tool" ;;
		*) missing="$missing $tool" ;;
	esac
done
PATH=$bin
export PATH

url="" mac="" token="" image="" sha256="" size="" disk=auto
# shellcheck disable=SC2013 # the command line is one line of words
for word in $(cat /proc/cmdline); do
	case "$word" in
		bootherd.url=*) url=${word#bootherd.url=} ;;
		bootherd.mac=*) mac=${word#bootherd.mac=} ;;
		bootherd.token=*) token=${word#bootherd.token=} ;;
		bootherd.image=*) image=${word#bootherd.image=} ;;
		bootherd.sha256=*) sha256=${word#bootherd.sha256=} ;;
		bootherd.size=*) size=${word#bootherd.size=} ;;
		bootherd.disk=*) disk=${word#bootherd.disk=} ;;
	esac
done

say() {
	echo "bootherd: $*" >&2
}

api() {
	echo "$url/api/v1/machines/$mac/$1?token=$token"
}

# POSTs $2 (JSON) to the API endpoint $1, trying $3 times (default 5): a
# lost report would leave bootherd thinking the install still runs.
post() {
	tries=0
	while [ "$tries" -lt "${3:-5}" ]; do
		if wget -q -O /dev/null --header "Content-Type: application/json" \
			--post-data "$2" "$(api "$1")"; then
			return 0
		fi
		tries=$((tries + 1))
		sleep 2
	done
	say "could not reach $url to report $1"
	return 1
}

# An installer event in the autoinstall webhook's shape. The texts are ours
# and carry no quotes or backslashes, so they are valid JSON strings as-is.
event() {
	post events "{\"name\":\"bootherd/pi-installer\",\"event_type\":\"$1\",\"result\":\"$2\",\"description\":\"$3\"}" || true
}

fail() {
	say "$*"
	event finish FAIL "$*"
	exit 1
}

[ -z "$missing" ] || fail "the busybox bootherd sent ($BB) lacks:$missing"
say "tools: $BB, $("$BB" 2>&1 | sed -n 1p)"
for v in url mac token image sha256 size; do
	eval "val=\${$v}"
	# shellcheck disable=SC2154 # set by the eval above
	[ -n "$val" ] || fail "the kernel command line has no bootherd.$v="
done

# The first of NVMe, USB, SD. USB disks enumerate seconds after the SD card,
# so an SD card alone is taken only once USB had 10 s to show up.
pick_disk() {
	waited=0
	while [ "$waited" -lt 30 ]; do
		found=""
		for d in /dev/nvme0n1 /dev/sda /dev/mmcblk0; do
			if [ -b "$d" ]; then
				found=$d
				break
			fi
		done
		case "$found" in
			/dev/nvme0n1 | /dev/sda)
				echo "$found"
				return 0
				;;
			/dev/mmcblk0)
				if [ "$waited" -ge 10 ]; then
					echo "$found"
					return 0
				fi
				;;
		esac
		sleep 1
		waited=$((waited + 1))
	done
	return 1
}

if [ "$disk" = auto ]; then
	disk=$(pick_disk) || fail "no disk found (looked for /dev/nvme0n1, /dev/sda, /dev/mmcblk0); set disk in bootherd.toml"
else
	waited=0
	while [ ! -b "$disk" ] && [ "$waited" -lt 30 ]; do
		sleep 1
		waited=$((waited + 1))
	done
	[ -b "$disk" ] || fail "the configured disk $disk is not a block device here"
	# /dev/disk/by-id/… names a link: partitions and sizes go by the kernel's name.
	resolved=$(readlink -f "$disk" 2>/dev/null) && [ -b "$resolved" ] && disk=$resolved
fi

# Partition N of a disk: /dev/sda1, but /dev/mmcblk0p1, /dev/nvme0n1p1, /dev/loop0p1.
partition() {
	case "$1" in
		*[0-9]) echo "${1}p$2" ;;
		*) echo "$1$2" ;;
	esac
}

# The initramfs's own program $1 (its kernel's modprobe, its udevadm), by its
# path: it is not a busybox applet, so it is not in PATH.
initramfs_tool() {
	old_ifs=$IFS
	IFS=:
	for d in $initramfs_path; do
		if [ -x "$d/$1" ]; then
			IFS=$old_ifs
			echo "$d/$1"
			return 0
		fi
	done
	IFS=$old_ifs
	return 1
}

# The kernel learns the new partition table. Where both tools fail, udev
# does it: it re-reads a whole disk when a writer closes it.
reread_partitions() {
	blockdev --rereadpt "$disk" 2>/dev/null || partprobe "$disk" 2>/dev/null || true
	if udevadm=$(initramfs_tool udevadm); then
		"$udevadm" settle --timeout=10 || true
	fi
}

# Zeroes the first and the last MiB of the disk: the MBR, the GPT and its
# backup at the end, and the start of the boot partition. The Pi's bootloader
# then finds nothing to boot, rather than a half-written system.
wipe() {
	name=${disk##*/}
	sectors=$(cat "/sys/class/block/$name/size" 2>/dev/null || echo 0)
	dd if=/dev/zero of="$disk" bs=512 count=2048 conv=notrunc 2>/dev/null
	if [ "$sectors" -gt 4096 ]; then
		dd if=/dev/zero of="$disk" bs=512 seek=$((sectors - 2048)) count=2048 conv=notrunc 2>/dev/null
	fi
	sync
	reread_partitions
}

# Percent of the compressed stream hashed so far, read from the kernel's
# per-process I/O counters of the hashing process: it sees every byte.
report_progress() {
	[ "$size" -gt 0 ] 2>/dev/null || return 0
	last=0
	while kill -0 "$1" 2>/dev/null; do
		sleep 3
		read_bytes=$(sed -n 's/^rchar: //p' "/proc/$1/io" 2>/dev/null)
		[ -n "$read_bytes" ] || continue
		pct=$((read_bytes * 100 / size))
		[ "$pct" -le 100 ] || pct=100
		if [ "$pct" -ge $((last + 5)) ]; then
			last=$pct
			event progress "" "streamed $pct% of the image ($read_bytes of $size bytes)"
		fi
	done
}

say "installing $url$image onto $disk"
event start "" "writing $image to $disk"
rm -rf "$work"
mkdir -p "$work" "$mnt"
mkfifo "$work/hash"

# One pass over the network: the compressed stream is hashed (sha256 of the
# .img.xz, as SHA256SUMS states it) while it is decompressed onto the disk.
sha256sum <"$work/hash" >"$work/sha256" &
hash_pid=$!
report_progress "$hash_pid" &
progress_pid=$!
{
	wget -q -O - "$url$image"
	echo $? >"$work/fetch.rc"
} | tee "$work/hash" | {
	xzcat
	echo $? >"$work/xz.rc"
} | dd of="$disk" bs=4M conv=notrunc 2>"$work/dd.log"
write_rc=$?
wait "$hash_pid"
kill "$progress_pid" 2>/dev/null
sync

got=$(cut -d' ' -f1 "$work/sha256" 2>/dev/null)
fetch_rc=$(cat "$work/fetch.rc" 2>/dev/null || echo 1)
xz_rc=$(cat "$work/xz.rc" 2>/dev/null || echo 1)
# dd's "0+0 records out": nothing reached the disk (the download failed at
# once), so the system on it is still whole and is left alone.
if [ "$(sed -n 's/ records out$//p' "$work/dd.log")" = "0+0" ] && [ "$got" != "$sha256" ]; then
	fail "nothing was written: the download of $url$image failed (exit $fetch_rc); the disk is unchanged"
fi
# From here on the disk holds (part of) the new system: any failure wipes
# it, so the Pi never boots a half-written or unseeded system (an unseeded
# Ubuntu image would come up with its default login on this network).
abort() {
	wipe
	fail "$*; the partition table was wiped"
}
if [ "$got" != "$sha256" ]; then
	abort "checksum mismatch: the image streamed has sha256 $got, bootherd expected $sha256 (download exit $fetch_rc)"
fi
if [ "$fetch_rc" != 0 ] || [ "$xz_rc" != 0 ] || [ "$write_rc" != 0 ]; then
	abort "writing the image failed (download exit $fetch_rc, xz exit $xz_rc, write exit $write_rc)"
fi
event progress "" "image written and verified (sha256 $got)"

# The seed goes onto the image's first partition, its FAT `system-boot`,
# where Ubuntu's raspi images point cloud-init's NoCloud (fs_label system-boot).
reread_partitions
boot_part=$(partition "$disk" 1)
waited=0
while [ ! -b "$boot_part" ] && [ "$waited" -lt 20 ]; do
	sleep 1
	waited=$((waited + 1))
	reread_partitions
done
[ -b "$boot_part" ] || abort "$boot_part did not appear after writing the image"
if modprobe=$(initramfs_tool modprobe); then
	"$modprobe" -q vfat 2>/dev/null || true
fi
mount -t vfat "$boot_part" "$mnt" || abort "cannot mount the system-boot partition $boot_part"
for f in user-data meta-data network-config; do
	if ! wget -q -O "$mnt/$f.tmp" "$url/cloud-init/$mac/$f"; then
		umount "$mnt"
		abort "cannot fetch the cloud-init $f from bootherd"
	fi
	mv "$mnt/$f.tmp" "$mnt/$f" || {
		umount "$mnt"
		abort "cannot write $f onto $boot_part"
	}
done
# Pi kernels start with the memory cgroup off (the Pi 5 device tree even
# adds cgroup_disable=memory); kubelet cannot run without it. cmdline.txt
# is one line: the words go at its end, once.
if [ -f "$mnt/cmdline.txt" ]; then
	line=
	IFS= read -r line <"$mnt/cmdline.txt" || true
	case " $line " in
	*" cgroup_enable=memory "*) ;;
	*)
		if ! { printf '%s cgroup_enable=memory cgroup_memory=1\n' "$line" >"$mnt/cmdline.txt.tmp" &&
			mv "$mnt/cmdline.txt.tmp" "$mnt/cmdline.txt"; }; then
			umount "$mnt"
			abort "cannot turn on the memory cgroup in $boot_part's cmdline.txt"
		fi
		;;
	esac
fi
sync
umount "$mnt" || abort "cannot unmount $boot_part"
sync

event finish SUCCESS "image written to $disk and cloud-init seeded"
# Told for a minute: if bootherd never hears it, the machine would stay
# `installing` and its first boot could not report joining; wiping keeps
# disk and state in agreement (the next netboot installs again).
post installed "{}" 30 || abort "the install finished but bootherd could not be told"
say "installed"
exit 0
