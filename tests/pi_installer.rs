//! The Raspberry Pi installer (issue 4 item 3): the `cmdline.txt` bootherd
//! renders, the cpio archive it appends to Ubuntu's raspi initrd, the Pi's
//! NoCloud seed (checked by `cloud-init schema`), and the installer hook run
//! for real.
//!
//! The hook test boots a QEMU VM (TCG) in a network namespace with bootherd
//! serving it. Debian's kernel stands in for Ubuntu's raspi kernel, and a
//! real initramfs-tools initrd, built for it by `mkinitramfs`, for Ubuntu's
//! initrd (the same /init, udev and `configure_networking`). It is built
//! with `BUSYBOX=n`, so it has only klibc's tools (no wget, xzcat,
//! sha256sum, sed, cut, tee): the installer must get by with the busybox
//! bootherd's archive carries. bootherd's
//! archive is appended to it as it is to Ubuntu's, so the kernel unpacks
//! the concatenation, and /init runs the hook from it through `boot=bootherd`.
//! The VM is x86 (an arm64 one under TCG, with an arm64 initramfs-tools
//! initrd, is out of reach here), so the busybox in its cache is the host's
//! static one, packaged with `dpkg-deb` and imported by bootherd's own
//! import and extraction code under the cache name of Debian's arm64
//! package; the arm64 package itself is imported and put into the archive by
//! `appendix_lists_with_cpio_and_unpacks_with_the_hook_in_place`.
//! The disk is a file behind an NVMe controller (the configured `disk`) or
//! an SD card (no `disk`: the hook's default, the first of NVMe, USB, SD).
//! Why a VM and not a loop device on the host: the hook mounts the image's
//! FAT `system-boot`, and the kernels CI runs on may have no vfat (this one
//! has no modules at all). The VM's kernel brings its own.
//!
//! Needs root, `qemu-system-x86`, `linux-image-amd64`, `initramfs-tools`
//! (with `klibc-utils`), `busybox-static` (the host's, and the arm64 package
//! tests/install-deps.sh downloads), `dpkg-deb`, `cpio`, `dosfstools`, `mtools`, `e2fsprogs`, `fdisk`
//! (sfdisk), `xz-utils`, `cloud-init`.

mod common;

use bootherd::app::App;
use bootherd::config::{Config, Machine};
use bootherd::images::{self, catalog, verify};
use bootherd::inventory::State;
use bootherd::pi::installer::{self, seed};
use bootherd::store::{SqliteStore, Store};
use common::{lan_config, machine, require, sh, Netns, Server};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

const PI_MAC: &str = "dc:a6:32:01:02:03";
const SERVER_CIDR: &str = "10.55.0.1/24";
/// A boot of the stand-in plus writing the test image takes about a minute
/// under TCG; more while other VMs share the cores.
const VM_TIMEOUT_SECS: u64 = 300;
const MIB: usize = 1024 * 1024;
/// What the boot script hands initramfs-tools' `panic` when the install failed.
const FAILED: &str = "bootherd: the install failed and was reported to bootherd";
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBootherdTestKeyOnly ops@example";

/// The inventory: a control plane (the config needs one) and the Pi, with
/// its `disk` when given.
fn machines(disk: Option<&str>) -> String {
    let disk = disk
        .map(|d| format!("disk = \"{d}\"\n"))
        .unwrap_or_default();
    format!(
        "{}{}\nplatform = \"rpi4\"\n{disk}\n",
        machine("52:54:00:aa:00:01", "cp1", "control-plane", "10.55.0.11"),
        machine(PI_MAC, "pi1", "worker", "10.55.0.31").trim_end(),
    )
}

fn lab_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab/lab.sh")
}

/// Deterministic bytes that xz cannot shrink much, so the stream takes a while.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The test's Pi image (`common::raspi_image`): boot files in `system-boot`
/// (with the image's own `user-data`, which the seed replaces) and an ext4
/// `writable` with a root file system.
struct PiImage {
    xz: PathBuf,
    raw: Vec<u8>,
    boot: Range<usize>,
    boot_files: BTreeMap<String, Vec<u8>>,
}

fn make_image(dir: &Path) -> PiImage {
    let boot_files: BTreeMap<String, Vec<u8>> = [
        ("vmlinuz", noise(3 * MIB, 1)),
        ("initrd.img", noise(2 * MIB, 2)),
        ("bcm2711-rpi-4-b.dtb", noise(50_000, 3)),
        ("overlays/vc4-kms-v3d.dtbo", noise(4_000, 5)),
        (
            "config.txt",
            b"[all]\nkernel=vmlinuz\ninitramfs initrd.img followkernel\n".to_vec(),
        ),
        (
            "user-data",
            b"#cloud-config\n# the image's own default\n".to_vec(),
        ),
        (
            "cmdline.txt",
            b"console=serial0,115200 multipath=off dwc_otg.lpm_enable=0 console=tty1 root=LABEL=writable rootfstype=ext4 rootwait fixrtc\n".to_vec(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let root = dir.join("root-src");
    std::fs::create_dir_all(root.join("etc/cloud/cloud.cfg.d")).unwrap();
    std::fs::write(
        root.join("etc/cloud/cloud.cfg.d/99-fake_cloud.cfg"),
        "datasource_list: [NoCloud, None]\ndatasource:\n  NoCloud:\n    fs_label: system-boot\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/hostname"), "ubuntu\n").unwrap();
    std::fs::write(root.join("payload.bin"), noise(3 * MIB, 4)).unwrap();
    let image = common::raspi_image(dir, &boot_files, Some(&root));
    PiImage {
        xz: image.xz,
        raw: image.raw,
        boot: image.boot,
        boot_files,
    }
}

/// The test's view of the running server: the same config and store.
fn app_for(server: &Server) -> (App, Config) {
    let (config, _) = Config::load(&server.config_path).unwrap();
    let store = SqliteStore::open(&server.data_dir).unwrap();
    (
        App::new(config.clone(), None, None, Arc::new(store)),
        config,
    )
}

fn pi(config: &Config) -> Machine {
    config.machine_by_name("pi1").unwrap().clone()
}

/// Places `xz` as the cached Pi image, with `recorded` as its verified digest.
fn place_image(config: &Config, xz: &[u8], recorded: &str) {
    let path = images::raspi_image(config);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, xz).unwrap();
    verify::write_record(&path, recorded).unwrap();
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Imports the busybox-static package `deb` into the cache of `config` with
/// bootherd's own import (checksum, then extraction of `bin/busybox`), as
/// the catalog entry `entry` describes it.
fn import_busybox(config: &Config, entry: &catalog::Entry, deb: &Path) {
    let media = tempfile::tempdir().unwrap();
    std::fs::copy(deb, media.path().join(deb.file_name().unwrap())).unwrap();
    let names = images::import::import(
        std::slice::from_ref(entry),
        media.path(),
        &images::images_dir(config),
    )
    .unwrap();
    assert_eq!(names, std::slice::from_ref(&entry.name));
}

/// The catalog's entry for the Pi installer's arm64 busybox.
fn busybox_entry() -> &'static catalog::Entry {
    catalog::builtin()
        .iter()
        .find(|e| e.name == images::BUSYBOX_ENTRY)
        .expect("the catalog lists the Pi installer's busybox")
}

/// The stand-in for it in the x86 VM: the host's static busybox, packaged,
/// under the same catalog `dest` (so it lands where the archive reads it),
/// pinned to the package's digest.
fn import_host_busybox(config: &Config, work: &Path) {
    let host = std::fs::read("/bin/busybox").expect("the host's busybox-static");
    let deb = common::build_deb(work, "busybox-static", "amd64", &[("bin/busybox", &host)]);
    let digest = sha256(&std::fs::read(&deb).unwrap());
    let text = format!(
        "[[image]]\nname = \"busybox-static-amd64\"\nkind = \"busybox-deb\"\narch = \"amd64\"\ndest = \"{}\"\nurl = \"http://unused.invalid/{}\"\nsha256 = \"{digest}\"\n",
        busybox_entry().dest.display(),
        deb.file_name().unwrap().to_str().unwrap()
    );
    let entries = catalog::parse(&text).unwrap();
    import_busybox(config, &entries[0], &deb);
    assert!(std::fs::read(images::pi_busybox(config)).unwrap() == host);
}

fn unpack_appendix(appendix: &[u8], into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let mut child = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(into)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(appendix).unwrap();
    assert!(child.wait().unwrap().success(), "cpio -id failed");
}

#[test]
fn appendix_lists_with_cpio_and_unpacks_with_the_hook_in_place() {
    require(&["cpio"]);
    let server_dir = tempfile::tempdir().unwrap();
    let config_text = common::http_only_config(common::free_port(), &machines(Some("/dev/sda")))
        .replace("@DATA@", server_dir.path().to_str().unwrap());
    let (config, _) = bootherd::config::parse(&config_text).unwrap();
    let store = SqliteStore::open(&config.server.data_dir).unwrap();
    let app = App::new(config.clone(), None, None, Arc::new(store));
    // Without the busybox in the cache the error names it and what gets it.
    let err = format!(
        "{:#}",
        installer::initrd_appendix(&app, &config, &pi(&config)).unwrap_err()
    );
    let busybox_path = images::pi_busybox(&config);
    assert!(
        err.contains(&busybox_path.display().to_string())
            && err.contains("bootherd images fetch busybox-static-arm64"),
        "{err}"
    );
    // Debian's arm64 busybox-static, as `images import` takes it from media
    // (under the name `apt-get download` gave it).
    let deb = common::arm64_busybox_deb();
    import_busybox(&config, busybox_entry(), &deb);
    let busybox = common::dpkg_extract(&deb, "bin/busybox");
    assert!(std::fs::read(&busybox_path).unwrap() == busybox);
    let appendix = installer::initrd_appendix(&app, &config, &pi(&config)).unwrap();

    let mut child = Command::new("cpio")
        .args(["-t", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&appendix).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "cpio -t refused the appendix");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "scripts\nscripts/bootherd\nbootherd\nbootherd/install\nbootherd/busybox\n"
    );

    // Unpacked over an initrd that already has Ubuntu's /scripts, as the
    // kernel does: the hook lands beside what is there and replaces nothing.
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("scripts/init-premount")).unwrap();
    std::fs::write(root.path().join("scripts/local"), "ubuntu's local\n").unwrap();
    std::fs::write(
        root.path().join("scripts/init-premount/ORDER"),
        "ubuntu's order\n",
    )
    .unwrap();
    unpack_appendix(&appendix, root.path());
    let read = |p: &str| std::fs::read_to_string(root.path().join(p)).unwrap();
    assert_eq!(read("scripts/bootherd"), installer::BOOT_SCRIPT);
    assert_eq!(read("bootherd/install"), installer::INSTALL_SCRIPT);
    assert!(
        std::fs::read(root.path().join(installer::BUSYBOX_PATH)).unwrap() == busybox,
        "the archive carries Debian's arm64 busybox as the package has it"
    );
    assert_eq!(read("scripts/local"), "ubuntu's local\n");
    assert_eq!(read("scripts/init-premount/ORDER"), "ubuntu's order\n");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(root.path().join("bootherd/install"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "the installer must be executable");
    let mode = std::fs::metadata(root.path().join(installer::BUSYBOX_PATH))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755, "the busybox must be executable");

    // Same input, same bytes: the archive can be cached and compared.
    assert_eq!(
        appendix,
        installer::initrd_appendix(&app, &config, &pi(&config)).unwrap()
    );
    // An x86 machine gets no Pi installer.
    let cp1 = config.machine_by_name("cp1").unwrap();
    assert!(installer::initrd_appendix(&app, &config, cp1).is_err());
    assert!(installer::cmdline(&app, &config, cp1).is_err());
}

#[test]
fn cmdline_carries_the_image_digest_and_the_install_token() {
    let server_dir = tempfile::tempdir().unwrap();
    let config_text =
        common::http_only_config(common::free_port(), &machines(Some("/dev/nvme0n1")))
            .replace("@DATA@", server_dir.path().to_str().unwrap());
    let (config, _) = bootherd::config::parse(&config_text).unwrap();
    let store = Arc::new(SqliteStore::open(&config.server.data_dir).unwrap());
    let app = App::new(config.clone(), None, None, store.clone());
    let machine = pi(&config);

    // Without the image, or without its verified digest, the error says what to do.
    let err = format!(
        "{:#}",
        installer::cmdline(&app, &config, &machine).unwrap_err()
    );
    assert!(err.contains("bootherd images fetch"), "{err}");
    let image = images::raspi_image(&config);
    std::fs::create_dir_all(image.parent().unwrap()).unwrap();
    std::fs::write(&image, b"not really xz").unwrap();
    let err = format!(
        "{:#}",
        installer::cmdline(&app, &config, &machine).unwrap_err()
    );
    assert!(err.contains("no recorded sha256"), "{err}");

    let digest = sha256(b"not really xz");
    verify::write_record(&image, &digest).unwrap();
    let line = installer::cmdline(&app, &config, &machine).unwrap();
    assert!(line.ends_with('\n') && !line.trim_end().contains('\n'));
    let token = store.install_token(machine.mac).unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    for want in [
        "console=serial0,115200",
        "console=tty1",
        "ip=dhcp",
        "BOOTIF=01-dc-a6-32-01-02-03",
        "boot=bootherd",
        &format!("bootherd.url={}", config.http_base()),
        "bootherd.mac=dc-a6-32-01-02-03",
        &format!("bootherd.token={token}"),
        "bootherd.image=/assets/ubuntu-24.04-raspi/preinstalled-server.img.xz",
        &format!("bootherd.sha256={digest}"),
        "bootherd.size=13",
        "bootherd.disk=/dev/nvme0n1",
    ] {
        assert!(words.contains(&want), "{want} missing from {line}");
    }
    // The install token is minted once per install: asking again keeps it.
    assert_eq!(line, installer::cmdline(&app, &config, &machine).unwrap());

    // No disk configured: the hook picks the first of NVMe, USB, SD.
    let auto = Machine {
        disk: None,
        ..machine.clone()
    };
    assert!(installer::cmdline(&app, &config, &auto)
        .unwrap()
        .contains(" bootherd.disk=auto\n"));
}

#[test]
fn a_pi_disk_that_is_not_one_kernel_word_is_refused_with_its_line() {
    let text = common::http_only_config(1, &machines(Some("/dev/sda bootherd.url=http://evil")))
        .replace("@DATA@", "/tmp/unused");
    let findings = bootherd::config::parse(&text).unwrap_err();
    let line = text.lines().position(|l| l.starts_with("disk = ")).unwrap() + 1;
    assert!(
        findings.iter().any(|f| f.line == line
            && f.message.contains("not a plain device path")
            && f.fix.contains("/dev/mmcblk0")),
        "{findings:#?}"
    );
    // x86 disks are autoinstall match paths (globs allowed): not checked here.
    let x86 = text.replace("platform = \"rpi4\"\n", "");
    assert!(bootherd::config::parse(&x86).is_ok());
}

#[test]
fn pi_seed_is_cloud_config_with_the_role_first_boot_and_passes_cloud_init_schema() {
    require(&["cloud-init"]);
    let port = common::free_port();
    let server = Server::start_local(
        &common::http_only_config(
            port,
            &format!(
                "{}[[machine]]\nmac = \"d8:3a:dd:00:00:05\"\nhostname = \"pi5cp\"\nrole = \"control-plane\"\nip = \"10.55.0.32\"\nplatform = \"rpi5\"\n\n{}",
                machines(Some("/dev/mmcblk0")),
                machine("52:54:00:12:34:56", "w1", "worker", "10.55.0.41")
            ),
        )
        .replace(
            "load_balancer = \"stacked\"",
            &format!("load_balancer = \"stacked\"\nssh_authorized_keys = [\"{SSH_KEY}\"]"),
        ),
    );
    let (app, config) = app_for(&server);
    for (host, mac) in [("pi1", "dc-a6-32-01-02-03"), ("pi5cp", "d8-3a-dd-00-00-05")] {
        let (status, user_data) =
            server.curl(&[&format!("{}/cloud-init/{mac}/user-data", server.http)]);
        assert_eq!(status, 200, "{host}: {user_data}");
        let machine = config.machine_by_name(host).unwrap();
        assert_eq!(user_data, seed::user_data(&app, &config, machine).unwrap());
        // `bootherd render` prints exactly what is served.
        let mac_colons = mac.replace('-', ":");
        assert_eq!(
            server.cli(&["render", "--mac", &mac_colons, "user-data"]),
            user_data
        );
        assert!(user_data.starts_with("#cloud-config\n"));
        let doc: serde_yaml::Value = serde_yaml::from_str(&user_data).unwrap();
        assert!(
            doc.get("autoinstall").is_none(),
            "{host}: the Pi seed is not autoinstall"
        );
        assert_eq!(doc["hostname"].as_str(), Some(host));
        assert_eq!(doc["ssh_authorized_keys"][0].as_str(), Some(SSH_KEY));
        assert_eq!(doc["ssh_pwauth"].as_bool(), Some(false));
        // The same role first boot as x86: the role script runs, with its files.
        let script = if host == "pi1" {
            "worker.sh"
        } else {
            "control-plane.sh"
        };
        assert_eq!(
            doc["runcmd"][1][4].as_str(),
            Some("bootherd-firstboot.service"),
            "the unit that runs the role script is started"
        );
        let unit = doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str() == Some("/etc/systemd/system/bootherd-firstboot.service"))
            .and_then(|f| f["content"].as_str())
            .unwrap();
        assert!(
            unit.contains(&format!("ExecStart=/usr/local/lib/bootherd/{script}\n")),
            "{unit}"
        );
        let paths: Vec<&str> = doc["write_files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert!(
            paths.contains(&"/etc/bootherd/kubeadm-join.yaml"),
            "{paths:?}"
        );
        assert!(
            paths.contains(&"/etc/sudoers.d/90-bootherd-ubuntu"),
            "sudo works for the SSH user: {paths:?}"
        );
        assert_eq!(
            paths.contains(&"/etc/bootherd/pki/ca.key"),
            host == "pi5cp",
            "only a control plane gets the CA key: {paths:?}"
        );

        cloud_init_schema(
            &server.data_dir.join(format!("{host}.user-data")),
            &user_data,
        );

        let (status, net) =
            server.curl(&[&format!("{}/cloud-init/{mac}/network-config", server.http)]);
        assert_eq!(status, 200, "{host}: {net}");
        assert_eq!(
            server.cli(&["render", "--mac", &mac_colons, "network-config"]),
            net
        );
        let net: serde_yaml::Value = serde_yaml::from_str(&net).unwrap();
        let eth = &net["ethernets"]["provisioning"];
        assert_eq!(net["version"].as_u64(), Some(2));
        assert_eq!(
            eth["match"]["macaddress"].as_str(),
            Some(mac.replace('-', ":").as_str())
        );
        assert_eq!(
            eth["addresses"][0].as_str(),
            Some(
                format!(
                    "{}/{}",
                    machine.ip,
                    config
                        .dhcp
                        .subnet_containing(machine.ip)
                        .map_or(32, |s| s.net.prefix_len())
                )
                .as_str()
            )
        );
        assert_eq!(eth["dhcp4"].as_bool(), Some(false));
    }
    // Without SSH keys the list is left out (cloud-init refuses an empty one).
    let no_keys = tempfile::tempdir().unwrap();
    let text = common::http_only_config(common::free_port(), &machines(Some("/dev/sda")))
        .replace("@DATA@", no_keys.path().to_str().unwrap());
    let (bare, _) = bootherd::config::parse(&text).unwrap();
    let bare_app = App::new(
        bare.clone(),
        None,
        None,
        Arc::new(SqliteStore::open(&bare.server.data_dir).unwrap()),
    );
    let user_data = seed::user_data(&bare_app, &bare, &pi(&bare)).unwrap();
    assert!(!user_data.contains("ssh_authorized_keys"));
    cloud_init_schema(&no_keys.path().join("user-data"), &user_data);

    // The MAC stays a string for YAML 1.1 readers (cloud-init and netplan
    // are Python), also the all-digit one in an x86 autoinstall user-data.
    let (status, x86) = server.curl(&[&format!(
        "{}/cloud-init/52-54-00-12-34-56/user-data",
        server.http
    )]);
    assert_eq!(status, 200, "{x86}");
    let (_, pi_net) = server.curl(&[&format!(
        "{}/cloud-init/dc-a6-32-01-02-03/network-config",
        server.http
    )]);
    for (text, path, want) in [
        (
            &x86,
            "['autoinstall']['network']['ethernets']['provisioning']['match']['macaddress']",
            "52:54:00:12:34:56",
        ),
        (
            &pi_net,
            "['ethernets']['provisioning']['match']['macaddress']",
            "dc:a6:32:01:02:03",
        ),
    ] {
        let mut py = Command::new("python3")
            .args([
                "-c",
                &format!("import sys, yaml; print(repr(yaml.safe_load(sys.stdin){path}))"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
        let out = py.wait_with_output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("'{want}'"),
            "PyYAML must read the MAC as a string"
        );
    }

    // /assets/ubuntu-24.04-raspi/ serves the image and nothing else there.
    let (status, body) = server.curl(&[&format!(
        "{}/assets/ubuntu-24.04-raspi/preinstalled-server.img.xz",
        server.http
    )]);
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("is missing"), "{body}");
    place_image(&config, b"xz bytes", &sha256(b"xz bytes"));
    let (status, body) = server.curl(&[&format!(
        "{}/assets/ubuntu-24.04-raspi/preinstalled-server.img.xz",
        server.http
    )]);
    assert_eq!((status, body.as_str()), (200, "xz bytes"));
    for other in [
        "preinstalled-server.img.xz.sha256",
        "boot.sha256",
        "vmlinuz",
    ] {
        let (status, _) = server.curl(&[&format!(
            "{}/assets/ubuntu-24.04-raspi/{other}",
            server.http
        )]);
        assert_eq!(status, 404, "{other}");
    }

    // x86 keeps its autoinstall seed and has no network-config file.
    let (status, _) = server.curl(&[&format!(
        "{}/cloud-init/52-54-00-aa-00-01/network-config",
        server.http
    )]);
    assert_eq!(status, 404);
}

fn cloud_init_schema(file: &Path, user_data: &str) {
    std::fs::write(file, user_data).unwrap();
    let out = Command::new("cloud-init")
        .args(["schema", "-c"])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: cloud-init schema refused the Pi user-data:\n{}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A provisioning network in a namespace (bridge `bh0`, `tap0` for the VM)
/// with `bootherd serve` on it, and the test's view of its config and store.
struct Lab {
    // Field order is drop order: stop bootherd, delete the namespace (and
    // anything left in it), then the files.
    server: Server,
    ns: Netns,
    app: App,
    config: Config,
    work: tempfile::TempDir,
}

impl Lab {
    /// `disk`: the Pi's configured `disk`, or None for the hook's default.
    fn start(tag: &str, disk: Option<&str>) -> Lab {
        require(&[
            "qemu-system-x86_64",
            "busybox",
            "cpio",
            "mkfs.vfat",
            "mkfs.ext4",
            "mcopy",
            "sfdisk",
            "xz",
            "timeout",
            "dpkg-deb",
        ]);
        let work = tempfile::tempdir().unwrap();
        let ns = Netns::new(tag);
        sh(Command::new(lab_script()).args(["net-up", &ns.name, SERVER_CIDR, "bh0"]));
        let server = Server::start(&ns, &lan_config(&machines(disk)));
        let (app, config) = app_for(&server);
        import_host_busybox(&config, work.path());
        Lab {
            server,
            ns,
            app,
            config,
            work,
        }
    }

    /// Boots the stand-in with `cmdline` (bootherd's `cmdline.txt`) and
    /// bootherd's initrd appendix, `disk` attached as `disk_if`; returns
    /// the serial console.
    fn boot(&self, disk: &Path, disk_if: &str, cmdline: &str, tag: &str) -> String {
        let (ns, work, app, config) = (&self.ns, self.work.path(), &self.app, &self.config);
        let machine = pi(config);
        let kernel =
            String::from_utf8(sh(Command::new(lab_script()).arg("kernel")).stdout).unwrap();
        let kernel = kernel.trim();
        let base = work.join("initramfs-tools.initrd");
        if !base.exists() {
            build_initramfs_tools_initrd(work, kernel, &base);
        }
        // Ubuntu's initrd is compressed; the appendix follows it uncompressed
        // (after the padding the kernel needs), as the TFTP server serves the two.
        let initrd = installer::concatenate(
            &std::fs::read(&base).unwrap(),
            &installer::initrd_appendix(app, config, &machine).unwrap(),
        );
        let initrd_path = work.join(format!("{tag}.initrd"));
        std::fs::write(&initrd_path, initrd).unwrap();

        let log = work.join(format!("{tag}.serial.log"));
        let started = Instant::now();
        let out = Command::new(lab_script())
            .args(["boot", &ns.name, "--mac", PI_MAC, "--log"])
            .arg(&log)
            .args(["--timeout", &VM_TIMEOUT_SECS.to_string()])
            .args(["--kernel", kernel])
            .arg("--initrd")
            .arg(&initrd_path)
            // console=ttyS0 last: the x86 VM's serial port is the console.
            // panic=-1: initramfs-tools reboots (the VM ends) where a Pi
            // would wait at the initramfs shell with the reason.
            .args([
                "--append",
                &format!("{} console=ttyS0 panic=-1", cmdline.trim()),
            ])
            .arg("--disk")
            .arg(disk)
            .args(["--disk-if", disk_if])
            .output()
            .unwrap();
        let serial = String::from_utf8_lossy(&std::fs::read(&log).unwrap_or_default()).into_owned();
        eprintln!(
            "{tag}: the installer VM ran {:.1} s",
            started.elapsed().as_secs_f64()
        );
        assert!(
            out.status.success(),
            "{tag}: the VM did not finish by itself ({}): {}\n--- serial ---\n{serial}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serial
    }
}

/// A real initramfs-tools initrd for the stand-in kernel, as Ubuntu builds
/// its raspi initrd (same /init, /scripts/functions, udev, DHCP by
/// configure_networking), with the drivers of the VM's NIC and disks and FAT
/// for system-boot. With `BUSYBOX=n`: klibc's tools only, none of the ones
/// the installer needs, which it must take from bootherd's busybox.
fn build_initramfs_tools_initrd(work: &Path, kernel: &str, out: &Path) {
    require(&["mkinitramfs", "lsinitramfs"]);
    let version = kernel
        .rsplit('/')
        .next()
        .and_then(|f| f.strip_prefix("vmlinuz-"))
        .unwrap_or_else(|| panic!("cannot tell the version of {kernel}"));
    let conf = work.join("initramfs-tools");
    std::fs::create_dir_all(conf.join("conf.d")).unwrap();
    std::fs::create_dir_all(conf.join("scripts")).unwrap();
    std::fs::create_dir_all(conf.join("hooks")).unwrap();
    std::fs::write(
        conf.join("initramfs.conf"),
        "MODULES=list\nBUSYBOX=n\nCOMPRESS=gzip\nRUNSIZE=10%\n",
    )
    .unwrap();
    // The Pi's own drivers (genet, macb, its SD and NVMe controllers) are in
    // Ubuntu's initrd; here the VM's stand in for them.
    std::fs::write(
        conf.join("modules"),
        "virtio_pci\nvirtio_net\nnvme\nsdhci_pci\nmmc_block\nvfat\nnls_cp437\nnls_ascii\nnls_utf8\n",
    )
    .unwrap();
    sh(Command::new("mkinitramfs")
        .arg("-d")
        .arg(&conf)
        .arg("-o")
        .arg(out)
        .arg(version)
        .stderr(Stdio::null()));
    // What the test stands on: no busybox, and none of the installer's
    // tools, in the initrd the installer is appended to.
    let listing = String::from_utf8(sh(Command::new("lsinitramfs").arg(out)).stdout).unwrap();
    let names: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.rsplit('/').next())
        .collect();
    assert!(names.contains(&"ipconfig"), "klibc's tools are there");
    for tool in ["busybox", "wget", "xzcat", "sha256sum", "sed", "cut", "tee"] {
        assert!(
            !names.contains(&tool),
            "the BUSYBOX=n initrd has {tool}:\n{listing}"
        );
    }
}

fn events(app: &App, config: &Config) -> Vec<String> {
    app.store
        .events(pi(config).mac, 1000)
        .unwrap()
        .into_iter()
        .map(|e| format!("{}: {}", e.kind, e.message))
        .collect()
}

fn mcopy_out(disk: &Path, offset: usize, name: &str) -> Vec<u8> {
    sh(Command::new("mcopy")
        .args(["-n", "-i"])
        .arg(format!("{}@@{offset}", disk.display()))
        .arg(format!("::{name}"))
        .arg("-"))
    .stdout
}

#[test]
fn installer_hook_installs_for_real_and_never_leaves_a_half_written_disk() {
    let lab = Lab::start("pii", Some("/dev/nvme0n1"));
    let (app, config, server, work) = (&lab.app, &lab.config, &lab.server, &lab.work);
    let image = make_image(work.path());
    let good_xz = std::fs::read(&image.xz).unwrap();
    let digest = sha256(&good_xz);
    let mac = pi(config).mac;

    // The Pi's disk holds an older system: a pattern where the image will go
    // and beyond it, so both overwriting and wiping are visible.
    let disk = work.path().join("disk.img");
    let disk_len = image.raw.len() + 8 * MIB;
    let old = vec![0x5Au8; disk_len];
    std::fs::write(&disk, &old).unwrap();

    // 1. The image vanishes from bootherd after cmdline.txt was served:
    // the download fails before a byte is written, the failure is reported
    // and the old system stays whole.
    place_image(config, &good_xz, &digest);
    let cmdline = installer::cmdline(app, config, &pi(config)).unwrap();
    std::fs::remove_file(images::raspi_image(config)).unwrap();
    let serial = lab.boot(&disk, "nvme", &cmdline, "missing");
    assert!(serial.contains(FAILED), "{serial}");
    let ev = events(app, config);
    assert!(
        ev.iter()
            .any(|e| e.contains("[FAIL]") && e.contains("nothing was written")),
        "the failure must be reported: {ev:#?}"
    );
    assert!(
        std::fs::read(&disk).unwrap() == old,
        "a download that wrote nothing must leave the disk as it was"
    );

    // 2. A corrupted download (the digest bootherd recorded is the good
    // one): the failure is reported, the partition table wiped, no reboot.
    let mut bad_xz = good_xz.clone();
    let mid = bad_xz.len() / 2;
    for b in &mut bad_xz[mid..mid + 64] {
        *b ^= 0xFF;
    }
    place_image(config, &bad_xz, &digest);
    let cmdline = installer::cmdline(app, config, &pi(config)).unwrap();
    let serial = lab.boot(&disk, "nvme", &cmdline, "corrupt");
    assert!(
        serial.contains(FAILED),
        "the hook must stop, not reboot:\n{serial}"
    );
    assert!(serial.contains("checksum mismatch"), "{serial}");
    let ev = events(app, config);
    assert!(
        ev.iter()
            .any(|e| e.contains("finish bootherd/pi-installer [FAIL]")
                && e.contains("checksum mismatch")),
        "the failure must be reported: {ev:#?}"
    );
    assert_ne!(app.state_of(config, mac).unwrap(), State::Installed);
    let wiped = std::fs::read(&disk).unwrap();
    assert!(
        wiped[..MIB].iter().all(|&b| b == 0),
        "the first MiB (MBR and the boot partition's start) must be zeroed"
    );
    assert!(
        wiped[disk_len - MIB..].iter().all(|&b| b == 0),
        "the last MiB (a GPT backup) must be zeroed"
    );
    let table = Command::new("sfdisk")
        .arg("-d")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(
        !table.status.success() || !String::from_utf8_lossy(&table.stdout).contains("start="),
        "a partition table survived: {}",
        String::from_utf8_lossy(&table.stdout)
    );

    // 3. The image is written but its seed cannot be had (an operator's
    // template override renders a network-config bootherd refuses to
    // serve): the written system is wiped, never left to boot unseeded.
    place_image(config, &good_xz, &digest);
    std::fs::write(&disk, &old).unwrap();
    let overrides = server.data_dir.join("templates/cloud-init");
    std::fs::create_dir_all(&overrides).unwrap();
    std::fs::write(
        overrides.join("network-config"),
        "version: 1
",
    )
    .unwrap();
    server.cli(&["reload"]);
    let serial = lab.boot(&disk, "nvme", &cmdline, "unseeded");
    assert!(
        serial.contains("cannot fetch the cloud-init network-config"),
        "{serial}"
    );
    let unseeded = std::fs::read(&disk).unwrap();
    let n = image.raw.len();
    assert!(
        unseeded[image.boot.end..n] == image.raw[image.boot.end..n],
        "the image was written before the seed step"
    );
    assert!(
        unseeded[..MIB].iter().all(|&b| b == 0)
            && unseeded[disk_len - MIB..].iter().all(|&b| b == 0),
        "an unseeded system must be wiped"
    );
    assert_ne!(app.state_of(config, mac).unwrap(), State::Installed);
    std::fs::remove_file(overrides.join("network-config")).unwrap();
    server.cli(&["reload"]);
    let wiped = unseeded;

    // 4. The good image: written byte-exact, seeded, reported, rebooted.
    let serial = lab.boot(&disk, "nvme", &cmdline, "good");
    assert_installed(app, config, &image, &disk, "/dev/nvme0n1", &wiped, &serial);
    let n = image.raw.len();
    assert!(
        std::fs::read(&disk).unwrap()[n..disk_len - MIB]
            .iter()
            .all(|&b| b == 0x5A),
        "the old system's bytes past the image are untouched"
    );
}

/// Everything a successful install leaves behind: the reboot, the state and
/// events in bootherd, the disk byte-identical to the image outside
/// `system-boot` (and untouched past it), and the seed on `system-boot`.
fn assert_installed(
    app: &App,
    config: &Config,
    image: &PiImage,
    disk: &Path,
    disk_name: &str,
    before: &[u8],
    serial: &str,
) {
    let mac = pi(config).mac;
    let n = image.raw.len();
    // initramfs-tools' own /init ran the hook, after udev and its DHCP.
    for step in [
        "Running /scripts/init-premount",
        "complete (dhcp from 10.55.0.1)",
    ] {
        assert!(serial.contains(step), "no `{step}`:\n{serial}");
    }
    // It ran under the busybox bootherd's archive carries (the initrd has
    // none, and no wget, xzcat or sha256sum of its own).
    assert!(
        serial.contains("bootherd: tools: /bootherd/busybox, BusyBox v"),
        "{serial}"
    );
    assert!(
        !serial.contains(": not found"),
        "a tool was missing:\n{serial}"
    );
    assert!(serial.contains("bootherd: installed"), "{serial}");
    assert!(!serial.contains(FAILED), "{serial}");
    assert!(
        serial.contains("reboot: Restarting system"),
        "after success the Pi reboots into its disk:\n{serial}"
    );
    assert_eq!(app.state_of(config, mac).unwrap(), State::Installed);
    let ev = events(app, config);
    eprintln!("events: {ev:#?}");
    let start = format!(
        "start bootherd/pi-installer [writing /assets/ubuntu-24.04-raspi/preinstalled-server.img.xz to {disk_name}]"
    );
    for want in [
        start.as_str(),
        "image written and verified (sha256",
        "finish bootherd/pi-installer [SUCCESS]",
        "install-finished",
    ] {
        assert!(
            ev.iter().any(|e| e.contains(want)),
            "no event {want}: {ev:#?}"
        );
    }

    let written = std::fs::read(disk).unwrap();
    assert!(
        written[..image.boot.start] == image.raw[..image.boot.start],
        "the MBR and the gap before system-boot differ from the image"
    );
    assert!(
        written[image.boot.end..n] == image.raw[image.boot.end..n],
        "the writable partition differs from the image"
    );
    assert!(
        written[n..] == before[n..],
        "the disk past the image must be left as it was"
    );

    // The seed on system-boot is what bootherd serves this install, and the
    // image's own boot files are intact.
    let machine = pi(config);
    let off = image.boot.start;
    assert_eq!(
        String::from_utf8(mcopy_out(disk, off, "user-data")).unwrap(),
        seed::user_data(app, config, &machine).unwrap()
    );
    assert_eq!(
        String::from_utf8(mcopy_out(disk, off, "network-config")).unwrap(),
        seed::network_config(app, config, &machine).unwrap()
    );
    let meta = String::from_utf8(mcopy_out(disk, off, "meta-data")).unwrap();
    assert_eq!(meta, bootherd::artifacts::meta_data(app, &machine).unwrap());
    let token = app.store.install_token(mac).unwrap();
    assert!(
        meta.contains(&format!("instance-id: bootherd-pi1-{}", &token[..12])),
        "{meta}"
    );
    // kubelet needs the memory cgroup, which Pi kernels start without.
    let cmdline = String::from_utf8(mcopy_out(disk, off, "cmdline.txt")).unwrap();
    let original = String::from_utf8(image.boot_files["cmdline.txt"].clone()).unwrap();
    assert_eq!(
        cmdline,
        format!(
            "{} cgroup_enable=memory cgroup_memory=1\n",
            original.trim_end()
        ),
        "one line, the image's words kept"
    );
    for (name, data) in &image.boot_files {
        if name != "user-data" && name != "cmdline.txt" {
            assert_eq!(&mcopy_out(disk, off, name), data, "{name} changed");
        }
    }
}

#[test]
fn installer_hook_installs_onto_an_sd_card_when_it_is_the_only_disk() {
    let lab = Lab::start("pisd", None);
    let (app, config) = (&lab.app, &lab.config);
    let image = make_image(lab.work.path());
    let xz = std::fs::read(&image.xz).unwrap();
    place_image(config, &xz, &sha256(&xz));

    // A Pi 4 with only its SD card: no `disk` configured, the hook waits
    // for USB a while, then takes the card (partition 1 is mmcblk0p1).
    let disk = lab.work.path().join("sd.img");
    let before = vec![0u8; 128 * MIB];
    assert!(before.len() > image.raw.len());
    std::fs::write(&disk, &before).unwrap();
    let cmdline = installer::cmdline(app, config, &pi(config)).unwrap();
    let serial = lab.boot(&disk, "sd", &cmdline, "sd");
    assert_installed(app, config, &image, &disk, "/dev/mmcblk0", &before, &serial);
}
