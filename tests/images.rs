//! `bootherd images`: verified, resumable downloads from a local HTTP server
//! the test starts (loopback only), extraction from an ISO made with xorriso
//! and from a partitioned, xz-compressed Pi-like image made with
//! mkfs.vfat/mtools/sfdisk, and import giving the same cache as fetch.
//! The Pi installer's busybox: Debian's real arm64 `busybox-static` package
//! (as tests/install-deps.sh downloads it) fetched, extracted, verified and
//! imported, and packages made with `dpkg-deb` that must be refused.

mod common;

use bootherd::images::catalog::{self, Entry};
use bootherd::images::fetch::{self, FetchError, FetchOptions};
use bootherd::images::{cache, extract};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the test server does for one path.
#[derive(Clone)]
enum Route {
    /// 200 with Content-Length, or 206 for a `Range: bytes=N-` request.
    File(Vec<u8>),
    /// 200 with no Content-Length, only the first `n` bytes, then a clean close.
    Truncated(Vec<u8>, usize),
    /// 200 announcing the full length, then the connection drops after `n` bytes.
    StopAfter(Vec<u8>, usize),
    /// `StopAfter` for the first request, `File` for every later one.
    StopOnce(Vec<u8>, usize),
    /// `StopAfter` for the first request, then `Whole` (like a mirror that ignores Range).
    StopOnceNoRange(Vec<u8>, usize),
    /// Always 200 with the whole file, whatever the `Range` header says.
    Whole(Vec<u8>),
}

/// Each request's path and `Range` header (None when absent), in order.
type RangeLog = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A tiny HTTP/1.1 server: one thread per connection, `Connection: close`.
struct TestServer {
    port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    ranges: RangeLog,
}

impl TestServer {
    fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let ranges: RangeLog = Arc::default();
        let (r, g) = (routes.clone(), ranges.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (r, g) = (r.clone(), g.clone());
                std::thread::spawn(move || {
                    let _ = serve_one(conn, &r, &g);
                });
            }
        });
        TestServer {
            port,
            routes,
            ranges,
        }
    }

    fn route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_string(), route);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn ranges_for(&self, path: &str) -> Vec<Option<String>> {
        let g = self.ranges.lock().unwrap();
        g.iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

fn serve_one(
    mut conn: TcpStream,
    routes: &Mutex<HashMap<String, Route>>,
    ranges: &Mutex<Vec<(String, Option<String>)>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    ranges.lock().unwrap().push((path.clone(), range.clone()));
    let route = {
        let mut routes = routes.lock().unwrap();
        let route = routes.get(&path).cloned();
        match &route {
            Some(Route::StopOnce(data, _)) => {
                routes.insert(path.clone(), Route::File(data.clone()));
            }
            Some(Route::StopOnceNoRange(data, _)) => {
                routes.insert(path.clone(), Route::Whole(data.clone()));
            }
            _ => {}
        }
        route
    };
    match route {
        None => conn.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found",
        ),
        Some(Route::Whole(data)) => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            )?;
            conn.write_all(&data)
        }
        Some(Route::File(data)) => {
            let start: usize = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if start > 0 {
                write!(
                    conn,
                    "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {start}-{}/{}\r\nConnection: close\r\n\r\n",
                    data.len() - start,
                    data.len() - 1,
                    data.len()
                )?;
            } else {
                write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    data.len()
                )?;
            }
            conn.write_all(&data[start..])
        }
        Some(Route::Truncated(data, n)) => {
            conn.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
            conn.write_all(&data[..n])
        }
        Some(Route::StopAfter(data, n))
        | Some(Route::StopOnce(data, n))
        | Some(Route::StopOnceNoRange(data, n)) => {
            write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                data.len()
            )?;
            conn.write_all(&data[..n])?;
            conn.flush()?;
            // Drop the connection mid-body.
            conn.shutdown(std::net::Shutdown::Both)
        }
    }
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ seed as u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn quick() -> FetchOptions {
    FetchOptions {
        attempts: 1,
        backoff: Duration::from_millis(10),
        progress: false,
    }
}

/// Fails the test with a clear message when a tool it needs is missing.
fn require(tools: &[&str]) {
    for t in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            found,
            "`{t}` is not installed: run `sudo tests/install-deps.sh`"
        );
    }
}

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Nothing but the `.part` may be left under the target's directory.
fn assert_no_final(dest: &Path) {
    assert!(!dest.exists(), "{} must not exist", dest.display());
    assert!(!bootherd::images::verify::record_path(dest).exists());
}

#[tokio::test]
async fn fetch_stores_exact_bytes_verified_against_served_sha256sums() {
    let srv = TestServer::start();
    let old = bytes(300_000, 1);
    let new = bytes(1_234_567, 2);
    let sums = format!(
        "{}  ubuntu-24.04.9-live-server-amd64.iso\n{} *ubuntu-24.04.10-live-server-amd64.iso\n{}  ubuntu-24.04.10-live-server-arm64.iso\n",
        sha(&old),
        sha(&new),
        sha(&old)
    );
    srv.route("/rel/SHA256SUMS", Route::File(sums.into_bytes()));
    srv.route(
        "/rel/ubuntu-24.04.9-live-server-amd64.iso",
        Route::File(old),
    );
    srv.route(
        "/rel/ubuntu-24.04.10-live-server-amd64.iso",
        Route::File(new.clone()),
    );
    let cat = catalog::parse(&format!(
        r#"[[image]]
name = "x"
kind = "file"
dest = "x/live-server.iso"
sha256sums = "{}"
pattern = "ubuntu-24.04*-live-server-amd64.iso"
"#,
        srv.url("/rel/SHA256SUMS")
    ))
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let client = fetch::client();
    cache::fetch_entry(&client, &cat[0], tmp.path(), &quick())
        .await
        .unwrap();
    let dest = tmp.path().join("x/live-server.iso");
    // The newest point release (.10 sorts after .9), byte for byte.
    assert!(std::fs::read(&dest).unwrap() == new);
    assert!(!fetch::part_path(&dest).exists());
    assert_eq!(
        bootherd::images::verify::read_record(&dest).as_deref(),
        Some(sha(&new).as_str())
    );
    assert_eq!(
        srv.ranges_for("/rel/ubuntu-24.04.10-live-server-amd64.iso"),
        vec![None]
    );
    // A second fetch finds the cache current and downloads nothing.
    cache::fetch_entry(&client, &cat[0], tmp.path(), &quick())
        .await
        .unwrap();
    assert_eq!(
        srv.ranges_for("/rel/ubuntu-24.04.10-live-server-amd64.iso")
            .len(),
        1
    );
}

#[tokio::test]
async fn wrong_checksum_is_refused_and_nothing_is_kept() {
    let srv = TestServer::start();
    let data = bytes(500_000, 3);
    srv.route("/f.iso", Route::File(data));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    let err = fetch::download(
        &fetch::client(),
        &srv.url("/f.iso"),
        &sha(b"something else"),
        &dest,
        &quick(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert_no_final(&dest);
    assert!(!fetch::part_path(&dest).exists());
}

#[tokio::test]
async fn truncated_body_is_a_checksum_error_and_nothing_is_kept() {
    let srv = TestServer::start();
    let data = bytes(400_000, 4);
    srv.route("/f.iso", Route::Truncated(data.clone(), 100_000));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    let err = fetch::download(
        &fetch::client(),
        &srv.url("/f.iso"),
        &sha(&data),
        &dest,
        &quick(),
    )
    .await
    .unwrap_err();
    match &err {
        FetchError::Checksum { bytes, .. } => assert_eq!(*bytes, 100_000),
        e => panic!("expected a checksum error, got {e}"),
    }
    assert_no_final(&dest);
}

#[tokio::test]
async fn not_found_is_a_clear_error() {
    let srv = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    let err = fetch::download(
        &fetch::client(),
        &srv.url("/gone.iso"),
        &sha(b""),
        &dest,
        &FetchOptions {
            attempts: 3,
            ..quick()
        },
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("404") && msg.contains("catalog"), "{msg}");
    assert_no_final(&dest);
    // A 404 is not retried.
    assert_eq!(srv.ranges_for("/gone.iso").len(), 1);
}

#[tokio::test]
async fn server_stopping_mid_file_is_an_error_and_keeps_only_the_part() {
    let srv = TestServer::start();
    let data = bytes(2_000_000, 5);
    srv.route("/f.iso", Route::StopAfter(data.clone(), 700_000));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    let err = fetch::download(
        &fetch::client(),
        &srv.url("/f.iso"),
        &sha(&data),
        &dest,
        &quick(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Interrupted { .. }), "{err}");
    assert!(err.to_string().contains("resume"), "{err}");
    assert_no_final(&dest);
    // What arrived stays under the temporary name, for the next run to continue.
    let part = std::fs::read(fetch::part_path(&dest)).unwrap();
    assert!(!part.is_empty() && part.len() <= 700_000);
    assert!(data.starts_with(&part));
}

#[tokio::test]
async fn interrupted_download_resumes_with_a_range_request() {
    let srv = TestServer::start();
    let data = bytes(3_000_000, 6);
    srv.route("/f.iso", Route::StopOnce(data.clone(), 1_000_000));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    let got = fetch::download(
        &fetch::client(),
        &srv.url("/f.iso"),
        &sha(&data),
        &dest,
        &FetchOptions {
            attempts: 3,
            ..quick()
        },
    )
    .await
    .unwrap();
    assert_eq!(got, data.len() as u64);
    assert!(std::fs::read(&dest).unwrap() == data);
    let ranges = srv.ranges_for("/f.iso");
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    let resumed_at: usize = ranges[1]
        .as_deref()
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("second request had no `Range: bytes=N-`: {ranges:?}"));
    assert!(resumed_at > 0 && resumed_at <= 1_000_000, "{resumed_at}");
    assert!(!fetch::part_path(&dest).exists());
}

#[tokio::test]
async fn a_part_of_another_release_is_not_continued() {
    let srv = TestServer::start();
    let old = bytes(1_500_000, 17);
    let new = bytes(1_500_000, 18);
    srv.route("/f.iso", Route::StopAfter(old.clone(), 600_000));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    let client = fetch::client();
    fetch::download(&client, &srv.url("/f.iso"), &sha(&old), &dest, &quick())
        .await
        .unwrap_err();
    assert!(fetch::part_path(&dest).exists());
    // The release moved on: same name, another digest.
    srv.route("/f.iso", Route::File(new.clone()));
    fetch::download(&client, &srv.url("/f.iso"), &sha(&new), &dest, &quick())
        .await
        .unwrap();
    assert!(std::fs::read(&dest).unwrap() == new);
    assert_eq!(srv.ranges_for("/f.iso"), vec![None, None]);
}

#[tokio::test]
async fn a_server_ignoring_range_makes_the_download_start_over() {
    let srv = TestServer::start();
    let data = bytes(2_000_000, 16);
    srv.route("/f.iso", Route::StopOnceNoRange(data.clone(), 500_000));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    fetch::download(
        &fetch::client(),
        &srv.url("/f.iso"),
        &sha(&data),
        &dest,
        &FetchOptions {
            attempts: 2,
            ..quick()
        },
    )
    .await
    .unwrap();
    assert!(std::fs::read(&dest).unwrap() == data);
    let ranges = srv.ranges_for("/f.iso");
    assert_eq!(ranges.len(), 2);
    assert!(
        ranges[1].is_some(),
        "the retry asked for a range: {ranges:?}"
    );
}

#[tokio::test]
async fn tls_failure_is_named() {
    // https:// to a plain-HTTP server on loopback: the TLS handshake fails.
    let srv = TestServer::start();
    srv.route("/f.iso", Route::File(b"x".to_vec()));
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("f.iso");
    let url = format!("https://127.0.0.1:{}/f.iso", srv.port);
    let err = fetch::download(&fetch::client(), &url, &sha(b"x"), &dest, &quick())
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Tls { .. }), "{err}");
    assert_no_final(&dest);
}

/// A directory `root` holding `casper/vmlinuz` and `casper/initrd`, made into an ISO.
fn make_iso(dir: &Path) -> (PathBuf, Vec<u8>, Vec<u8>) {
    require(&["xorriso"]);
    let root = dir.join("isoroot");
    std::fs::create_dir_all(root.join("casper")).unwrap();
    std::fs::create_dir_all(root.join("boot/grub")).unwrap();
    let kernel = bytes(3 * 1024 * 1024 + 17, 7);
    let initrd = bytes(5 * 1024 * 1024 + 4099, 8);
    std::fs::write(root.join("casper/vmlinuz"), &kernel).unwrap();
    std::fs::write(root.join("casper/initrd"), &initrd).unwrap();
    std::fs::write(root.join("boot/grub/grub.cfg"), "menuentry x {}\n").unwrap();
    for i in 0..80 {
        // Enough entries that the casper directory's neighbours span sectors.
        std::fs::write(root.join(format!("casper/filler-{i:03}.squashfs")), b"x").unwrap();
    }
    let iso = dir.join("test.iso");
    run(Command::new("xorriso")
        .args(["-as", "mkisofs", "-R", "-J", "-V", "TEST", "-o"])
        .arg(&iso)
        .arg(&root));
    (iso, kernel, initrd)
}

#[test]
fn iso_kernel_and_initrd_are_extracted_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (iso, kernel, initrd) = make_iso(tmp.path());
    let out = tmp.path().join("out");
    extract::live_server(&iso, &out).unwrap();
    assert!(std::fs::read(out.join("vmlinuz")).unwrap() == kernel);
    assert!(std::fs::read(out.join("initrd")).unwrap() == initrd);
    // Something that is not an ISO is a clear error.
    let err = extract::live_server(&out.join("vmlinuz"), &out).unwrap_err();
    assert!(format!("{err:#}").contains("ISO"), "{err:#}");
}

/// A Pi-like image: an MBR with a FAT32 boot partition at 1 MiB holding
/// kernel, initrd, a DTB, an overlay and firmware; xz-compressed.
fn make_raspi(dir: &Path) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    require(&["mkfs.vfat", "mcopy", "mmd", "sfdisk", "xz"]);
    let files: BTreeMap<String, Vec<u8>> = [
        ("vmlinuz", bytes(2 * 1024 * 1024 + 5, 9)),
        ("initrd.img", bytes(3 * 1024 * 1024 + 1, 10)),
        ("bcm2711-rpi-4-b.dtb", bytes(50_000, 11)),
        ("bcm2712-rpi-5-b.dtb", bytes(70_000, 12)),
        ("start4.elf", bytes(2_200_000, 13)),
        ("fixup4.dat", bytes(5_400, 14)),
        ("config.txt", b"[all]\nkernel=vmlinuz\n".to_vec()),
        ("overlays/vc4-kms-v3d.dtbo", bytes(4_000, 15)),
        ("overlays/README", b"overlays\n".to_vec()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let image = common::raspi_image(dir, &files, None);
    (image.xz, files)
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn raspi_boot_partition_is_extracted_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let (xz, files) = make_raspi(tmp.path());
    let boot = extract::raspi(&xz).unwrap();
    assert_eq!(boot, tmp.path().join("boot"));
    let got = tree(&boot);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    for (name, data) in &files {
        assert!(&got[name] == data, "{name} differs");
    }
    // The decompressed image is not left behind.
    assert!(!tmp.path().join(".raspi.img.tmp").exists());
}

/// `bootherd images fetch` and `bootherd images import DIR` fill two caches
/// with the same files (images, digest records, extracted kernel/initrd and
/// Pi boot partition).
#[test]
fn import_from_a_directory_gives_the_same_cache_as_fetch() {
    let tmp = tempfile::tempdir().unwrap();
    let (iso, _, _) = make_iso(tmp.path());
    let (raspi, _) = make_raspi(tmp.path());
    let iso_name = "ubuntu-24.04.1-live-server-amd64.iso";
    let raspi_name = "ubuntu-24.04.1-preinstalled-server-arm64+raspi.img.xz";
    let iso_bytes = std::fs::read(&iso).unwrap();
    let raspi_bytes = std::fs::read(&raspi).unwrap();
    let sums = format!(
        "{}  {iso_name}\n{}  {raspi_name}\n",
        sha(&iso_bytes),
        sha(&raspi_bytes)
    );
    // The media: the files with their SHA256SUMS, one directory down.
    let media = tmp.path().join("media/releases");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("SHA256SUMS"), &sums).unwrap();
    std::fs::write(media.join(iso_name), &iso_bytes).unwrap();
    std::fs::write(media.join(raspi_name), &raspi_bytes).unwrap();

    let srv = TestServer::start();
    srv.route("/r/SHA256SUMS", Route::File(sums.into_bytes()));
    srv.route(&format!("/r/{iso_name}"), Route::File(iso_bytes));
    srv.route(&format!("/r/{raspi_name}"), Route::File(raspi_bytes));
    let sums_url = srv.url("/r/SHA256SUMS");
    let catalog_toml = format!(
        r#"[[image]]
name = "iso"
kind = "live-server-iso"
os = "ubuntu-24.04"
arch = "amd64"
dest = "ubuntu-24.04-amd64/live-server.iso"
sha256sums = "{sums_url}"
pattern = "ubuntu-24.04*-live-server-amd64.iso"

[[image]]
name = "raspi"
kind = "raspi-image"
os = "ubuntu-24.04"
arch = "arm64"
dest = "ubuntu-24.04-raspi/preinstalled-server.img.xz"
sha256sums = "{sums_url}"
pattern = "ubuntu-24.04*-preinstalled-server-arm64+raspi.img.xz"
"#
    );
    let cat_path = tmp.path().join("catalog.toml");
    std::fs::write(&cat_path, &catalog_toml).unwrap();
    let cat: Vec<Entry> = catalog::parse(&catalog_toml).unwrap();
    assert_eq!(cat.len(), 2);
    let config = tmp.path().join("bootherd.toml");
    std::fs::write(
        &config,
        r#"[server]
address = "10.0.0.2"
data_dir = "/nonexistent"

[dhcp]
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
pool = "10.0.0.200-10.0.0.250"

[cluster]
name = "lab"
kubernetes_version = "1.36"
endpoint = "10.0.0.100:6443"
pod_cidr = "10.244.0.0/16"
service_cidr = "10.96.0.0/12"

[[machine]]
mac = "52:54:00:aa:00:21"
hostname = "lb1"
role = "load-balancer"
ip = "10.0.0.21"

[[machine]]
mac = "52:54:00:aa:00:01"
hostname = "cp1"
role = "control-plane"
ip = "10.0.0.11"
"#,
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_bootherd");
    let cli = |data: &Path, args: &[&str]| {
        let mut c = Command::new(bin);
        c.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(data)
            .arg("images")
            .arg("--catalog")
            .arg(&cat_path)
            .args(args);
        run(&mut c);
    };
    let fetched = tmp.path().join("fetched");
    let imported = tmp.path().join("imported");
    cli(&fetched, &["fetch", "iso", "raspi", "--attempts", "1"]);
    cli(
        &imported,
        &["import", tmp.path().join("media").to_str().unwrap()],
    );
    let a = tree(&fetched.join("images"));
    let b = tree(&imported.join("images"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a == b, "the caches differ in content");
    for expected in [
        "ubuntu-24.04-amd64/live-server.iso",
        "ubuntu-24.04-amd64/live-server.iso.sha256",
        "ubuntu-24.04-amd64/vmlinuz",
        "ubuntu-24.04-amd64/initrd",
        "ubuntu-24.04-raspi/preinstalled-server.img.xz",
        "ubuntu-24.04-raspi/boot/start4.elf",
        "ubuntu-24.04-raspi/boot/overlays/vc4-kms-v3d.dtbo",
        "ubuntu-24.04-raspi/boot.sha256",
    ] {
        assert!(
            a.contains_key(expected),
            "{expected} missing: {:?}",
            a.keys()
        );
    }
    // A second fetch downloads and extracts nothing again.
    let boot_file = fetched.join("images/ubuntu-24.04-raspi/boot/start4.elf");
    let before = std::fs::metadata(&boot_file).unwrap().modified().unwrap();
    let requests = srv.ranges.lock().unwrap().len();
    cli(&fetched, &["fetch", "iso", "raspi", "--attempts", "1"]);
    assert_eq!(
        std::fs::metadata(&boot_file).unwrap().modified().unwrap(),
        before
    );
    // Only the two SHA256SUMS reads.
    assert_eq!(srv.ranges.lock().unwrap().len(), requests + 2);

    // And `images verify` is happy with both.
    cli(&fetched, &["verify"]);
    cli(&imported, &["verify"]);

    // A damaged extracted file is found and named, with what to do.
    let kernel = fetched.join("images/ubuntu-24.04-amd64/vmlinuz");
    let mut k = std::fs::read(&kernel).unwrap();
    k[1000] ^= 0xff;
    std::fs::write(&kernel, k).unwrap();
    std::fs::remove_file(fetched.join("images/ubuntu-24.04-raspi/boot/start4.elf")).unwrap();
    let out = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&fetched)
        .args(["images", "--catalog"])
        .arg(&cat_path)
        .arg("verify")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.contains("CORRUPT") && stdout.contains("vmlinuz"),
        "{stdout}"
    );
    assert!(
        stdout.contains("start4.elf is missing") && stdout.contains("images fetch raspi"),
        "{stdout}"
    );
}

/// The arm64 GRUB entry of the shipped catalog (its pattern and cache path),
/// pointed at the test server: Ubuntu's uefi directories list names as
/// `./name` in SHA256SUMS. Fetch and import both leave the image where TFTP
/// serves `grubnetaa64.efi`.
#[tokio::test]
async fn the_arm64_grub_entry_is_fetched_and_imported_to_where_tftp_serves_it() {
    let mut grub = catalog::builtin()
        .iter()
        .find(|e| e.name == "grub-grubnetaa64.efi")
        .expect("the catalog lists arm64 GRUB")
        .clone();
    let srv = TestServer::start();
    let image = bytes(700_000, 9);
    let other = bytes(500_000, 8);
    let sums = format!(
        "{}  ./grubaa64.efi.signed\n{}  ./grubnetaa64.efi.signed\n",
        sha(&other),
        sha(&image)
    );
    srv.route(
        "/current/SHA256SUMS",
        Route::File(sums.clone().into_bytes()),
    );
    srv.route(
        "/current/grubnetaa64.efi.signed",
        Route::File(image.clone()),
    );
    srv.route("/current/grubaa64.efi.signed", Route::File(other.clone()));
    let catalog::Source::Sha256Sums { pattern, .. } = grub.source.clone() else {
        panic!("arm64 GRUB must be checked against a SHA256SUMS");
    };
    grub.source = catalog::Source::Sha256Sums {
        sums_url: srv.url("/current/SHA256SUMS"),
        pattern,
    };
    let fetched = tempfile::tempdir().unwrap();
    cache::fetch_entry(&fetch::client(), &grub, fetched.path(), &quick())
        .await
        .unwrap();
    let dest = fetched.path().join("grub/grubnetaa64.efi");
    assert!(std::fs::read(&dest).unwrap() == image);
    assert_eq!(
        bootherd::images::verify::read_record(&dest).as_deref(),
        Some(sha(&image).as_str())
    );

    // The same from media holding the archive's files.
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join("SHA256SUMS"), &sums).unwrap();
    std::fs::write(media.path().join("grubnetaa64.efi.signed"), &image).unwrap();
    std::fs::write(media.path().join("grubaa64.efi.signed"), &other).unwrap();
    let imported = tempfile::tempdir().unwrap();
    let names = bootherd::images::import::import(
        std::slice::from_ref(&grub),
        media.path(),
        imported.path(),
    )
    .unwrap();
    assert_eq!(names, ["grub-grubnetaa64.efi"]);
    assert!(tree(imported.path()) == tree(fetched.path()));
}

/// The catalog's entry for the Pi installer's busybox.
fn busybox_entry() -> Entry {
    catalog::builtin()
        .iter()
        .find(|e| e.name == bootherd::images::BUSYBOX_ENTRY)
        .expect("the catalog lists the Pi installer's busybox")
        .clone()
}

/// `entry` with a pinned `url` and `sha256`.
fn pinned(entry: &Entry, url: String, sha256: String) -> Entry {
    Entry {
        source: catalog::Source::Pinned { url, sha256 },
        ..entry.clone()
    }
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Imports `entry` from a directory holding only `file` under `name`.
fn import_one(entry: &Entry, file: &[u8], name: &str, into: &Path) -> anyhow::Result<Vec<String>> {
    let media = tempfile::tempdir().unwrap();
    std::fs::write(media.path().join(name), file).unwrap();
    bootherd::images::import::import(std::slice::from_ref(entry), media.path(), into)
}

/// The real package: the catalog pins the digest apt verified for it;
/// fetch leaves `bin/busybox` byte-exact (as `dpkg-deb -x` unpacks it),
/// mode 0755 and recorded, where the Pi installer's archive reads it;
/// `images verify` re-checks it; import from media with the name
/// `apt-get download` gives the file makes the same cache.
#[tokio::test]
async fn the_arm64_busybox_package_is_fetched_extracted_verified_and_imported() {
    let deb = common::arm64_busybox_deb();
    let deb_bytes = std::fs::read(&deb).unwrap();
    let want = common::dpkg_extract(&deb, "bin/busybox");
    let entry = busybox_entry();
    let catalog::Source::Pinned { url, sha256 } = &entry.source else {
        panic!("the busybox package is pinned");
    };
    assert_eq!(
        sha256,
        &sha(&deb_bytes),
        "{} is not the version images/catalog.toml pins ({url})",
        deb.display()
    );
    let pool_name = url.rsplit('/').next().unwrap().to_string();
    let srv = TestServer::start();
    srv.route(
        &format!("/pool/{pool_name}"),
        Route::File(deb_bytes.clone()),
    );
    let served = pinned(
        &entry,
        srv.url(&format!("/pool/{pool_name}")),
        sha256.clone(),
    );

    let fetched = tempfile::tempdir().unwrap();
    cache::fetch_entry(&fetch::client(), &served, fetched.path(), &quick())
        .await
        .unwrap();
    let busybox = fetched.path().join("busybox-arm64/busybox");
    assert!(
        std::fs::read(&busybox).unwrap() == want,
        "not the package's bin/busybox"
    );
    assert_eq!(mode(&busybox), 0o755);
    assert_eq!(
        bootherd::images::verify::read_record(&busybox).as_deref(),
        Some(sha(&want).as_str())
    );
    assert_eq!(extract::busybox_path(&served.path(fetched.path())), busybox);
    assert_eq!(cache::state(&served, fetched.path()), cache::State::Cached);
    let (lines, ok) = cache::verify_all(std::slice::from_ref(&served), fetched.path()).unwrap();
    assert!(ok, "{lines:?}");
    assert_eq!(lines, ["busybox-static-arm64: ok"]);
    let names: Vec<String> = tree(fetched.path()).into_keys().collect();
    assert_eq!(
        names,
        [
            "busybox-arm64/busybox",
            "busybox-arm64/busybox-static.deb",
            "busybox-arm64/busybox-static.deb.sha256",
            "busybox-arm64/busybox.sha256",
        ]
    );

    // Fetching again downloads nothing.
    let requests = srv.ranges.lock().unwrap().len();
    cache::fetch_entry(&fetch::client(), &served, fetched.path(), &quick())
        .await
        .unwrap();
    assert_eq!(srv.ranges.lock().unwrap().len(), requests);

    // From media, under apt's name (`busybox-static_1%3a…_arm64.deb`).
    let imported = tempfile::tempdir().unwrap();
    let apt_name = deb.file_name().unwrap().to_str().unwrap();
    assert!(apt_name.contains("%3a"), "{apt_name}");
    let names = import_one(&entry, &deb_bytes, apt_name, imported.path()).unwrap();
    assert_eq!(names, ["busybox-static-arm64"]);
    assert!(tree(imported.path()) == tree(fetched.path()));

    // A damaged busybox is named by `images verify`.
    let mut damaged = want.clone();
    damaged[5000] ^= 0xff;
    std::fs::write(&busybox, damaged).unwrap();
    let (lines, ok) = cache::verify_all(std::slice::from_ref(&served), fetched.path()).unwrap();
    assert!(!ok);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("CORRUPT") && l.contains("busybox-arm64/busybox ")),
        "{lines:?}"
    );
}

/// A package that is not the pinned one (one byte changed, or cut short in
/// transfer) is refused by fetch and by import, and nothing is left.
#[tokio::test]
async fn a_busybox_package_with_the_wrong_checksum_is_refused_and_nothing_is_written() {
    let deb = common::arm64_busybox_deb();
    let good = std::fs::read(&deb).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    let entry = busybox_entry();
    let srv = TestServer::start();
    srv.route(
        "/pool/busybox-static_1.0_arm64.deb",
        Route::File(bad.clone()),
    );
    srv.route(
        "/cut/busybox-static_1.0_arm64.deb",
        Route::Truncated(good.clone(), good.len() / 3),
    );
    for path in [
        "/pool/busybox-static_1.0_arm64.deb",
        "/cut/busybox-static_1.0_arm64.deb",
    ] {
        let served = pinned(&entry, srv.url(path), sha(&good));
        let dir = tempfile::tempdir().unwrap();
        let err = cache::fetch_entry(&fetch::client(), &served, dir.path(), &quick())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<FetchError>(),
                Some(FetchError::Checksum { .. })
            ),
            "{path}: {err:#}"
        );
        assert!(
            tree(dir.path()).is_empty(),
            "{path}: {:?}",
            tree(dir.path()).keys()
        );
    }

    let imported = tempfile::tempdir().unwrap();
    let name = deb.file_name().unwrap().to_str().unwrap();
    let err = import_one(&entry, &bad, name, imported.path()).unwrap_err();
    assert!(format!("{err:#}").contains("checksum mismatch"), "{err:#}");
    assert!(
        tree(imported.path()).is_empty(),
        "{:?}",
        tree(imported.path()).keys()
    );
}

/// Packages whose digest matches (an edited catalog, or one pointing at the
/// wrong package) but that hold no usable busybox: without `bin/busybox`,
/// truncated, or a busybox for another machine. Each is refused with the
/// reason, and no busybox (nor a part of one) is written.
#[test]
fn a_package_without_an_arm64_bin_busybox_is_refused() {
    require(&["dpkg-deb"]);
    let tmp = tempfile::tempdir().unwrap();
    let entry = busybox_entry();
    let no_busybox = std::fs::read(common::build_deb(
        tmp.path(),
        "not-busybox",
        "arm64",
        &[("usr/share/doc/not-busybox/README", b"hello\n")],
    ))
    .unwrap();
    let real = std::fs::read(common::arm64_busybox_deb()).unwrap();
    let truncated = real[..real.len() / 2].to_vec();
    let host = std::fs::read("/bin/busybox").expect("the host's busybox-static");
    let amd64 = std::fs::read(common::build_deb(
        tmp.path(),
        "busybox-static",
        "amd64",
        &[("bin/busybox", &host)],
    ))
    .unwrap();
    for (what, deb, why) in [
        ("no bin/busybox", no_busybox, "has no bin/busybox"),
        ("truncated", truncated, "truncated"),
        ("amd64", amd64, "is not a busybox for arm64"),
        (
            "not a package",
            b"!<arch>\nnonsense".to_vec(),
            "is not a .deb",
        ),
    ] {
        let name = "busybox-static_1.0_arm64.deb";
        let entry = pinned(&entry, format!("https://deb.example/{name}"), sha(&deb));
        let into = tempfile::tempdir().unwrap();
        let err = format!(
            "{:#}",
            import_one(&entry, &deb, name, into.path()).unwrap_err()
        );
        assert!(err.contains(why), "{what}: {err}");
        let names: Vec<String> = tree(into.path()).into_keys().collect();
        assert_eq!(
            names,
            [
                "busybox-arm64/busybox-static.deb",
                "busybox-arm64/busybox-static.deb.sha256"
            ],
            "{what}: only the verified package may be there"
        );
    }
}
