//! The HTTP server against a real client (curl), on loopback: boot scripts per
//! lifecycle state, seeds only where due, token-bound callbacks, operator-only
//! writes, Range downloads, hostile paths, reloads and restarts.

mod common;

use common::{free_port, http_only_config, machine, Netns, Server};
use std::io::{Read, Write};
use std::net::TcpStream;

const MAC: &str = "52-54-00-12-34-56";

fn start() -> Server {
    let port = free_port();
    let s = Server::start_local(&http_only_config(
        port,
        &machine("52:54:00:12:34:56", "cp1", "control-plane", "10.55.0.11"),
    ));
    let iso = s.data_dir.join("images/ubuntu-24.04-amd64");
    std::fs::create_dir_all(&iso).unwrap();
    // A file with a recognisable pattern, so any misplaced byte shows.
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(iso.join("live-server.iso"), &data).unwrap();
    std::fs::write(iso.join("vmlinuz"), b"kernel").unwrap();
    s
}

fn script(s: &Server, platform: &str) -> String {
    let (code, body) = s.curl(&[&format!(
        "{}/boot.ipxe?mac={MAC}&platform={platform}&buildarch=x86_64",
        s.http
    )]);
    assert_eq!(code, 200, "{body}");
    body
}

fn state(s: &Server) -> String {
    let (_, body) = s.curl(&[&format!("{}/api/v1/machines", s.http)]);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v[0]["state"].as_str().unwrap().to_string()
}

fn token_of(user_data: &str) -> String {
    let i = user_data
        .find("installed?token=")
        .expect("callback URL in user-data")
        + "installed?token=".len();
    user_data[i..i + 32].to_string()
}

#[test]
fn the_lifecycle_moves_by_callbacks_not_boots() {
    let s = start();
    let install = script(&s, "efi");
    assert!(
        install.contains("kernel ") && install.contains("initrd=initrd "),
        "UEFI needs initrd= on the command line:\n{install}"
    );
    assert!(
        install.contains(&format!("ds=nocloud-net;s={}/cloud-init/{MAC}/ ", s.http)),
        "{install}"
    );
    assert!(
        install.contains("autoinstall") && install.contains("ip=dhcp") && install.contains("url="),
        "{install}"
    );
    // With several NICs the installer must take the one that netbooted.
    assert!(install.contains(&format!(" BOOTIF=01-{MAC} ")), "{install}");
    assert!(
        !script(&s, "pcbios").contains("initrd=initrd"),
        "BIOS gets no initrd= argument"
    );
    assert_eq!(
        state(&s),
        "configured",
        "fetching the script does not move the state"
    );

    let (code, user_data) = s.curl(&[&format!("{}/cloud-init/{MAC}/user-data", s.http)]);
    assert_eq!(code, 200);
    assert!(
        user_data.starts_with("#cloud-config\n") && user_data.contains("hostname: cp1"),
        "{user_data}"
    );
    for f in ["meta-data", "vendor-data"] {
        assert_eq!(
            s.curl(&[&format!("{}/cloud-init/{MAC}/{f}", s.http)]).0,
            200,
            "{f}"
        );
    }
    let token = token_of(&user_data);

    let event = format!("{}/api/v1/machines/{MAC}/events?token={token}", s.http);
    let (code, _) = s.curl(&[
        "-X",
        "POST",
        "-d",
        r#"{"name":"subiquity/Install","event_type":"start","description":"x"}"#,
        &event,
    ]);
    assert_eq!(code, 204);
    assert_eq!(state(&s), "installing");
    let (code, _) = s.curl(&["-X", "POST", "-d", "not json", &event]);
    assert_eq!(code, 400, "a malformed event is refused");

    let installed = |t: &str| {
        s.curl(&[
            "-X",
            "POST",
            &format!("{}/api/v1/machines/{MAC}/installed?token={t}", s.http),
        ])
        .0
    };
    assert_eq!(
        installed("0123456789abcdef0123456789abcdef"),
        403,
        "a wrong token is refused"
    );
    assert_eq!(state(&s), "installing");
    assert_eq!(installed(&token), 204);
    assert_eq!(state(&s), "installed");
    let events = |s: &Server| {
        s.cli(&["events", "cp1"])
            .matches("install-finished")
            .count()
    };
    assert_eq!(events(&s), 1);
    assert_eq!(
        installed(&token),
        204,
        "a retry after a lost reply is acknowledged"
    );
    assert_eq!(state(&s), "installed");
    assert_eq!(events(&s), 1, "and records nothing again");

    let local = script(&s, "pcbios");
    assert!(
        local.contains("sanboot --no-describe --drive 0x80"),
        "{local}"
    );
    assert!(
        script(&s, "efi").lines().any(|l| l.trim() == "exit"),
        "UEFI local boot exits to the next boot entry"
    );
    assert_eq!(
        s.curl(&[&format!("{}/cloud-init/{MAC}/user-data", s.http)])
            .0,
        404,
        "no seed once installed"
    );

    // Reimage: refused without the operator token, then accepted through the CLI.
    let (code, _) = s.curl(&[
        "-X",
        "POST",
        &format!("{}/api/v1/machines/cp1/reimage", s.http),
    ]);
    assert_eq!(code, 401);
    assert_eq!(state(&s), "installed", "a refused write changes nothing");
    let out = s.cli(&["reimage", "cp1"]);
    assert!(out.contains("cp1"), "{out}");
    assert_eq!(state(&s), "reimage-pending");
    let again = script(&s, "pcbios");
    assert!(again.contains("kernel "), "{again}");
    let (_, user_data2) = s.curl(&[&format!("{}/cloud-init/{MAC}/user-data", s.http)]);
    assert_ne!(
        token_of(&user_data2),
        token,
        "a new install gets a new token"
    );

    let table = s.cli(&["machines"]);
    assert!(
        table.lines().any(|l| l.starts_with("cp1")
            && l.contains("reimage-pending")
            && l.contains("52:54:00:12:34:56")),
        "{table}"
    );
}

#[test]
fn unknown_machines_get_no_seed_and_an_exit_script() {
    let s = start();
    for f in ["user-data", "meta-data", "vendor-data", "network-config"] {
        assert_eq!(
            s.curl(&[&format!("{}/cloud-init/52-54-00-99-99-99/{f}", s.http)])
                .0,
            404,
            "{f}"
        );
    }
    let (code, body) = s.curl(&[&format!(
        "{}/boot.ipxe?mac=52-54-00-99-99-99&platform=pcbios",
        s.http
    )]);
    assert_eq!(code, 200);
    assert!(
        body.contains("not in the inventory") && body.contains("exit") && !body.contains("kernel"),
        "{body}"
    );
    let (code, body) = s.curl(&[&format!("{}/boot.ipxe", s.http)]);
    assert_eq!(code, 200);
    assert!(
        body.contains("chain ") && body.contains("${netX/mac:hexhyp}"),
        "the first hop asks again with the MAC:\n{body}"
    );
}

#[test]
fn assets_stream_whole_and_by_range() {
    let s = start();
    let path = s.data_dir.join("images/ubuntu-24.04-amd64/live-server.iso");
    let want = std::fs::read(&path).unwrap();
    let url = format!("{}/assets/ubuntu-24.04-amd64/live-server.iso", s.http);
    let out = s.in_ns("curl").args(["-sSf", &url]).output().unwrap();
    assert!(
        out.stdout == want,
        "whole download differs ({} vs {} bytes)",
        out.stdout.len(),
        want.len()
    );
    let out = s
        .in_ns("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-r",
            "1000000-1000099",
            &url,
        ])
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout);
    assert!(headers.starts_with("HTTP/1.1 206"), "{headers}");
    let part = s
        .in_ns("curl")
        .args(["-sS", "-r", "1000000-1000099", &url])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(part, want[1_000_000..1_000_100]);
    let tail = s
        .in_ns("curl")
        .args(["-sS", "-r", "-10", &url])
        .output()
        .unwrap()
        .stdout;
    assert_eq!(tail, want[want.len() - 10..]);
    assert_eq!(
        s.curl(&[&format!("{}/assets/ubuntu-24.04-amd64/initrd", s.http)])
            .0,
        404,
        "a missing file is a 404"
    );
    assert_eq!(
        s.curl(&[&format!("{}/assets/ubuntu-24.04-amd64/state.db", s.http)])
            .0,
        404,
        "only installer files"
    );
    assert_eq!(
        s.curl(&[&format!("{}/assets/..%2F..%2Fstate.db/x", s.http)])
            .0,
        404
    );
}

/// Sends a raw request line (curl would normalise the path) and returns the response.
fn raw_get(s: &Server, path: &str) -> String {
    let addr = s.http.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = conn.read_to_string(&mut out);
    out
}

#[test]
fn boot_files_are_read_only_and_stay_inside_their_root() {
    let s = start();
    let root = s.data_dir.join("tftp");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("sub/hello.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
    assert_eq!(
        s.curl(&[&format!("{}/sub/hello.txt", s.http)]),
        (200, "hello".to_string())
    );
    for path in [
        "/../../etc/passwd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/sub/../../state.db",
        "/etc-link/passwd",
        "//etc/passwd",
        "/%00",
    ] {
        let resp = raw_get(&s, path);
        let status = resp.lines().next().unwrap_or("");
        assert!(
            status.contains(" 403 ") || status.contains(" 404 ") || status.contains(" 400 "),
            "{path}: {status}"
        );
        assert!(!resp.contains("root:"), "{path} leaked a file");
    }
    let (code, _) = s.curl(&[
        "-X",
        "PUT",
        "--data-binary",
        "x",
        &format!("{}/sub/new.txt", s.http),
    ]);
    assert_eq!(code, 405);
    assert!(!root.join("sub/new.txt").exists());
}

#[test]
fn a_broken_config_is_refused_on_reload_and_the_running_one_stays() {
    let s = start();
    let good = std::fs::read_to_string(&s.config_path).unwrap();
    let added = format!(
        "{good}{}",
        machine("52:54:00:12:34:57", "cp2", "control-plane", "10.55.0.12")
    );
    std::fs::write(&s.config_path, &added).unwrap();
    s.cli(&["reload"]);
    assert!(
        s.cli(&["machines"]).contains("cp2"),
        "a machine added to the file appears without a restart"
    );

    std::fs::write(
        &s.config_path,
        added.replace("ip = \"10.55.0.12\"", "ip = \"10.55.0.11\""),
    )
    .unwrap();
    let out = s.cli_cmd(&["reload"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("duplicate IP") && err.contains("running config stays"),
        "{err}"
    );
    // SIGHUP with the same broken file: logged, refused, still serving the old config.
    std::fs::write(&s.config_path, "this is not toml").unwrap();
    unsafe { libc::kill(s.pid() as i32, libc::SIGHUP) };
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(s.log().contains("config reload refused"), "{}", s.log());
    assert!(
        script(&s, "pcbios").contains("kernel "),
        "still serving after a refused reload"
    );
    // `machines` reads the running server; the file on disk is broken, so pass the port explicitly.
    let (code, body) = s.curl(&[&format!("{}/api/v1/machines", s.http)]);
    assert_eq!(code, 200);
    assert!(body.contains("cp2"), "{body}");
}

#[test]
fn state_survives_kill_9() {
    let mut s = start();
    let (_, user_data) = s.curl(&[&format!("{}/cloud-init/{MAC}/user-data", s.http)]);
    let token = token_of(&user_data);
    assert_eq!(
        s.curl(&[
            "-X",
            "POST",
            &format!("{}/api/v1/machines/{MAC}/installed?token={token}", s.http)
        ])
        .0,
        204
    );
    s.restart();
    assert_eq!(state(&s), "installed");
    assert!(script(&s, "pcbios").contains("sanboot"));
}

#[test]
fn render_prints_exactly_what_the_machine_is_served() {
    let s = start();
    let mac = "52:54:00:12:34:56";
    for (firmware, platform) in [("bios", "pcbios"), ("uefi", "efi")] {
        let rendered = s.cli(&["render", "--mac", mac, "--firmware", firmware, "ipxe"]);
        assert_eq!(rendered, script(&s, platform), "{firmware}");
    }
    for f in ["user-data", "meta-data"] {
        let rendered = s.cli(&["render", "--mac", mac, f]);
        let (code, served) = s.curl(&[&format!("{}/cloud-init/{MAC}/{f}", s.http)]);
        assert_eq!(code, 200);
        assert_eq!(rendered, served, "{f}");
    }
    let out = s
        .cli_cmd(&["render", "--mac", "52:54:00:99:99:99", "user-data"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an unknown machine has no user-data");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown machines get no cloud-init"));
}

#[test]
fn the_first_boot_reports_joined_or_the_failed_step_with_the_install_token() {
    let s = start();
    let (_, user_data) = s.curl(&[&format!("{}/cloud-init/{MAC}/user-data", s.http)]);
    let token = token_of(&user_data);
    assert!(
        user_data.contains(&format!("/joined?token={token}")),
        "the role script reports with the same install's token"
    );
    let post = |what: &str, t: &str| {
        s.curl(&[
            "-X",
            "POST",
            &format!("{}/api/v1/machines/{MAC}/{what}?token={t}", s.http),
        ])
        .0
    };
    assert_eq!(post("joined", &token), 409, "not installed yet");
    assert_eq!(post("installed", &token), 204);
    assert_eq!(post("joined", "0123456789abcdef0123456789abcdef"), 403);
    assert_eq!(
        post("firstboot-failed", &format!("{token}&step=kubeadm-join")),
        204
    );
    let (_, events) = s.curl(&[&format!("{}/api/v1/machines/cp1/events", s.http)]);
    assert!(
        events.contains("first boot failed at step kubeadm-join"),
        "{events}"
    );
    assert_eq!(
        state(&s),
        "installed",
        "a failure is recorded, the state stays"
    );
    assert_eq!(post("joined", &token), 204);
    assert_eq!(state(&s), "joined");
    assert_eq!(
        post("joined", &token),
        204,
        "an idempotent re-run may report again"
    );
    s.cli(&["reimage", "cp1"]);
    assert_eq!(
        post("joined", &token),
        403,
        "a reimage revokes the old install's token"
    );
    assert_eq!(post("installed", &token), 403);
}

#[test]
fn secrets_reach_only_the_roles_that_need_them() {
    let port = free_port();
    let machines = [
        machine("52:54:00:00:00:01", "cp1", "control-plane", "10.55.0.11"),
        machine("52:54:00:00:00:21", "w1", "worker", "10.55.0.21"),
        machine("52:54:00:00:00:31", "lb1", "load-balancer", "10.55.0.31"),
    ]
    .concat();
    let s = Server::start_local(&http_only_config(port, &machines));
    let seed = |mac: &str| {
        let (code, body) = s.curl(&[&format!("{}/cloud-init/{mac}/user-data", s.http)]);
        assert_eq!(code, 200, "{body}");
        body
    };
    let info = s.cli(&["cluster", "info"]);
    let hash = info
        .split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .expect("cluster info prints the CA hash")
        .to_string();
    let cp = seed("52-54-00-00-00-01");
    assert!(
        cp.contains("PRIVATE KEY"),
        "a control plane gets the shared PKI"
    );
    let worker = seed("52-54-00-00-00-21");
    assert!(!worker.contains("PRIVATE KEY"), "a worker gets no key");
    assert!(
        worker.contains(&hash),
        "a worker gets the CA hash to join with"
    );
    let lb = seed("52-54-00-00-00-31");
    assert!(
        !lb.contains("PRIVATE KEY") && !lb.contains("CERTIFICATE"),
        "a load balancer gets no PKI"
    );
    assert!(!lb.contains(&hash), "a load balancer gets no join material");
}

/// GRUB's HTTP client finds a file's size only under `Content-Length: `
/// spelled exactly so; without it, its `linux` command runs out of memory.
#[test]
fn header_names_are_title_case_for_grub() {
    let s = start();
    let resp = raw_get(&s, "/assets/ubuntu-24.04-amd64/vmlinuz");
    let head = resp.split("\r\n\r\n").next().unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    assert!(head.contains("\r\nContent-Length: 6\r\n"), "{head}");
    assert!(resp.ends_with("\r\n\r\nkernel"), "{resp}");
}

/// The GRUB configs TFTP serves are also served over HTTP, by the same names.
#[test]
fn grub_configs_over_http() {
    let s = start();
    let (code, bootstrap) = s.curl(&[&format!("{}/grub/grub.cfg", s.http)]);
    assert_eq!(code, 200, "{bootstrap}");
    assert!(
        bootstrap.contains("configfile \"${prefix}/grub.cfg-${net_default_mac}\""),
        "{bootstrap}"
    );
    // cp1 is an x86 machine: GRUB (arm64 only) gets no boot for it, and no install token.
    for name in [format!("grub.cfg-01-{MAC}"), format!("grub.cfg-{MAC}")] {
        let (code, body) = s.curl(&[&format!("{}/grub/{name}", s.http)]);
        assert_eq!(code, 200, "{body}");
        assert!(
            body.contains(&format!("no network boot for {MAC}")),
            "{body}"
        );
        assert!(!body.contains("linux"), "{body}");
    }
    let (code, _) = s.curl(&[&format!("{}/grub/grub.cfg-0A37000B", s.http)]);
    assert_eq!(code, 404);
    let (code, _) = s.curl(&[&format!("{}/grub/arm64-efi/normal.mod", s.http)]);
    assert_eq!(code, 404);
}

/// A keep-alive connection left idle (a machine that rebooted without
/// closing it) is reset after 15 s, so nothing of it is left for the next
/// boot's connection from the same port (GRUB reuses its port numbers).
#[test]
fn idle_connections_are_reset() {
    let s = start();
    let addr = s.http.trim_start_matches("http://");
    let mut conn = TcpStream::connect(addr).unwrap();
    write!(
        conn,
        "GET /assets/ubuntu-24.04-amd64/vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(40)))
        .unwrap();
    // The head and the body may arrive in separate reads.
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n\r\nkernel") && got.len() < 4096 {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_string();
    assert!(head.ends_with("\r\n\r\nkernel"), "{head}");
    let idle = std::time::Instant::now();
    let err = conn
        .read(&mut buf)
        .expect_err("the server must reset the idle connection, not close it");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let after = idle.elapsed();
    assert!(
        (14..30).contains(&after.as_secs()),
        "reset after {after:?}, want about 15 s"
    );
}

/// The control-plane slot: whichever control plane asks first while none
/// has joined runs `kubeadm init` (not the first in the config); the others
/// wait their turn and join, one at a time; a reimaged control plane joins.
#[test]
fn the_first_control_plane_to_ask_inits_and_the_others_join_one_at_a_time() {
    let port = free_port();
    let cps = [
        ("52-54-00-00-00-01", "cp1", "10.55.0.11"),
        ("52-54-00-00-00-02", "cp2", "10.55.0.12"),
        ("52-54-00-00-00-03", "cp3", "10.55.0.13"),
    ];
    let mut machines: String = cps
        .iter()
        .map(|(mac, host, ip)| machine(&mac.replace('-', ":"), host, "control-plane", ip))
        .collect();
    machines.push_str(&machine("52:54:00:00:00:21", "w1", "worker", "10.55.0.21"));
    // In a namespace of its own: the reimage below asks the control planes'
    // etcd, and there nothing but loopback answers (no cluster yet).
    let ns = Netns::new("slot");
    let s = Server::start(&ns, &http_only_config(port, &machines));
    let install = |mac: &str| -> String {
        let (code, user_data) = s.curl(&[&format!("{}/cloud-init/{mac}/user-data", s.http)]);
        assert_eq!(code, 200, "{user_data}");
        let token = token_of(&user_data);
        let (code, body) = s.curl(&[
            "-X",
            "POST",
            &format!("{}/api/v1/machines/{mac}/installed?token={token}", s.http),
        ]);
        assert_eq!(code, 204, "{body}");
        token
    };
    let call = |method: &str, mac: &str, what: &str, token: &str| -> (u16, String) {
        s.curl(&[
            "-X",
            method,
            &format!("{}/api/v1/machines/{mac}/{what}?token={token}", s.http),
        ])
    };
    let slot = |mac: &str, token: &str| call("POST", mac, "control-plane-slot", token);
    let tokens: Vec<String> = cps.iter().map(|(mac, _, _)| install(mac)).collect();
    let (cp1, cp2, cp3) = (cps[0].0, cps[1].0, cps[2].0);

    // cp2 powered on first: it inits, although cp1 comes first in the config.
    assert_eq!(slot(cp2, &tokens[1]), (200, "init".into()));
    let (code, body) = slot(cp1, &tokens[0]);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("cp2 holds the control-plane slot"), "{body}");
    assert_eq!(slot(cp2, &tokens[1]), (200, "init".into()), "a renewal");
    assert_eq!(slot(cp3, "0123456789abcdef0123456789abcdef").0, 403);
    let w1_token = install("52-54-00-00-00-21");
    assert_eq!(
        slot("52-54-00-00-00-21", &w1_token).0,
        403,
        "workers take no slot"
    );

    // cp2 joined (init done): the slot is free, and nobody inits again.
    assert_eq!(call("POST", cp2, "joined", &tokens[1]).0, 204);
    assert_eq!(slot(cp1, &tokens[0]), (200, "join".into()));
    assert_eq!(slot(cp3, &tokens[2]).0, 409, "one join at a time");
    // cp1's join failed: its slot goes, cp3 takes its turn.
    assert_eq!(
        call(
            "POST",
            cp1,
            "firstboot-failed",
            &format!("{}&step=kubeadm-join", tokens[0])
        )
        .0,
        204
    );
    assert_eq!(slot(cp3, &tokens[2]), (200, "join".into()));
    assert_eq!(call("DELETE", cp3, "control-plane-slot", &tokens[2]).0, 204);
    assert_eq!(slot(cp1, &tokens[0]), (200, "join".into()));
    assert_eq!(call("POST", cp1, "joined", &tokens[0]).0, 204);

    // The node that ran init is reimaged: it joins the cluster it made.
    s.cli(&["reimage", "cp2"]);
    let again = install(cp2);
    assert_eq!(slot(cp2, &again), (200, "join".into()));
}

/// A control plane added to the config later reaches the VIP holders'
/// haproxy: their sync timer fetches haproxy.cfg from bootherd.
#[test]
fn the_vip_holders_haproxy_cfg_follows_the_config() {
    let port = free_port();
    let machines = [
        machine("52:54:00:00:00:01", "cp1", "control-plane", "10.55.0.11"),
        machine("52:54:00:00:00:21", "w1", "worker", "10.55.0.21"),
    ]
    .concat();
    let s = Server::start_local(&http_only_config(port, &machines));
    let token = |mac: &str| {
        let (code, user_data) = s.curl(&[&format!("{}/cloud-init/{mac}/user-data", s.http)]);
        assert_eq!(code, 200, "{user_data}");
        token_of(&user_data)
    };
    let cfg = |mac: &str, t: &str| {
        s.curl(&[&format!(
            "{}/api/v1/machines/{mac}/haproxy.cfg?token={t}",
            s.http
        )])
    };
    let cp1 = token("52-54-00-00-00-01");
    let (code, before) = cfg("52-54-00-00-00-01", &cp1);
    assert_eq!(code, 200, "{before}");
    assert!(before.contains("10.55.0.11:6444"), "{before}");
    assert!(!before.contains("10.55.0.12"), "{before}");
    assert_eq!(
        cfg("52-54-00-00-00-01", "0123456789abcdef0123456789abcdef").0,
        403
    );
    let w1 = token("52-54-00-00-00-21");
    assert_eq!(
        cfg("52-54-00-00-00-21", &w1).0,
        403,
        "a worker runs no haproxy"
    );

    let text = std::fs::read_to_string(&s.config_path).unwrap();
    let added = format!(
        "{text}{}",
        machine("52:54:00:00:00:02", "cp2", "control-plane", "10.55.0.12")
    );
    std::fs::write(&s.config_path, added).unwrap();
    s.cli(&["reload"]);
    let (code, after) = cfg("52-54-00-00-00-01", &cp1);
    assert_eq!(code, 200, "{after}");
    assert!(
        after.contains("10.55.0.12:6444"),
        "the new control plane is a backend:\n{after}"
    );
}

#[test]
fn a_joining_node_gets_the_current_bootstrap_token_and_nobody_else_does() {
    let port = free_port();
    let machines = [
        machine("52:54:00:00:00:01", "cp1", "control-plane", "10.55.0.11"),
        machine("52:54:00:00:00:21", "w1", "worker", "10.55.0.21"),
    ]
    .concat();
    let s = Server::start_local(&http_only_config(port, &machines));
    let (code, user_data) = s.curl(&[&format!(
        "{}/cloud-init/52-54-00-00-00-21/user-data",
        s.http
    )]);
    assert_eq!(code, 200, "{user_data}");
    let url = |t: &str| {
        format!(
            "{}/api/v1/machines/52-54-00-00-00-21/bootstrap-token?token={t}",
            s.http
        )
    };
    let (code, token) = s.curl(&[&url(&token_of(&user_data))]);
    assert_eq!(code, 200, "{token}");
    assert!(
        user_data.contains(&format!("token: \"{token}\"")),
        "the seed carries today's token: {token}"
    );
    assert_eq!(s.curl(&[&url("0123456789abcdef0123456789abcdef")]).0, 403);
    assert_eq!(
        s.curl(&[&format!(
            "{}/api/v1/machines/52-54-00-00-00-21/bootstrap-token",
            s.http
        )])
        .0,
        401
    );
}
