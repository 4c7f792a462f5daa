# shellcheck shell=sh
# bootherd's Raspberry Pi installer, as an initramfs-tools boot script. The
# archive bootherd appends to Ubuntu's raspi initrd puts it at
# /scripts/bootherd; `boot=bootherd` on the kernel command line selects it.
#
# Why this hook point: initramfs-tools' /init sources /scripts/${BOOT} after
# udev has run and the modules are loaded, then calls mount_top,
# mount_premount and mountroot from it (this is how `boot=nfs` and casper
# work). A new file there replaces nothing of Ubuntu's. The alternatives are
# worse: a script under init-premount/ only runs when it is in that
# directory's ORDER file, and an appended ORDER would replace Ubuntu's and
# drop its entries; replacing /init (or rdinit=) would lose udev, module
# loading and configure_networking. Only `boot=bootherd` on a command line
# bootherd serves reaches this file, so the appended initrd boots like
# Ubuntu's own with any other command line.
#
# Sourced by /init: it uses /init's helpers (configure_networking, panic,
# log_*_msg from /scripts/functions). The installer runs under the static
# busybox the same archive carries (/bootherd/busybox), not the initramfs's
# shell: Ubuntu's raspi initrd has a reduced busybox, or only klibc's tools.
# Nothing here changes the initramfs's own tools or /init's PATH.

mount_top()
{
	:
}

mount_premount()
{
	:
}

mount_bottom()
{
	:
}

mountroot()
{
	# ip=dhcp on the command line: the same DHCP the Pi booted with.
	configure_networking
	if [ ! -x /bootherd/busybox ]; then
		panic "bootherd: /bootherd/busybox is missing from the initrd bootherd sent"
	fi
	if /bootherd/busybox sh /bootherd/install; then
		log_success_msg "bootherd: the install finished; rebooting into the installed system"
		/bootherd/busybox sync
		/bootherd/busybox reboot -f
		# Do not fall through to /init's root checks while the reboot happens.
		/bootherd/busybox sleep 60
	fi
	# No reboot on failure: bootherd still has the install due, so a reboot
	# would download the image again in a loop. The reason is on the console
	# and in bootherd's events.
	panic "bootherd: the install failed and was reported to bootherd; see the messages above"
}
