//! The operator's view of the rack: one row per machine (configured and
//! discovered) with its install progress and failure, and the cluster strip.
//! One builder serves the JSON API, the status page (and its live stream),
//! the terminal table and the `/metrics` gauges, so they always agree.
//!
//! - `progress` — install progress and failures from a machine's events.
//! - `cluster`  — VIP, control planes and quorum, workers, load balancers.
//! - `pools`    — leases in use and free per dynamic pool.
//! - `table`    — the terminal rendering (`bootherd machines [--watch]`).

pub mod cluster;
pub mod pools;
pub mod progress;
pub mod table;

use crate::app::App;
use crate::config::Config;
use crate::inventory::{unix_now, Event, State};
use crate::mac::MacAddr;
use crate::metrics::Gauges;
pub use cluster::ClusterSummary;
pub use progress::{Failure, Progress};
use serde::{Deserialize, Serialize};

/// Events read per machine to work out its progress: an install reports a
/// few hundred at most, and only the current install's matter.
const HISTORY: usize = 500;

/// One machine as the operator sees it.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct MachineRow {
    pub hostname: Option<String>,
    pub mac: MacAddr,
    pub role: Option<String>,
    pub platform: Option<String>,
    pub ip: Option<String>,
    pub state: State,
    pub last_seen: Option<u64>,
    pub last_event: Option<Event>,
    #[serde(default)]
    pub progress: Option<Progress>,
    #[serde(default)]
    pub failure: Option<Failure>,
}

/// Everything the status page shows.
#[derive(Debug, Serialize, Deserialize, Clone, PartialEq, Eq)]
pub struct Overview {
    pub cluster: ClusterSummary,
    pub machines: Vec<MachineRow>,
    /// Unix seconds when this view was read (for "3m ago" without clock skew).
    pub now: u64,
}

/// Every configured machine (in config order), then every discovered one.
pub fn machine_rows(app: &App, config: &Config) -> anyhow::Result<Vec<MachineRow>> {
    let records = app.store.machines()?;
    let leases = app.store.leases()?;
    let record = |mac: MacAddr| records.iter().find(|r| r.mac == mac);
    let with_history = |mut row: MachineRow| -> anyhow::Result<MachineRow> {
        // A machine without any event (most discovered ones) has no history to read.
        if record(row.mac).is_some_and(|r| r.last_event.is_some()) {
            let events = app.store.events(row.mac, HISTORY)?;
            row.progress = progress::progress(row.state, &events);
            row.failure = progress::failure(&events);
            // A failure's log travels with the failure; the last event is what happened.
            row.last_event = events
                .iter()
                .rev()
                .find(|e| e.kind != progress::FAILURE_LOG)
                .cloned();
        } else {
            row.progress = progress::progress(row.state, &[]);
        }
        Ok(row)
    };
    let mut rows = Vec::new();
    for m in &config.machines {
        let rec = record(m.mac);
        rows.push(with_history(MachineRow {
            hostname: Some(m.hostname.clone()),
            mac: m.mac,
            role: Some(m.role.to_string()),
            platform: Some(m.platform.to_string()),
            ip: Some(m.ip.to_string()),
            state: app.state_of(config, m.mac)?,
            last_seen: rec.and_then(|r| r.last_seen),
            last_event: rec.and_then(|r| r.last_event.clone()),
            progress: None,
            failure: None,
        })?);
    }
    for r in records
        .iter()
        .filter(|r| config.machine_by_mac(r.mac).is_none())
    {
        rows.push(with_history(MachineRow {
            hostname: None,
            mac: r.mac,
            role: None,
            platform: None,
            ip: leases
                .iter()
                .find(|l| l.mac == r.mac)
                .map(|l| l.ip.to_string()),
            state: State::Discovered,
            last_seen: r.last_seen,
            last_event: r.last_event.clone(),
            progress: None,
            failure: None,
        })?);
    }
    Ok(rows)
}

pub fn overview(app: &App) -> anyhow::Result<Overview> {
    let config = app.config();
    let machines = machine_rows(app, &config)?;
    Ok(Overview {
        cluster: cluster::summary(&config, &machines),
        machines,
        now: unix_now(),
    })
}

/// Every lifecycle state, in lifecycle order (the `/metrics` gauge lists each).
const STATES: [State; 6] = [
    State::Discovered,
    State::Configured,
    State::Installing,
    State::Installed,
    State::Joined,
    State::ReimagePending,
];

/// The gauges `/metrics` reads from the store at scrape time.
pub fn gauges(app: &App) -> anyhow::Result<Gauges> {
    let config = app.config();
    let rows = machine_rows(app, &config)?;
    let machines_by_state = STATES
        .iter()
        .map(|s| {
            (
                s.name(),
                rows.iter().filter(|r| r.state == *s).count() as u64,
            )
        })
        .collect();
    let pools = pools::usage(
        &config,
        &app.store.leases()?,
        &app.store.quarantined()?,
        unix_now(),
    );
    Ok(Gauges {
        machines_by_state,
        pools,
    })
}
