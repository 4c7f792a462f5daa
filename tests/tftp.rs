//! The TFTP server against real clients (tftp-hpa's `tftp`, `atftp`, `curl`)
//! and hand-made packets. Most tests run the server in-process on
//! 127.0.0.1 and a free high port (no root needed); `serve_binary_in_namespace`
//! goes through `bootherd serve` inside network namespaces.

mod common;

use common::tftp_client::*;

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"TOP-SECRET-OUTSIDE-THE-ROOT\n";

/// An `App` whose config serves `root` over TFTP on 127.0.0.1:`port` (no DHCP).
fn tftp_app(data: &std::path::Path, root: &std::path::Path, port: u16) -> Arc<bootherd::app::App> {
    let machines = common::machine("52:54:00:aa:00:01", "cp1", "control-plane", "10.55.0.11")
        + &common::machine("52:54:00:aa:00:02", "arm1", "worker", "10.55.0.12")
        + "platform = \"arm64\"\n";
    let text = common::tftp_only_config(data, root, port, &machines);
    let (config, _) =
        bootherd::config::parse(&text).unwrap_or_else(|e| panic!("test config: {e:?}"));
    let store = bootherd::store::SqliteStore::open(data).unwrap();
    Arc::new(bootherd::app::App::new(config, None, None, Arc::new(store)))
}

/// An in-process TFTP server over a temporary boot directory with:
/// `small.txt`, `one.bin` (3 MiB + 7), `exact.bin` (4 × 1468 bytes),
/// `pi/start4.elf` (700 KiB + 3), `escape` (a symlink to a file outside the root).
struct Tftpd {
    addr: SocketAddr,
    root: PathBuf,
    outside: PathBuf,
    _rt: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl Tftpd {
    fn start() -> Tftpd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let data = dir.path().join("data");
        let outside = dir.path().join("outside");
        for d in [&root, &data, &outside, &root.join("pi")] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(root.join("small.txt"), b"hello from bootherd\n").unwrap();
        std::fs::write(root.join("one.bin"), pattern(3 * 1024 * 1024 + 7, 1)).unwrap();
        std::fs::write(root.join("exact.bin"), pattern(4 * 1468, 2)).unwrap();
        std::fs::write(root.join("pi/start4.elf"), pattern(700 * 1024 + 3, 3)).unwrap();
        std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("escape")).unwrap();
        // A free port: the race with other processes is harmless in a test.
        let port = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let app = tftp_app(&data, &root, port);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.spawn(async move {
            if let Err(e) = bootherd::tftp::serve(app).await {
                panic!("TFTP server failed: {e:#}");
            }
        });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let t = Tftpd {
            addr,
            root,
            outside,
            _rt: rt,
            _dir: dir,
        };
        t.wait_ready();
        t
    }

    /// Waits until the server answers a request.
    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if fetch(self.addr, "small.txt", &[], Duration::from_millis(200)).is_ok() {
                return;
            }
        }
        panic!("the TFTP server did not answer within 10 s");
    }

    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    fn port(&self) -> String {
        self.addr.port().to_string()
    }

    fn file(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.root.join(name)).unwrap()
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn require(tools: &[&str]) {
    for t in tools {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "`{t}` is not installed: run `sudo tests/install-deps.sh` (or `bash .ci/run`)"
        );
    }
}

// ---- real clients ----

/// GRUB asks for its config by MAC with an absolute name (`/grub/…`); the
/// file is generated from the boot decision, with its size in the OACK.
#[test]
fn grub_configs_are_generated_per_machine() {
    require(&["atftp"]);
    let t = Tftpd::start();
    let dir = tempfile::tempdir().unwrap();
    let get = |name: &str| {
        let out = dir.path().join("got");
        let _ = std::fs::remove_file(&out);
        let o = run(Command::new("atftp")
            .args(["--trace", "--get", "-r", name, "-l"])
            .arg(&out)
            .args(["--option", "tsize 0"])
            .args([t.host(), t.port()]));
        (
            o.status.success(),
            text(&o),
            std::fs::read(&out).unwrap_or_default(),
        )
    };
    let (ok, trace, body) = get("/grub/grub.cfg-01-52-54-00-aa-00-02");
    assert!(ok, "{trace}");
    let cfg = String::from_utf8(body).unwrap();
    assert!(
        trace.contains(&format!("tsize: {}", cfg.len())),
        "no tsize {} in the OACK:\n{trace}",
        cfg.len()
    );
    assert!(cfg.contains("bootherd: installing arm1 (worker)"), "{cfg}");
    assert!(
        cfg.contains("ds=nocloud-net\\;s=http://127.0.0.1:8080/cloud-init/52-54-00-aa-00-02/ "),
        "{cfg}"
    );
    // The same machine by the name without `01-`, and the bootstrap config.
    let (ok, _, again) = get("grub/grub.cfg-52-54-00-aa-00-02");
    assert!(ok);
    assert_eq!(String::from_utf8(again).unwrap(), cfg);
    let (ok, _, bootstrap) = get("/grub/grub.cfg");
    assert!(ok);
    assert!(String::from_utf8(bootstrap)
        .unwrap()
        .contains("configfile "));
    // An x86 machine gets no install from GRUB; names GRUB tries by IP are not found.
    let (ok, _, x86) = get("/grub/grub.cfg-01-52-54-00-aa-00-01");
    assert!(ok);
    let x86 = String::from_utf8(x86).unwrap();
    assert!(
        x86.contains("no network boot") && !x86.contains("linux"),
        "{x86}"
    );
    let (ok, trace, _) = get("/grub/grub.cfg-0A37000C");
    assert!(!ok, "{trace}");
}

#[test]
fn atftp_blksize_1468_byte_identical() {
    require(&["atftp"]);
    let t = Tftpd::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["one.bin", "exact.bin", "small.txt"] {
        let out = dir.path().join(name);
        let o = run(Command::new("atftp")
            .args(["--trace", "--get", "-r", name, "-l"])
            .arg(&out)
            .args(["--option", "blksize 1468", "--option", "tsize 0"])
            .args([t.host(), t.port()]));
        assert!(o.status.success(), "atftp {name}: {}", text(&o));
        // The server must have acknowledged the options, not fallen back to 512.
        let trace = text(&o);
        assert!(
            trace.contains("blksize: 1468"),
            "no blksize in the OACK:\n{trace}"
        );
        let size = t.file(name).len();
        assert!(
            trace.contains(&format!("tsize: {size}")),
            "no tsize {size} in the OACK:\n{trace}"
        );
        assert_same(&std::fs::read(&out).unwrap(), &t.file(name), name);
    }
}

#[test]
fn atftp_windowsize_16_byte_identical() {
    require(&["atftp"]);
    let t = Tftpd::start();
    let dir = tempfile::tempdir().unwrap();
    for name in ["one.bin", "exact.bin"] {
        let out = dir.path().join(name);
        let o = run(Command::new("atftp")
            .args(["--trace", "--get", "-r", name, "-l"])
            .arg(&out)
            .args(["--option", "blksize 1468", "--option", "windowsize 16"])
            .args([t.host(), t.port()]));
        assert!(o.status.success(), "atftp {name}: {}", text(&o));
        let trace = text(&o);
        assert!(
            trace.contains("windowsize: 16"),
            "no windowsize in the OACK:\n{trace}"
        );
        assert_same(&std::fs::read(&out).unwrap(), &t.file(name), name);
    }
}

#[test]
fn curl_blksize_1468_byte_identical() {
    require(&["curl"]);
    let t = Tftpd::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("one.bin");
    let o = run(Command::new("curl")
        .args(["-sS", "--tftp-blksize", "1468", "-o"])
        .arg(&out)
        .arg(format!("tftp://{}/one.bin", t.addr)));
    assert!(o.status.success(), "curl: {}", text(&o));
    assert_same(&std::fs::read(&out).unwrap(), &t.file("one.bin"), "one.bin");
}

/// 40 MiB at 512-byte blocks is 81920 blocks: the block number wraps past 65535.
#[test]
fn tftp_hpa_block_number_rollover() {
    require(&["tftp"]);
    let t = Tftpd::start();
    std::fs::write(t.root.join("forty.bin"), pattern(40 * 1024 * 1024 + 100, 4)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("forty.bin");
    let o = run(Command::new("tftp")
        .args([
            "-m",
            "binary",
            &t.host(),
            &t.port(),
            "-c",
            "get",
            "forty.bin",
        ])
        .arg(&out));
    assert!(
        o.status.success() && !text(&o).contains("Error"),
        "tftp: {}",
        text(&o)
    );
    assert_same(
        &std::fs::read(&out).unwrap(),
        &t.file("forty.bin"),
        "forty.bin",
    );
}

#[test]
fn twenty_concurrent_transfers_byte_identical() {
    require(&["curl", "atftp"]);
    let t = Tftpd::start();
    let dir = tempfile::tempdir().unwrap();
    let want = t.file("one.bin");
    let children: Vec<_> = (0..20)
        .map(|i| {
            let out = dir.path().join(format!("out{i}"));
            // Half curl (lock-step), half atftp with a window: both paths at once.
            let child = if i % 2 == 0 {
                Command::new("curl")
                    .args(["-sS", "--tftp-blksize", "1468", "-o"])
                    .arg(&out)
                    .arg(format!("tftp://{}/one.bin", t.addr))
                    .stderr(Stdio::piped())
                    .spawn()
            } else {
                Command::new("atftp")
                    .args(["--get", "-r", "one.bin", "-l"])
                    .arg(&out)
                    .args(["--option", "blksize 1468", "--option", "windowsize 8"])
                    .args([t.host(), t.port()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
            };
            (out, child.unwrap())
        })
        .collect();
    for (out, child) in children {
        let o = child.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "client for {}: {}",
            out.display(),
            text(&o)
        );
        assert_same(
            &std::fs::read(&out).unwrap(),
            &want,
            &out.display().to_string(),
        );
    }
}

// ---- refusals ----

#[test]
fn traversal_and_links_out_of_the_root_are_refused() {
    require(&["tftp"]);
    let t = Tftpd::start();
    let outside_rel = format!(
        "../{}/secret.txt",
        t.outside.file_name().unwrap().to_str().unwrap()
    );
    let outside_abs = t.outside.join("secret.txt").display().to_string();
    // (name, expected TFTP error code): 2 = access violation.
    let cases = [
        (outside_rel.as_str(), 2),
        ("../outside/secret.txt", 2),
        ("pi/../../outside/secret.txt", 2),
        (outside_abs.as_str(), 2),
        ("/etc/passwd", 2),
        ("escape", 2),
        ("..\\outside\\secret.txt", 2),
        ("no-such-file", 1),
    ];
    for (name, code) in cases {
        match fetch(t.addr, name, &[], Duration::from_secs(3)) {
            Err((c, _)) => assert_eq!(c, code, "{name:?}: wrong error code"),
            Ok(data) => panic!("{name:?} was served ({} bytes)", data.len()),
        }
    }
    // A NUL inside the name ends the name at the NUL; what follows it is
    // taken as the mode. Whatever the server does, it must not serve the secret.
    let sock = client_socket(Duration::from_secs(1));
    for raw in [
        &b"\0\x01escape\0octet\0"[..],
        b"\0\x01small.txt\0../outside/secret.txt\0octet\0",
        b"\0\x01../outside/secret.txt\0octet\0",
    ] {
        sock.send_to(raw, t.addr).unwrap();
        // Silence (the request was dropped as malformed) or an ERROR are both fine.
        if let Some((reply, _)) = recv(&sock) {
            assert!(
                matches!(reply, Reply::Error(..)),
                "raw request {raw:?} got {reply:?}"
            );
        }
    }
    // The real client too: it must fail and leave no secret behind.
    let dir = tempfile::tempdir().unwrap();
    for name in [outside_rel.as_str(), "/etc/passwd", "escape"] {
        let out = dir.path().join("got");
        let o = run(Command::new("tftp")
            .args(["-m", "binary", &t.host(), &t.port(), "-c", "get", name])
            .arg(&out));
        assert!(
            text(&o).contains("Access violation") || text(&o).contains("Error code 2"),
            "tftp get {name}: {}",
            text(&o)
        );
        let got = std::fs::read(&out).unwrap_or_default();
        assert!(got.is_empty(), "tftp get {name} wrote {} bytes", got.len());
    }
}

#[test]
fn write_requests_are_refused() {
    require(&["tftp", "atftp"]);
    let t = Tftpd::start();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("upload.txt");
    std::fs::write(&local, b"should never arrive").unwrap();
    let o = run(Command::new("tftp")
        .args(["-m", "binary", &t.host(), &t.port(), "-c", "put"])
        .arg(&local)
        .arg("upload.txt"));
    assert!(
        text(&o).contains("Access violation") || text(&o).contains("Error code 2"),
        "tftp put: {}",
        text(&o)
    );
    let o = run(Command::new("atftp")
        .args(["--put", "-l"])
        .arg(&local)
        .args(["-r", "small.txt", &t.host(), &t.port()]));
    assert!(!o.status.success(), "atftp --put succeeded: {}", text(&o));
    assert!(
        !t.root.join("upload.txt").exists(),
        "a file was written into the root"
    );
    assert_eq!(
        t.file("small.txt"),
        b"hello from bootherd\n",
        "small.txt was overwritten"
    );
    // A raw WRQ gets ERROR access violation.
    let sock = client_socket(Duration::from_secs(3));
    let mut wrq = rrq(b"new.bin", "octet", &[]);
    wrq[1] = 2;
    sock.send_to(&wrq, t.addr).unwrap();
    match recv(&sock) {
        Some((Reply::Error(2, _), _)) => {}
        other => panic!("WRQ got {other:?}"),
    }
    assert!(!t.root.join("new.bin").exists());
}

#[test]
fn malformed_packets_do_not_stop_the_server() {
    require(&["python3", "curl"]);
    let t = Tftpd::start();
    // Random bytes, truncated and unterminated RRQs, unknown opcodes, absurd
    // option values, DATA/ACK/ERROR/OACK to the request port, an empty and
    // an oversized datagram, a hostile option list.
    let script = r#"
import os, random, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
random.seed(7)
pkts = [b"", b"\x00", b"\x00\x01", b"\x00\x01small.txt", b"\x00\x01small.txt\x00", b"\x00\x01small.txt\x00octet",
        b"\x00\x01small.txt\x00bogusmode\x00", b"\x00\x09small.txt\x00octet\x00", b"\xff\xff" + b"A" * 50,
        b"\x00\x03\x00\x01" + b"x" * 512, b"\x00\x04\x00\x01", b"\x00\x05\x00\x01oops\x00", b"\x00\x06blksize\x001468\x00",
        b"\x00\x01small.txt\x00octet\x00blksize\x000\x00", b"\x00\x01small.txt\x00octet\x00blksize\x0099999999999999999999\x00",
        b"\x00\x01small.txt\x00octet\x00windowsize\x000\x00", b"\x00\x01small.txt\x00octet\x00windowsize\x00-1\x00",
        b"\x00\x01small.txt\x00octet\x00tsize\x00-5\x00timeout\x00999\x00", b"\x00\x01small.txt\x00octet\x00blksize\x00",
        b"\x00\x01one.bin\x00octet\x00blksize\x0065464\x00windowsize\x0065535\x00",
        b"\x00\x01" + b"a" * 3000 + b"\x00octet\x00", b"\x00\x01" + b"\xc3\x28\x00octet\x00", b"\x00\x01" + b"\x00" * 40,
        b"\x00\x01small.txt\x00octet\x00" + b"opt\x00" * 2000]
for _ in range(300):
    pkts.append(bytes(random.getrandbits(8) for _ in range(random.randint(1, 600))))
for p in pkts:
    try:
        s.sendto(p, (host, port))
    except OSError:
        pass
print(len(pkts))
"#;
    let o = run(Command::new("python3").args(["-c", script, &t.host(), &t.port()]));
    assert!(o.status.success(), "python3: {}", text(&o));
    std::thread::sleep(Duration::from_millis(300));
    // A real client is still served, byte-identical.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("one.bin");
    let o = run(Command::new("curl")
        .args(["-sS", "--max-time", "20", "--tftp-blksize", "1468", "-o"])
        .arg(&out)
        .arg(format!("tftp://{}/one.bin", t.addr)));
    assert!(
        o.status.success(),
        "curl after malformed packets: {}",
        text(&o)
    );
    assert_same(&std::fs::read(&out).unwrap(), &t.file("one.bin"), "one.bin");
    // And the absurd values were not taken at face value: blksize 0 is not an option.
    match fetch(
        t.addr,
        "small.txt",
        &[("blksize", "0")],
        Duration::from_secs(3),
    ) {
        Ok(d) => assert_eq!(d, t.file("small.txt")),
        Err(e) => panic!("blksize 0 request failed: {e:?}"),
    }
}

/// A second server on a port that is taken refuses to start, saying which
/// port, instead of sharing it or running deaf.
#[test]
fn a_taken_port_is_a_clear_startup_error() {
    let t = Tftpd::start();
    let data = tempfile::tempdir().unwrap();
    let app = tftp_app(data.path(), &t.root, t.addr.port());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let result = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(5), bootherd::tftp::serve(app)).await
    });
    let err = match result {
        Ok(Err(e)) => format!("{e:#}"),
        Ok(Ok(())) => panic!("serve returned Ok on a taken port"),
        Err(_) => panic!("serve kept running on a taken port"),
    };
    assert!(
        err.contains(&format!("udp/{}", t.port())) && err.contains("in use"),
        "{err}"
    );
    // The first server is unharmed.
    assert_eq!(
        fetch(t.addr, "small.txt", &[], Duration::from_secs(3)).unwrap(),
        t.file("small.txt")
    );
}

// ---- the Raspberry Pi pattern ----

/// The Pi asks with `tsize 0 blksize 1024`, aborts after the OACK with ERROR
/// 0 "Early terminate", and asks again at once from a new port. The retry
/// must be answered at once and the whole file served; the aborted transfer
/// must not linger.
#[test]
fn raspberry_pi_early_terminate_then_retry() {
    let t = Tftpd::start();
    let want = t.file("pi/start4.elf");
    let opts = [("tsize", "0"), ("blksize", "1024")];

    // Its first probe: the serial-number directory that does not exist gets a fast "not found".
    let started = Instant::now();
    assert_eq!(
        fetch(t.addr, "d9780558/start4.elf", &opts, Duration::from_secs(2))
            .unwrap_err()
            .0,
        1
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "not-found took {:?}",
        started.elapsed()
    );

    let first = client_socket(Duration::from_secs(2));
    first
        .send_to(&rrq(b"pi/start4.elf", "octet", &opts), t.addr)
        .unwrap();
    let (reply, transfer) = recv(&first).expect("no OACK");
    let Reply::Oack(o) = reply else {
        panic!("expected an OACK, got {reply:?}")
    };
    assert!(
        o.contains(&("tsize".into(), want.len().to_string())),
        "OACK {o:?}"
    );
    assert!(o.contains(&("blksize".into(), "1024".into())), "OACK {o:?}");
    let mut err = vec![0, 5, 0, 0];
    err.extend_from_slice(b"Early terminate\0");
    first.send_to(&err, transfer).unwrap();

    let started = Instant::now();
    let data =
        fetch(t.addr, "pi/start4.elf", &opts, Duration::from_secs(2)).expect("the retry failed");
    let took = started.elapsed();
    assert_same(&data, &want, "pi/start4.elf after Early terminate");
    assert!(took < Duration::from_secs(2), "the retry took {took:?}");

    // The aborted transfer gives up: after at most ~6 s nothing more arrives on the first port.
    first
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(9);
    let mut last = Instant::now();
    while Instant::now() < deadline {
        if recv(&first).is_some() {
            last = Instant::now();
        }
    }
    assert!(
        deadline - last.min(deadline) >= Duration::from_millis(2500),
        "the aborted transfer was still retransmitting {:?} before the end",
        deadline.saturating_duration_since(last)
    );
}

/// The Pi's real habit: after the OACK it sends ERROR "Early terminate" and
/// asks again *from the same port* at once. The second request must be served
/// at once (not dropped because a transfer for that address:port still
/// runs), the whole file byte-exact at blksize 1024.
#[test]
fn raspberry_pi_retry_from_the_same_port_is_served_at_once() {
    let t = Tftpd::start();
    let want = t.file("pi/start4.elf");
    let opts = [("tsize", "0"), ("blksize", "1024")];
    let sock = client_socket(Duration::from_secs(2));
    sock.send_to(&rrq(b"pi/start4.elf", "octet", &opts), t.addr)
        .unwrap();
    let (reply, first_transfer) = recv(&sock).expect("no OACK");
    let Reply::Oack(o) = reply else {
        panic!("expected an OACK, got {reply:?}")
    };
    assert!(o.contains(&("blksize".into(), "1024".into())), "OACK {o:?}");
    assert!(
        o.contains(&("tsize".into(), want.len().to_string())),
        "OACK {o:?}"
    );
    let mut err = vec![0, 5, 0, 0];
    err.extend_from_slice(b"Early terminate\0");
    sock.send_to(&err, first_transfer).unwrap();

    let started = Instant::now();
    let data = fetch_on(&sock, t.addr, "pi/start4.elf", &opts, Some(first_transfer))
        .expect("the retry from the same port failed");
    let took = started.elapsed();
    assert_same(&data, &want, "pi/start4.elf retried from the same port");
    assert!(took < Duration::from_secs(2), "the retry took {took:?}");
}

/// A receiver that loses one DATA inside a window and acknowledges the last
/// block it got in order (RFC 7440): the server must restart the window
/// right after that block, and the file arrives byte-exact, without waiting
/// for retransmission timeouts.
#[test]
fn partial_window_ack_restarts_the_window() {
    let t = Tftpd::start();
    let want = t.file("one.bin");
    const WINDOW: usize = 8;
    const BLKSIZE: usize = 1024;
    let sock = client_socket(Duration::from_secs(3));
    sock.send_to(
        &rrq(
            b"one.bin",
            "octet",
            &[("blksize", "1024"), ("windowsize", "8")],
        ),
        t.addr,
    )
    .unwrap();
    let (reply, server) = recv(&sock).expect("no OACK");
    let Reply::Oack(o) = reply else {
        panic!("expected an OACK, got {reply:?}")
    };
    assert!(o.contains(&("windowsize".into(), "8".into())), "OACK {o:?}");
    sock.send_to(&ack(0), server).unwrap();

    let started = Instant::now();
    let mut out = Vec::new();
    let mut expect: u16 = 1;
    let mut in_window = 0; // blocks received in order since the last ACK
    let mut windows = 0u32;
    let mut dropped = std::collections::HashSet::new();
    let mut gap_acked = false;
    loop {
        let (reply, from) = recv(&sock).expect("the server stopped sending");
        assert_eq!(from, server, "DATA from another port");
        let Reply::Data(block, data) = reply else {
            panic!("expected DATA, got {reply:?}")
        };
        // Lose the third block of every fourth window, once.
        if block == expect && in_window == 2 && windows % 4 == 1 && dropped.insert(block) {
            continue;
        }
        if block != expect {
            // A gap (or a stale block): acknowledge the last in-order block, once.
            if !gap_acked && block != expect.wrapping_sub(1) {
                sock.send_to(&ack(expect.wrapping_sub(1)), server).unwrap();
                gap_acked = true;
                in_window = 0;
                windows += 1;
            }
            continue;
        }
        gap_acked = false;
        out.extend_from_slice(&data);
        expect = expect.wrapping_add(1);
        in_window += 1;
        let last = data.len() < BLKSIZE;
        if in_window == WINDOW || last {
            sock.send_to(&ack(block), server).unwrap();
            in_window = 0;
            windows += 1;
        }
        if last {
            break;
        }
    }
    let took = started.elapsed();
    assert!(
        dropped.len() >= 50,
        "only {} blocks were dropped",
        dropped.len()
    );
    assert_same(&out, &want, "one.bin with lost blocks inside windows");
    // Recovering through timeouts instead would take about a second per loss.
    assert!(
        took < Duration::from_secs(10),
        "{} losses took {took:?}",
        dropped.len()
    );
}

/// Log lines of the in-process servers, shared by the tests of this binary.
fn captured_log() -> Arc<std::sync::Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<std::sync::Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The "TFTP transfer ended" lines logged for transfers to `client`.
fn ended_lines(client: SocketAddr) -> Vec<String> {
    let log = captured_log();
    let log = log.lock().unwrap();
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|l| l.contains("TFTP transfer ended") && l.contains(&format!("client={client} ")))
        .map(str::to_string)
        .collect()
}

/// A client that never acknowledges: the server retransmits, then gives up
/// within a few seconds, and says so in its log.
#[test]
fn stalled_client_is_given_up_within_seconds() {
    captured_log();
    let t = Tftpd::start();
    let sock = client_socket(Duration::from_millis(250));
    let me = sock.local_addr().unwrap();
    let started = Instant::now();
    sock.send_to(&rrq(b"one.bin", "octet", &[]), t.addr)
        .unwrap();
    let mut copies_of_block_1 = 0;
    let mut last_packet = started;
    while started.elapsed() < Duration::from_secs(12) {
        if let Some((reply, _)) = recv(&sock) {
            last_packet = Instant::now();
            assert_eq!(reply, Reply::Data(1, t.file("one.bin")[..512].to_vec()));
            copies_of_block_1 += 1;
        }
    }
    assert!(
        copies_of_block_1 >= 3,
        "block 1 was sent {copies_of_block_1} times: no retransmission"
    );
    let active = last_packet - started;
    assert!(
        active < Duration::from_secs(8),
        "the server still retransmitted {active:?} after the request"
    );
    let ended = ended_lines(me);
    assert_eq!(ended.len(), 1, "end lines for {me}: {ended:?}");
    assert!(ended[0].contains("timed out"), "{}", ended[0]);
    assert!(ended[0].contains("bytes=0"), "{}", ended[0]);
}

/// The client's ERROR ends its transfer at once: nothing more is sent, and
/// the log says who ended it and why.
#[test]
fn client_error_ends_the_transfer_at_once() {
    captured_log();
    let t = Tftpd::start();
    let sock = client_socket(Duration::from_secs(2));
    let me = sock.local_addr().unwrap();
    sock.send_to(
        &rrq(b"one.bin", "octet", &[("blksize", "1024"), ("tsize", "0")]),
        t.addr,
    )
    .unwrap();
    let (reply, transfer) = recv(&sock).expect("no OACK");
    assert!(matches!(reply, Reply::Oack(_)), "{reply:?}");
    let mut err = vec![0, 5, 0, 0];
    err.extend_from_slice(b"Early terminate\0");
    sock.send_to(&err, transfer).unwrap();
    // Without the ERROR the OACK would be retransmitted after 1 s.
    sock.set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    if let Some(r) = recv(&sock) {
        panic!("the server sent {r:?} after the client's ERROR");
    }
    let ended = ended_lines(me);
    assert_eq!(ended.len(), 1, "end lines for {me}: {ended:?}");
    assert!(
        ended[0].contains("aborted by client: Early terminate"),
        "{}",
        ended[0]
    );
}

/// A new request from the address and port of a running transfer replaces
/// it: the old transfer stops at once (no more retransmitted OACKs from its
/// port), says so in the log, and the new one serves the file.
#[test]
fn same_port_request_replaces_the_running_transfer() {
    captured_log();
    let t = Tftpd::start();
    let want = t.file("pi/start4.elf");
    let opts = [("tsize", "0"), ("blksize", "1024")];
    let sock = client_socket(Duration::from_secs(2));
    let me = sock.local_addr().unwrap();
    sock.send_to(&rrq(b"pi/start4.elf", "octet", &opts), t.addr)
        .unwrap();
    let (reply, first_transfer) = recv(&sock).expect("no OACK");
    assert!(matches!(reply, Reply::Oack(_)), "{reply:?}");
    // No ACK, no ERROR: the same request again from the same port.
    let data = fetch_on(&sock, t.addr, "pi/start4.elf", &opts, Some(first_transfer))
        .expect("the second request failed");
    assert_same(&data, &want, "pi/start4.elf from the second request");
    // The first transfer would retransmit its OACK every second if it still ran.
    sock.set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < deadline {
        if let Some((reply, from)) = recv(&sock) {
            assert_ne!(
                from, first_transfer,
                "the replaced transfer still sent {reply:?}"
            );
        }
    }
    let ended = ended_lines(me);
    assert_eq!(ended.len(), 2, "end lines for {me}: {ended:?}");
    assert!(ended.iter().any(|l| l.contains("superseded")), "{ended:?}");
    assert!(
        ended.iter().any(|l| l.contains("outcome=complete")),
        "{ended:?}"
    );
}

/// RFC 2349's timeout option (1–255 s) is acknowledged in the OACK with the
/// value asked; values outside the range are left out.
#[test]
fn timeout_option_is_acknowledged() {
    let t = Tftpd::start();
    let sock = client_socket(Duration::from_secs(2));
    sock.send_to(
        &rrq(b"small.txt", "octet", &[("timeout", "1"), ("tsize", "0")]),
        t.addr,
    )
    .unwrap();
    let (reply, _) = recv(&sock).expect("no OACK");
    assert_eq!(
        reply,
        Reply::Oack(vec![
            ("tsize".into(), t.file("small.txt").len().to_string()),
            ("timeout".into(), "1".into())
        ])
    );
    // Out of range: no option is left, so the server answers with DATA 1.
    for bad in ["0", "256"] {
        let sock = client_socket(Duration::from_secs(2));
        sock.send_to(&rrq(b"small.txt", "octet", &[("timeout", bad)]), t.addr)
            .unwrap();
        let (reply, _) = recv(&sock).expect("no reply");
        assert_eq!(reply, Reply::Data(1, t.file("small.txt")), "timeout {bad}");
    }
    // The whole transfer goes through with it.
    let data = fetch(
        t.addr,
        "one.bin",
        &[("timeout", "1"), ("blksize", "1468")],
        Duration::from_secs(3),
    )
    .unwrap();
    assert_same(&data, &t.file("one.bin"), "one.bin with timeout 1");
}

// ---- through `bootherd serve`, in network namespaces ----

/// `bootherd serve` on a veth LAN: real clients in the other namespace fetch
/// a boot file byte-identical (lock-step and windowsize 16), an iPXE build
/// under its well-known name, get refused on a write, and each transfer is
/// logged with its outcome.
#[test]
fn serve_binary_in_namespace() {
    common::require(&["tftp", "atftp"]);
    let lan = common::Lan::new("tf", "10.55.0.1/24");
    lan.client
        .ip(&["addr", "add", "10.55.0.2/24", "dev", "cl0"]);
    let config = common::lan_config(&common::machine(
        "52:54:00:aa:00:01",
        "cp1",
        "control-plane",
        "10.55.0.11",
    ));
    // TFTP alone: the clients here have static addresses.
    let config = config.replace(r#"mode = "authoritative""#, r#"mode = "off""#);
    let server = common::Server::start(&lan.server, &config);
    // The default boot directory is <data_dir>/tftp; requests read it when they arrive.
    let root = server.data_dir.join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    let want = pattern(2 * 1024 * 1024 + 11, 9);
    std::fs::write(root.join("boot.bin"), &want).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ws16");
    let o = run(lan
        .client
        .cmd("atftp")
        .args(["--get", "-r", "boot.bin", "-l"])
        .arg(&out)
        .args([
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 16",
            "10.55.0.1",
        ]));
    assert!(
        o.status.success(),
        "atftp in the namespace: {}\n{}",
        text(&o),
        server.log()
    );
    assert_same(
        &std::fs::read(&out).unwrap(),
        &want,
        "boot.bin with windowsize 16",
    );

    let out = dir.path().join("hpa");
    let o = run(lan
        .client
        .cmd("tftp")
        .args(["-m", "binary", "10.55.0.1", "-c", "get", "boot.bin"])
        .arg(&out));
    assert!(
        o.status.success() && !text(&o).contains("Error"),
        "tftp in the namespace: {}",
        text(&o)
    );
    assert_same(
        &std::fs::read(&out).unwrap(),
        &want,
        "boot.bin with tftp-hpa",
    );

    // The BIOS PXE boot file comes from the iPXE builds, not the boot directory.
    let system = std::path::Path::new(bootherd::bootfiles::SYSTEM_IPXE_DIR).join("undionly.kpxe");
    if system.is_file() {
        let out = dir.path().join("undionly.kpxe");
        let o = run(lan
            .client
            .cmd("atftp")
            .args(["--get", "-r", "undionly.kpxe", "-l"])
            .arg(&out)
            .args(["--option", "blksize 1468", "10.55.0.1"]));
        assert!(o.status.success(), "undionly.kpxe: {}", text(&o));
        assert_same(
            &std::fs::read(&out).unwrap(),
            &std::fs::read(&system).unwrap(),
            "undionly.kpxe",
        );
    }

    let local = dir.path().join("up");
    std::fs::write(&local, b"no").unwrap();
    let o = run(lan
        .client
        .cmd("tftp")
        .args(["-m", "binary", "10.55.0.1", "-c", "put"])
        .arg(&local)
        .arg("up"));
    assert!(
        text(&o).contains("Error code 2") || text(&o).contains("Access violation"),
        "put: {}",
        text(&o)
    );
    assert!(
        !root.join("up").exists(),
        "a write reached the boot directory"
    );

    let log = server.log();
    assert!(
        log.contains("TFTP transfer started") && log.contains("boot.bin"),
        "no start line:\n{log}"
    );
    let ended = log
        .lines()
        .filter(|l| {
            l.contains("TFTP transfer ended") && l.contains("boot.bin") && l.contains("complete")
        })
        .count();
    assert!(
        ended >= 2,
        "expected two completed boot.bin transfers in the log:\n{log}"
    );
    assert!(
        log.contains("TFTP write refused"),
        "no refusal line:\n{log}"
    );
}
