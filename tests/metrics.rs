//! `/metrics` against real peers and real parsers: a busybox udhcpc lease
//! exchange, a tftp-hpa fetch, installer callbacks and plain HTTP requests,
//! then the exposition is parsed by the Prometheus Python client's parser
//! and linted by `promtool check metrics`, and every counter must have
//! moved by exactly the traffic this test sent — no more, no less.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CP1_MAC: &str = "52:54:00:aa:00:01";
const CLIENT_MAC: &str = "52:54:00:bb:00:07";
const PROBE: &str = "metrics-probe.bin";
const PROBE_LEN: usize = 100_000;
/// Debian's interpreter, where `python3-prometheus-client` installs.
const PYTHON: &str = "/usr/bin/python3";

/// A series: metric name and its labels, sorted.
type Series = (String, Vec<(String, String)>);
/// One scrape: series → value.
type Samples = BTreeMap<Series, f64>;

/// Parses the exposition with `prometheus_client`'s text parser.
fn parse(text: &str) -> Samples {
    let program = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, sorted(s.labels.items()), s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(PYTHON)
        .args(["-c", program])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(Series, f64)> = serde_json::from_slice::<Vec<(String, Value, f64)>>(&out.stdout)
        .unwrap()
        .into_iter()
        .map(|(name, labels, v)| ((name, serde_json::from_value(labels).unwrap()), v))
        .collect();
    rows.into_iter().collect()
}

/// `promtool check metrics`: the exposition parses and passes its lint.
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key(name: &str, labels: &[(&str, &str)]) -> Series {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    (name.to_string(), l)
}

fn value(s: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.get(&key(name, labels)).copied().unwrap_or(0.0)
}

/// The counters (and histogram samples) that differ between two scrapes.
fn moved(before: &Samples, after: &Samples) -> BTreeMap<String, f64> {
    let counter = |n: &str| {
        n.ends_with("_total")
            || n.starts_with("bootherd_install_duration_seconds_")
                && !n.ends_with("_sum")
                && !n.ends_with("_created")
    };
    let mut out = BTreeMap::new();
    for (k, v) in after {
        if !counter(&k.0) {
            continue;
        }
        let d = v - before.get(k).copied().unwrap_or(0.0);
        if d != 0.0 {
            let labels: Vec<String> = k.1.iter().map(|(a, b)| format!("{a}={b}")).collect();
            out.insert(format!("{}{{{}}}", k.0, labels.join(",")), d);
        }
    }
    out
}

fn udhcpc_script(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("udhcpc.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\n# Sets the leased address; nothing else of the host is touched.\n\
         if [ \"$1\" = bound ]; then ip addr add \"$ip/${mask:-24}\" dev \"$interface\"; fi\n",
    )
    .unwrap();
    sh(Command::new("chmod").args(["755", path.to_str().unwrap()]));
    path
}

#[test]
fn metrics_parse_and_count_exactly_the_traffic_sent() {
    require(&[PYTHON, "promtool", "busybox", "tftp", "curl"]);
    let lan = Lan::new("met", "10.55.0.1/24");
    let config = lan_config(&machine(CP1_MAC, "cp1", "control-plane", "10.55.0.11"))
        + "[tftp]\nroot = \"@DATA@/tftp\"\n";
    let s = Server::start(&lan.server, &config);
    let root = s.data_dir.join("tftp");
    std::fs::create_dir_all(&root).unwrap();
    let probe: Vec<u8> = (0..PROBE_LEN).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(root.join(PROBE), &probe).unwrap();

    let scrape = |scrapes: &mut u32| -> String {
        let (code, body) = s.curl(&[&format!("{}/metrics", s.http)]);
        assert_eq!(code, 200, "{body}");
        *scrapes += 1;
        body
    };
    let mut scrapes = 0;
    let before_text = scrape(&mut scrapes);
    promtool_check(&before_text);
    let before = parse(&before_text);
    let pool = [("pool", "10.55.0.200-10.55.0.250")];

    // DHCP: one DISCOVER/OFFER and one REQUEST/ACK from a real client.
    lan.client
        .ip(&["link", "set", "cl0", "address", CLIENT_MAC]);
    let dir = tempfile::tempdir().unwrap();
    let script = udhcpc_script(dir.path());
    let out = lan
        .client
        .cmd("busybox")
        .args([
            "udhcpc", "-f", "-q", "-n", "-i", "cl0", "-t", "3", "-T", "3", "-s",
        ])
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "udhcpc got no lease: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // TFTP: one whole file and one missing file, from tftp-hpa.
    let got = dir.path().join("got.bin");
    sh(lan
        .client
        .cmd("tftp")
        .args(["10.55.0.1", "-m", "binary", "-c", "get", PROBE])
        .arg(&got));
    assert_eq!(std::fs::read(&got).unwrap(), probe);
    let missing = lan
        .client
        .cmd("tftp")
        .args(["10.55.0.1", "-m", "binary", "-c", "get", "no-such-file"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&missing.stdout).to_string()
        + &String::from_utf8_lossy(&missing.stderr);
    assert!(
        said.contains("not found") || said.contains("Error code 1"),
        "{said}"
    );

    // HTTP: an install as the machine reports it, a refused callback, plain requests.
    let (code, user_data) = s.curl(&[&format!(
        "{}/cloud-init/{}/user-data",
        s.http,
        CP1_MAC.replace(':', "-")
    )]);
    assert_eq!(code, 200);
    let i = user_data.find("installed?token=").unwrap() + "installed?token=".len();
    let token = &user_data[i..i + 32];
    let cb = |what: &str, query: &str, body: &str| {
        s.curl(&[
            "-X",
            "POST",
            &format!(
                "{}/api/v1/machines/{}/{what}?token={query}",
                s.http,
                CP1_MAC.replace(':', "-")
            ),
            "--data-binary",
            body,
        ])
        .0
    };
    let event = json!({"name": "subiquity/Early", "event_type": "start"}).to_string();
    assert_eq!(cb("events", token, &event), 204);
    assert_eq!(cb("installed", token, ""), 204);
    assert_eq!(
        cb(
            "firstboot-failed",
            &format!("{token}&step=kubeadm-init"),
            "log line"
        ),
        204
    );
    assert_eq!(cb("installed", "00000000000000000000000000000000", ""), 403);
    for _ in 0..3 {
        assert_eq!(s.curl(&[&format!("{}/api/v1/health", s.http)]).0, 200);
    }
    for _ in 0..2 {
        assert_eq!(s.curl(&[&format!("{}/no-such-boot-file", s.http)]).0, 404);
    }

    // A transfer is counted when its last ACK arrives, a moment after the
    // client has its file: scrape until it shows (each scrape counts itself).
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let text = scrape(&mut scrapes);
        let after = parse(&text);
        let done = value(
            &after,
            "bootherd_tftp_transfers_total",
            &[("outcome", "complete")],
        ) > value(
            &before,
            "bootherd_tftp_transfers_total",
            &[("outcome", "complete")],
        );
        if done {
            promtool_check(&text);
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "the TFTP transfer was never counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };

    let http = |route: &str, method: &str, status: &str, n: f64| {
        (
            format!(
                "bootherd_http_requests_total{{method={method},route={route},status={status}}}"
            ),
            n,
        )
    };
    let expected: BTreeMap<String, f64> = [
        (
            "bootherd_dhcp_packets_total{outcome=offer,type=discover}".to_string(),
            1.0,
        ),
        (
            "bootherd_dhcp_packets_total{outcome=ack,type=request}".to_string(),
            1.0,
        ),
        (
            "bootherd_tftp_transfers_total{outcome=complete}".to_string(),
            1.0,
        ),
        (
            "bootherd_tftp_transfers_total{outcome=refused-not-found}".to_string(),
            1.0,
        ),
        ("bootherd_tftp_bytes_total{}".to_string(), PROBE_LEN as f64),
        http("/cloud-init/{mac}/{file}", "GET", "200", 1.0),
        http("/api/v1/machines/{id}/events", "POST", "204", 1.0),
        http("/api/v1/machines/{id}/installed", "POST", "204", 1.0),
        http("/api/v1/machines/{id}/firstboot-failed", "POST", "204", 1.0),
        http("/api/v1/machines/{id}/installed", "POST", "403", 1.0),
        http("/api/v1/health", "GET", "200", 3.0),
        http("files", "GET", "404", 2.0),
        // Every scrape but the last is counted in the last.
        http("/metrics", "GET", "200", f64::from(scrapes - 1)),
        (
            "bootherd_callback_failures_total{callback=installed,status=403}".to_string(),
            1.0,
        ),
        ("bootherd_firstboot_failures_total{}".to_string(), 1.0),
        ("bootherd_install_duration_seconds_count{}".to_string(), 1.0),
    ]
    .into_iter()
    .chain(
        // The install took seconds: it lands in every bucket.
        [
            "120", "300", "600", "900", "1200", "1800", "2700", "3600", "5400", "7200", "+Inf",
        ]
        .map(|le| {
            (
                format!("bootherd_install_duration_seconds_bucket{{le={le}}}"),
                1.0,
            )
        }),
    )
    .collect();
    let got = moved(&before, &after);
    assert_eq!(
        got,
        expected,
        "counters moved by other than the traffic sent\n{}",
        s.log()
    );

    // Gauges: the client's lease came out of the pool; it is a discovered machine.
    let gauge = |s: &Samples, name: &str, labels: &[(&str, &str)]| value(s, name, labels);
    assert_eq!(
        gauge(&after, "bootherd_dhcp_pool_leases_in_use", &pool)
            - gauge(&before, "bootherd_dhcp_pool_leases_in_use", &pool),
        1.0
    );
    assert_eq!(
        gauge(&before, "bootherd_dhcp_pool_addresses_free", &pool)
            - gauge(&after, "bootherd_dhcp_pool_addresses_free", &pool),
        1.0
    );
    // 51 addresses in the pool, none reserved inside it, one leased.
    assert_eq!(
        gauge(&after, "bootherd_dhcp_pool_addresses_free", &pool),
        50.0
    );
    let state = |s: &Samples, st: &str| value(s, "bootherd_machines", &[("state", st)]);
    assert_eq!(state(&before, "discovered"), 0.0);
    assert_eq!(state(&after, "discovered"), 1.0);
    assert_eq!(
        (state(&before, "configured"), state(&after, "configured")),
        (1.0, 0.0)
    );
    assert_eq!(state(&after, "installed"), 1.0);
}
