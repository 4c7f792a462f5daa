//! Prometheus metrics: counters the transports bump as traffic passes, an
//! install-duration histogram, and the text exposition (format 0.0.4) that
//! `/metrics` serves, with the gauges read from the store at scrape time.
//!
//! Why hand-written rather than a metrics crate: the counters live in one
//! process-wide registry (as Prometheus client libraries' default registry
//! does), so a hook deep in a transport — a TFTP transfer task, the DHCP
//! receive loop — is one line, with no handle threaded through. The whole
//! exposition format bootherd needs is counters, gauges and one histogram;
//! the tests check it with a real Prometheus parser and `promtool`.

use crate::dhcp::Outcome as DhcpOutcome;
use crate::tftp::packet::ErrorCode;
use crate::tftp::transfer::Outcome as TftpOutcome;
use dhcproto::v4::MessageType;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// A counter family: its name and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Family {
    name: &'static str,
    help: &'static str,
}

const DHCP_PACKETS: Family = Family {
    name: "bootherd_dhcp_packets_total",
    help: "DHCP packets received, by message type and what bootherd answered (ignored: malformed or for another server; no-reply: handled without an answer, e.g. RELEASE).",
};
const TFTP_TRANSFERS: Family = Family {
    name: "bootherd_tftp_transfers_total",
    help: "TFTP read requests, by how they ended (refusals by their error).",
};
const TFTP_BYTES: Family = Family {
    name: "bootherd_tftp_bytes_total",
    help: "File bytes sent over TFTP and acknowledged by the client.",
};
const HTTP_REQUESTS: Family = Family {
    name: "bootherd_http_requests_total",
    help: "HTTP requests, by route (boot files: \"files\"), method and status.",
};
const CALLBACK_FAILURES: Family = Family {
    name: "bootherd_callback_failures_total",
    help: "Installer and first-boot callbacks that bootherd refused or failed (bad token, wrong state, bad body), by callback and status.",
};
const FIRSTBOOT_FAILURES: Family = Family {
    name: "bootherd_firstboot_failures_total",
    help: "First boots that reported a failed step.",
};

/// Every counter family, so each is exposed (with HELP and TYPE) even before its first count.
const COUNTERS: [Family; 6] = [
    DHCP_PACKETS,
    TFTP_TRANSFERS,
    TFTP_BYTES,
    HTTP_REQUESTS,
    CALLBACK_FAILURES,
    FIRSTBOOT_FAILURES,
];

/// Upper bounds (seconds) of the install-duration buckets: a netboot install
/// takes minutes on a LAN, up to an hour or more behind a slow mirror.
const INSTALL_BUCKETS: [u64; 10] = [120, 300, 600, 900, 1200, 1800, 2700, 3600, 5400, 7200];

type Labels = Vec<(&'static str, String)>;

struct Registry {
    counters: BTreeMap<(Family, Labels), u64>,
    /// Per bucket of `INSTALL_BUCKETS` (not cumulative), then the overflow.
    install_buckets: [u64; INSTALL_BUCKETS.len() + 1],
    install_sum: u64,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    counters: BTreeMap::new(),
    install_buckets: [0; INSTALL_BUCKETS.len() + 1],
    install_sum: 0,
});

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    // Counters are plain numbers: a panic elsewhere cannot leave them half-written.
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

fn add(family: Family, labels: &[(&'static str, &str)], n: u64) {
    let labels: Labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
    *registry().counters.entry((family, labels)).or_insert(0) += n;
}

fn message_type(t: MessageType) -> &'static str {
    match t {
        MessageType::Discover => "discover",
        MessageType::Offer => "offer",
        MessageType::Request => "request",
        MessageType::Decline => "decline",
        MessageType::Ack => "ack",
        MessageType::Nak => "nak",
        MessageType::Release => "release",
        MessageType::Inform => "inform",
        _ => "other",
    }
}

/// One DHCP datagram received, and what the server made of it (`None`: ignored).
pub fn dhcp_packet(packet: &[u8], handled: Option<&DhcpOutcome>) {
    let outcome = match handled {
        None => "ignored",
        Some(o) => o
            .reply
            .as_ref()
            .map_or("no-reply", |r| message_type(r.kind)),
    };
    // Parsed again here rather than passed up from the handler, so the DHCP
    // code needs one line for metrics; the parser only indexes the options.
    let asked = crate::dhcp::parse(packet)
        .ok()
        .map_or("malformed", |r| message_type(r.msg_type));
    add(DHCP_PACKETS, &[("type", asked), ("outcome", outcome)], 1);
}

/// A TFTP transfer ended after `bytes` acknowledged bytes.
pub fn tftp_transfer(outcome: &TftpOutcome, bytes: u64) {
    let label = match outcome {
        TftpOutcome::Complete => "complete",
        TftpOutcome::AbortedByClient(_) => "aborted-by-client",
        TftpOutcome::TimedOut { .. } => "timed-out",
        TftpOutcome::ClientGone => "client-gone",
        TftpOutcome::Superseded => "superseded",
        TftpOutcome::ReadError(_) => "read-error",
        TftpOutcome::NetworkError(_) => "network-error",
        TftpOutcome::IllegalPacket(_) => "illegal-packet",
    };
    add(TFTP_TRANSFERS, &[("outcome", label)], 1);
    add(TFTP_BYTES, &[], bytes);
}

/// A TFTP read request refused before any data (e.g. no such file).
pub fn tftp_refused(code: ErrorCode) {
    let label = match code {
        ErrorCode::FileNotFound => "refused-not-found",
        ErrorCode::AccessViolation => "refused-access",
        _ => "refused-other",
    };
    add(TFTP_TRANSFERS, &[("outcome", label)], 1);
}

/// A TFTP read request refused because the most transfers are already running.
pub fn tftp_busy() {
    add(TFTP_TRANSFERS, &[("outcome", "refused-busy")], 1);
}

/// One HTTP request answered. `route` is the route's pattern, never the raw
/// path, so that MACs and file names do not each make a new series.
pub fn http_request(route: &str, method: &str, status: u16) {
    let status = status.to_string();
    add(
        HTTP_REQUESTS,
        &[("route", route), ("method", method), ("status", &status)],
        1,
    );
}

/// A machine's callback was refused or failed.
pub fn callback_failure(callback: &str, status: u16) {
    let status = status.to_string();
    add(
        CALLBACK_FAILURES,
        &[("callback", callback), ("status", &status)],
        1,
    );
}

/// A first boot reported that a step failed.
pub fn firstboot_failure() {
    add(FIRSTBOOT_FAILURES, &[], 1);
}

/// An install finished `secs` after it started.
pub fn install_finished(secs: u64) {
    let mut r = registry();
    let i = INSTALL_BUCKETS
        .iter()
        .position(|le| secs <= *le)
        .unwrap_or(INSTALL_BUCKETS.len());
    r.install_buckets[i] += 1;
    r.install_sum += secs;
}

/// What `/metrics` reads from the store at scrape time.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gauges {
    /// Machines per lifecycle state name (every state listed, zeros included).
    pub machines_by_state: Vec<(&'static str, u64)>,
    pub pools: Vec<PoolUsage>,
}

/// Addresses of one dynamic pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    /// The pool's name in the config (its range, e.g. `10.0.0.200-10.0.0.250`).
    pub pool: String,
    pub in_use: u64,
    pub free: u64,
}

/// The whole exposition, counters first.
pub fn render(gauges: &Gauges) -> String {
    let r = registry();
    let mut out = String::new();
    for family in COUNTERS {
        header(&mut out, family.name, family.help, "counter");
        let mut any = false;
        for ((f, labels), value) in r.counters.range((family, Vec::new())..) {
            if *f != family {
                break;
            }
            any = true;
            sample(&mut out, family.name, labels, *value);
        }
        if !any && COUNTER_WITHOUT_LABELS.contains(&family.name) {
            sample(&mut out, family.name, &[], 0);
        }
    }

    header(
        &mut out,
        "bootherd_machines",
        "Machines (configured and discovered) by lifecycle state.",
        "gauge",
    );
    for (state, n) in &gauges.machines_by_state {
        sample(
            &mut out,
            "bootherd_machines",
            &[("state", state.to_string())],
            *n,
        );
    }
    for (name, help, pick) in [
        (
            "bootherd_dhcp_pool_leases_in_use",
            "Unexpired leases in each dynamic pool.",
            (|p: &PoolUsage| p.in_use) as fn(&PoolUsage) -> u64,
        ),
        (
            "bootherd_dhcp_pool_addresses_free",
            "Addresses of each dynamic pool that can still be leased.",
            |p: &PoolUsage| p.free,
        ),
    ] {
        header(&mut out, name, help, "gauge");
        for p in &gauges.pools {
            sample(&mut out, name, &[("pool", p.pool.clone())], pick(p));
        }
    }

    let name = "bootherd_install_duration_seconds";
    header(
        &mut out,
        name,
        "Install durations, from the installer's first progress event to its success callback.",
        "histogram",
    );
    let mut cumulative = 0;
    for (i, le) in INSTALL_BUCKETS.iter().enumerate() {
        cumulative += r.install_buckets[i];
        sample(
            &mut out,
            &format!("{name}_bucket"),
            &[("le", le.to_string())],
            cumulative,
        );
    }
    cumulative += r.install_buckets[INSTALL_BUCKETS.len()];
    sample(
        &mut out,
        &format!("{name}_bucket"),
        &[("le", "+Inf".into())],
        cumulative,
    );
    sample(&mut out, &format!("{name}_sum"), &[], r.install_sum);
    sample(&mut out, &format!("{name}_count"), &[], cumulative);
    out
}

/// Families without labels start at an explicit 0, so a scrape shows them at once.
const COUNTER_WITHOUT_LABELS: [&str; 2] = [TFTP_BYTES.name, FIRSTBOOT_FAILURES.name];

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&'static str, String)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        let pairs: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
            .collect();
        let _ = write!(out, "{{{}}}", pairs.join(","));
    }
    let _ = writeln!(out, " {value}");
}

/// Text format: in HELP, `\` and newline are escaped.
fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Text format: in label values, `\`, `"` and newline are escaped.
fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(text: &str, series: &str) -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_and_histogram_render_in_text_format() {
        // The registry is process-wide: read deltas, other tests may count too.
        let before = render(&Gauges::default());
        let route = "/unit-test/{id}";
        http_request(route, "GET", 200);
        http_request(route, "GET", 200);
        http_request(route, "GET", 404);
        install_finished(400);
        let text = render(&Gauges {
            machines_by_state: vec![("joined", 2)],
            pools: vec![PoolUsage {
                pool: "10.0.0.200-10.0.0.250".into(),
                in_use: 3,
                free: 48,
            }],
        });
        let ok =
            r#"bootherd_http_requests_total{route="/unit-test/{id}",method="GET",status="200"}"#;
        assert_eq!(value_of(&text, ok), Some(2));
        let miss = ok.replace("200", "404");
        assert_eq!(value_of(&text, &miss), Some(1));
        let count = "bootherd_install_duration_seconds_count";
        assert_eq!(
            value_of(&text, count).unwrap() - value_of(&before, count).unwrap(),
            1
        );
        let le600 = r#"bootherd_install_duration_seconds_bucket{le="600"}"#;
        let le300 = r#"bootherd_install_duration_seconds_bucket{le="300"}"#;
        assert_eq!(
            value_of(&text, le600).unwrap() - value_of(&before, le600).unwrap(),
            1,
            "400 s falls in le=600"
        );
        assert_eq!(value_of(&text, le300), value_of(&before, le300));
        assert_eq!(
            value_of(&text, r#"bootherd_machines{state="joined"}"#),
            Some(2)
        );
        assert_eq!(
            value_of(
                &text,
                r#"bootherd_dhcp_pool_addresses_free{pool="10.0.0.200-10.0.0.250"}"#
            ),
            Some(48)
        );
        assert!(text.contains("# TYPE bootherd_install_duration_seconds histogram\n"));
        assert!(text.contains("# TYPE bootherd_tftp_bytes_total counter\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("l", "a\"b\\c\nd".into())], 1);
        assert_eq!(out, "m{l=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}
