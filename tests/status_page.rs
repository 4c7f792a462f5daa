//! The operator's status page in a real browser (Debian's headless Chromium
//! driven over W3C WebDriver by chromedriver), against a running bootherd
//! fed with the same callbacks an installing machine sends: it shows each
//! machine's state, a change appears without a reload within a second, and
//! the reimage button — confirmed, with the operator token — flips the
//! machine to reimage-pending. Screenshots go to `target/test-artifacts/`.
//!
//! Also: API writes without the operator token are refused with 401 and
//! change nothing.

mod common;

use common::{free_port, http_only_config, machine, require, Server};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CP1: &str = "52:54:00:77:00:01";
const W1: &str = "52:54:00:77:00:11";
const W2: &str = "52:54:00:77:00:12";

fn start() -> Server {
    let machines = [
        machine(CP1, "cp1", "control-plane", "10.55.0.11"),
        machine(W1, "w1", "worker", "10.55.0.21"),
        machine(W2, "w2", "worker", "10.55.0.22"),
    ]
    .concat();
    Server::start_local(&http_only_config(free_port(), &machines))
}

/// The install token a machine's seed carries (what its callbacks present).
fn install_token(s: &Server, mac: &str) -> String {
    let (code, user_data) = s.curl(&[&format!(
        "{}/cloud-init/{}/user-data",
        s.http,
        mac.replace(':', "-")
    )]);
    assert_eq!(code, 200, "{user_data}");
    let i = user_data
        .find("installed?token=")
        .expect("callback URL in user-data")
        + "installed?token=".len();
    user_data[i..i + 32].to_string()
}

/// POSTs a machine callback the way the installer and first-boot script do.
fn callback(s: &Server, mac: &str, what: &str, query: &str, body: Option<&str>) -> u16 {
    let url = format!(
        "{}/api/v1/machines/{}/{what}?token={query}",
        s.http,
        mac.replace(':', "-")
    );
    let mut args = vec!["-X", "POST", url.as_str()];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    s.curl(&args).0
}

fn installer_event(s: &Server, mac: &str, token: &str, name: &str) {
    let event = json!({"name": name, "description": "", "event_type": "start", "origin": "curtin"});
    assert_eq!(
        callback(s, mac, "events", token, Some(&event.to_string())),
        204
    );
}

fn api_state(s: &Server, host: &str) -> String {
    let (_, body) = s.curl(&[&format!("{}/api/v1/status", s.http)]);
    let v: Value = serde_json::from_str(&body).unwrap();
    v["machines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["hostname"] == host)
        .unwrap_or_else(|| panic!("{host} not in {body}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn artifacts_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// chromedriver on a free port with one headless Chromium session.
struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r
                    .json::<Value>()
                    .await
                    .ok()
                    .map(|v| v["value"]["ready"] == true),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Leave confirm() dialogs open until the test answers them.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut b = Browser {
            driver,
            http,
            session: String::new(),
            base,
            _profile: profile,
        };
        let v = b.call("POST", "/session", caps).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        b
    }

    /// One WebDriver command; returns its `value`, panics on a WebDriver error.
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    async fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, Value> {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let resp = req.send().await.expect("reach chromedriver");
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.expect("WebDriver JSON");
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    async fn script(&self, js: &str) -> Value {
        self.call("POST", "/execute/sync", json!({"script": js, "args": []}))
            .await
    }

    /// The state cell of `host`'s row as the page shows it.
    async fn state_of(&self, host: &str) -> Option<String> {
        let js = format!(
            "const c = document.querySelector('tr[data-hostname=\"{host}\"] td.state'); return c ? c.textContent : null;"
        );
        self.script(&js).await.as_str().map(str::to_string)
    }

    /// Waits until `host` shows `state`; returns how long that took.
    async fn wait_state(&self, host: &str, state: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.state_of(host).await.as_deref() == Some(state) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{host} did not show {state} within {limit:?} (shows {:?})",
                self.state_of(host).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn element(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                json!({"using": "css selector", "value": css}),
            )
            .await;
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|id| id.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn click(&self, css: &str) {
        let id = self.element(css).await;
        self.call("POST", &format!("/element/{id}/click"), json!({}))
            .await;
    }

    /// Waits for a confirm() dialog, checks its text, and accepts it.
    async fn accept_confirm(&self, expect: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Ok(text) = self.try_call("GET", "/alert/text", json!({})).await {
                let text = text.as_str().unwrap_or_default().to_string();
                assert!(text.contains(expect), "confirm says {text:?}");
                self.call("POST", "/alert/accept", json!({})).await;
                return;
            }
            assert!(Instant::now() < deadline, "no confirm dialog appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn notice(&self) -> String {
        self.script("return document.getElementById('notice').textContent;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    async fn wait_notice(&self, expect: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let n = self.notice().await;
            if n.contains(expect) {
                return n;
            }
            assert!(
                Instant::now() < deadline,
                "the page never said {expect:?}; it says {n:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", json!({})).await;
        let path = artifacts_dir().join(name);
        let mut child = Command::new("base64")
            .args(["-d"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b64.as_str().unwrap().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert_eq!(&out.stdout[..8], b"\x89PNG\r\n\x1a\n", "a PNG screenshot");
        std::fs::write(&path, &out.stdout).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium through its driver, then the driver itself.
        if !self.session.is_empty() {
            let _ = std::process::Command::new("curl")
                .args(["-sS", "-m", "5", "-X", "DELETE"])
                .arg(format!("{}/session/{}", self.base, self.session))
                .output();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_shows_states_live_and_reimages_with_the_token() {
    require(&["chromium", "chromedriver", "curl", "base64"]);
    let s = start();
    let (cp1, w1, w2) = (
        install_token(&s, CP1),
        install_token(&s, W1),
        install_token(&s, W2),
    );
    // cp1: installed, then its first boot failed at kubeadm-init and sent its log.
    installer_event(&s, CP1, &cp1, "subiquity/Early");
    assert_eq!(callback(&s, CP1, "installed", &cp1, None), 204);
    let log = "2026-01-01T00:00:00Z bootherd kubeadm-init: step kubeadm-init\n\
               error execution phase wait-control-plane: timed out";
    let failed = format!("{cp1}&step=kubeadm-init");
    assert_eq!(
        callback(&s, CP1, "firstboot-failed", &failed, Some(log)),
        204
    );
    // w1: the installer is writing the system.
    installer_event(&s, W1, &w1, "subiquity/Early");
    installer_event(
        &s,
        W1,
        &w1,
        "subiquity/Install/install/curtin_install/stage-extract",
    );
    // What a machine reports is shown as text, never run as HTML.
    let hostile = json!({"name": "subiquity/Early", "event_type": "finish",
        "result": "WARN", "description": "<img id=pwned src=x onerror=\"window.pwned=1\">"});
    assert_eq!(
        callback(&s, W1, "events", &w1, Some(&hostile.to_string())),
        204
    );
    // w2: installed and joined.
    installer_event(&s, W2, &w2, "subiquity/Early");
    assert_eq!(callback(&s, W2, "installed", &w2, None), 204);
    assert_eq!(callback(&s, W2, "joined", &w2, None), 204);

    let b = Browser::start().await;
    b.call("POST", "/url", json!({"url": format!("{}/", s.http)}))
        .await;
    let first = Duration::from_secs(10);
    b.wait_state("cp1", "installed", first).await;
    b.wait_state("w1", "installing", first).await;
    b.wait_state("w2", "joined", first).await;
    let page = b
        .script("return document.body.innerText;")
        .await
        .as_str()
        .unwrap()
        .to_string();
    for want in [
        "FAILED: first boot: kubeadm-init",
        "firstboot-failed: first boot failed at step kubeadm-init",
        "timed out",
        "35% writing the system",
        "10.55.0.100:6443",
        "1/2", // workers joined
        "0/1", // control planes joined
    ] {
        assert!(page.contains(want), "the page lacks {want:?}:\n{page}");
    }
    assert!(
        page.contains("<img id=pwned"),
        "the description is shown as text"
    );
    assert_eq!(
        b.script("return [document.getElementById('pwned'), window.pwned || null];")
            .await,
        json!([null, null]),
        "a machine's event became HTML"
    );
    // Everything the page loaded came from bootherd itself.
    let loaded = b
        .script("return performance.getEntriesByType('resource').map(e => e.name);")
        .await;
    let loaded: Vec<String> = serde_json::from_value(loaded).unwrap();
    assert!(
        loaded.iter().any(|u| u.ends_with("/ui/status.js")),
        "{loaded:?}"
    );
    assert!(
        loaded.iter().all(|u| u.starts_with(&s.http)),
        "the page fetched from elsewhere: {loaded:?}"
    );
    b.screenshot("status-page.png").await;

    // A live change: no reload (a marker on `window` survives), within a second.
    b.script("window.__noReload = 'still here'; return null;")
        .await;
    assert_eq!(callback(&s, W1, "installed", &w1, None), 204);
    let took = b
        .wait_state("w1", "installed", Duration::from_secs(1))
        .await;
    eprintln!("state change shown {took:?} after the callback returned");
    assert_eq!(
        b.script("return window.__noReload;").await,
        json!("still here"),
        "the page was reloaded"
    );

    // Reimage without the token: confirmed, refused, the page says what to do.
    b.click("tr[data-hostname=\"w2\"] button.reimage").await;
    b.accept_confirm("Reinstall w2").await;
    let said = b.wait_notice("operator token").await;
    assert!(said.contains("operator-token"), "{said}");
    assert_eq!(
        api_state(&s, "w2"),
        "joined",
        "a refused reimage changes nothing"
    );
    assert_eq!(b.state_of("w2").await.as_deref(), Some("joined"));

    // Paste the token once, confirm again: the machine flips to reimage-pending.
    let token = std::fs::read_to_string(s.data_dir.join("operator-token")).unwrap();
    let input = b.element("#token").await;
    b.call(
        "POST",
        &format!("/element/{input}/value"),
        json!({"text": token.trim()}),
    )
    .await;
    b.click("#token-form button").await;
    b.wait_notice("saved").await;
    let form = b
        .script("return getComputedStyle(document.getElementById('token-form')).display;")
        .await;
    assert_eq!(form, json!("none"), "the token form goes away once saved");
    b.click("tr[data-hostname=\"w2\"] button.reimage").await;
    b.accept_confirm("Reinstall w2").await;
    b.wait_state("w2", "reimage-pending", Duration::from_secs(2))
        .await;
    assert_eq!(api_state(&s, "w2"), "reimage-pending");
    b.wait_notice("will be reinstalled").await;

    // Cancelling the confirm sends nothing.
    b.click("tr[data-hostname=\"w1\"] button.reimage").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.try_call("GET", "/alert/text", json!({})).await.is_err() {
        assert!(Instant::now() < deadline, "no confirm dialog appeared");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.call("POST", "/alert/dismiss", json!({})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        api_state(&s, "w1"),
        "installed",
        "a cancelled reimage changes nothing"
    );
    b.screenshot("status-page-after-reimage.png").await;

    // On a phone-sized window the rows become cards (no table header).
    b.call("POST", "/window/rect", json!({"width": 390, "height": 844}))
        .await;
    let header = b
        .script("return getComputedStyle(document.querySelector('thead')).display;")
        .await;
    assert_eq!(
        header,
        json!("none"),
        "the phone layout hides the table header"
    );
    let wide = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
        .await;
    assert_eq!(wide, json!(true), "no sideways scrolling on a phone");
    b.screenshot("status-page-phone.png").await;
}

#[test]
fn writes_without_the_operator_token_are_refused_with_401_and_change_nothing() {
    require(&["curl"]);
    let s = start();
    let w1 = install_token(&s, W1);
    installer_event(&s, W1, &w1, "subiquity/Early");
    let view = |s: &Server| {
        let (_, status) = s.curl(&[&format!("{}/api/v1/status", s.http)]);
        let mut v: Value = serde_json::from_str(&status).unwrap();
        v["now"] = Value::Null;
        let (_, events) = s.curl(&[&format!("{}/api/v1/machines/w1/events", s.http)]);
        (v, events)
    };
    let before = view(&s);
    let reimage = format!("{}/api/v1/machines/w1/reimage", s.http);
    let reload = format!("{}/api/v1/reload", s.http);
    for (what, url, auth) in [
        ("reimage without a token", &reimage, None),
        (
            "reimage with a wrong token",
            &reimage,
            Some("Bearer 0123456789abcdef"),
        ),
        (
            "reimage with the install token",
            &reimage,
            Some(&*format!("Bearer {w1}")),
        ),
        (
            "reimage with a non-bearer header",
            &reimage,
            Some("Basic b3BlcmF0b3I6eA=="),
        ),
        ("reload without a token", &reload, None),
    ] {
        let mut args = vec!["-X", "POST", url.as_str(), "-H"];
        let auth_line;
        args.push(match auth {
            Some(a) => {
                auth_line = format!("Authorization: {a}");
                &auth_line
            }
            None => "X-Nothing: 1",
        });
        let (code, body) = s.curl(&args);
        assert_eq!(code, 401, "{what}: {body}");
        assert!(body.contains("operator token"), "{what}: {body}");
    }
    assert_eq!(view(&s), before, "refused writes changed something");
    // With the token it works: the refusals above were about the token only.
    let token = std::fs::read_to_string(s.data_dir.join("operator-token")).unwrap();
    let (code, body) = s.curl(&[
        "-X",
        "POST",
        &reimage,
        "-H",
        &format!("Authorization: Bearer {}", token.trim()),
    ]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(api_state(&s, "w1"), "reimage-pending");
}

#[test]
fn machines_watch_and_events_show_the_same_view_in_the_terminal() {
    require(&["curl"]);
    let s = start();
    let (cp1, w1) = (install_token(&s, CP1), install_token(&s, W1));
    assert_eq!(callback(&s, CP1, "installed", &cp1, None), 204);
    let failed = format!("{cp1}&step=kubeadm-init");
    let log = "step kubeadm-init\nerror execution phase wait-control-plane: timed out";
    assert_eq!(
        callback(&s, CP1, "firstboot-failed", &failed, Some(log)),
        204
    );
    installer_event(&s, W1, &w1, "subiquity/Early");
    installer_event(
        &s,
        W1,
        &w1,
        "subiquity/Install/install/curtin_install/stage-extract",
    );

    // Not a terminal: the view is printed again every interval, without escape codes.
    let mut watch = s
        .cli_cmd(&["machines", "--watch", "--interval", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains('\x1b'),
        "escape codes on a non-terminal:\n{text}"
    );
    let frames: Vec<&str> = text.split("--- ").filter(|f| !f.is_empty()).collect();
    assert!(frames.len() >= 2, "not refreshed:\n{text}");
    let frame = frames[0];
    for want in [
        "cluster lab  VIP 10.55.0.100:6443",
        "control planes 0/1 joined: no quorum yet (needs 1)",
        "workers 0/2 joined",
        "cp1 FAILED at first boot: kubeadm-init",
        "  | error execution phase wait-control-plane: timed out",
    ] {
        assert!(frame.contains(want), "no {want:?} in:\n{frame}");
    }
    let row = frame
        .lines()
        .find(|l| l.starts_with("w1 "))
        .unwrap_or_else(|| panic!("no w1 row:\n{frame}"));
    assert!(
        row.contains("installing") && row.contains("35% writing the system"),
        "{row}"
    );

    // The plain table keeps its header first, the way scripts read it.
    let table = s.cli(&["machines"]);
    assert!(table.starts_with("HOSTNAME  MAC"), "{table}");
    assert!(table.contains("FAILED"), "{table}");

    // A machine's history, oldest first, the failure log indented under it.
    let events = s.cli(&["events", "cp1"]);
    let kinds: Vec<&str> = events
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(
        kinds,
        ["install-finished", "firstboot-failed", "failure-log"],
        "{events}"
    );
    assert!(
        events.contains("| error execution phase wait-control-plane: timed out"),
        "{events}"
    );
    let by_mac = s.cli(&["events", W1]);
    assert_eq!(by_mac.lines().count(), 2, "{by_mac}");

    let unknown = s.cli_cmd(&["events", "nosuch"]).output().unwrap();
    assert!(!unknown.status.success());
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(err.contains("no machine named nosuch"), "{err}");
    let zero = s
        .cli_cmd(&["machines", "--watch", "--interval", "0"])
        .output()
        .unwrap();
    assert!(!zero.status.success(), "an interval of 0 is refused");
}
