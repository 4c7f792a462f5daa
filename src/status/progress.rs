//! How far a machine's install has come and what failed, read from its
//! event history: the autoinstall reporting events (curtin's stages), the
//! install-finished and first-boot callbacks. Pure functions over events.

use crate::inventory::{Event, State};
use serde::{Deserialize, Serialize};

/// Kinds of events the API records (see `http::api`).
pub const INSTALLER_PROGRESS: &str = "installer-progress";
pub const INSTALL_FINISHED: &str = "install-finished";
pub const FIRSTBOOT_FAILED: &str = "firstboot-failed";
pub const FAILURE_LOG: &str = "failure-log";
pub const JOINED: &str = "joined";
pub const REIMAGE: &str = "reimage";

/// A rough percentage of the whole bring-up and the phase it is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub percent: u8,
    pub phase: String,
}

/// The step that failed in the current install or first boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub step: String,
    pub time: u64,
    /// The end of the log the machine sent with its report, if it sent one.
    pub log_tail: Option<String>,
}

/// Installer phases in the order an install passes them, matched against
/// the reporting event names (curtin's stages, subiquity's postinstall),
/// with the share of the bring-up done once a phase has started.
const PHASES: [(&str, &str, u8); 6] = [
    ("early", "early commands", 10),
    ("partitioning", "partitioning", 20),
    ("extract", "writing the system", 35),
    ("curthooks", "configuring the system", 60),
    ("postinstall", "installing packages", 75),
    ("late", "late commands", 85),
];

/// The events of the current install: everything after the last reimage.
pub fn current_install(events: &[Event]) -> &[Event] {
    match events.iter().rposition(|e| e.kind == REIMAGE) {
        Some(i) => &events[i + 1..],
        None => events,
    }
}

/// When the current install started: its first installer progress event.
pub fn install_started(events: &[Event]) -> Option<u64> {
    current_install(events)
        .iter()
        .find(|e| e.kind == INSTALLER_PROGRESS)
        .map(|e| e.time)
}

/// Where a machine in `state` with this history is.
pub fn progress(state: State, events: &[Event]) -> Option<Progress> {
    let p = |percent, phase: &str| {
        Some(Progress {
            percent,
            phase: phase.to_string(),
        })
    };
    match state {
        State::Discovered => None,
        State::Configured | State::ReimagePending => p(0, "waiting for a network boot"),
        State::Installing => {
            let reached = current_install(events)
                .iter()
                .filter(|e| e.kind == INSTALLER_PROGRESS)
                .filter_map(|e| {
                    // Whole words of the event name, so "late" does not match "template".
                    let words: Vec<String> = e
                        .message
                        .split(|c: char| !c.is_ascii_alphanumeric())
                        .map(str::to_ascii_lowercase)
                        .collect();
                    PHASES
                        .iter()
                        .rposition(|(marker, _, _)| words.iter().any(|w| w == marker))
                })
                .max();
            match reached {
                Some(i) => p(PHASES[i].2, PHASES[i].1),
                None => p(5, "installer started"),
            }
        }
        State::Installed => p(90, "installed; first boot joins the cluster"),
        State::Joined => p(100, "joined"),
    }
}

/// The latest failure of the current install that nothing has since
/// superseded (a later success clears it), with the log the machine sent.
pub fn failure(events: &[Event]) -> Option<Failure> {
    let mut found: Option<Failure> = None;
    for e in current_install(events) {
        match e.kind.as_str() {
            INSTALLER_PROGRESS if e.message.contains("[FAIL]") => {
                // "finish <name> [FAIL] [description]"
                let step = e
                    .message
                    .trim_start_matches("finish ")
                    .split(" [")
                    .next()
                    .unwrap_or_default();
                found = Some(Failure {
                    step: format!("installer: {step}"),
                    time: e.time,
                    log_tail: None,
                });
            }
            FIRSTBOOT_FAILED => {
                let step = e
                    .message
                    .split_once("at step ")
                    .map(|(_, rest)| rest.split(';').next().unwrap_or(rest))
                    .unwrap_or("unknown");
                found = Some(Failure {
                    step: format!("first boot: {step}"),
                    time: e.time,
                    log_tail: None,
                });
            }
            FAILURE_LOG => {
                if let Some(f) = found.as_mut() {
                    f.log_tail = Some(e.message.clone());
                }
            }
            INSTALL_FINISHED | JOINED => found = None,
            _ => {}
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: u64, kind: &str, message: &str) -> Event {
        Event {
            time,
            kind: kind.into(),
            message: message.into(),
        }
    }

    #[test]
    fn progress_follows_the_installer_stages() {
        let events = vec![
            ev(10, INSTALLER_PROGRESS, "start subiquity/Early"),
            ev(
                20,
                INSTALLER_PROGRESS,
                "start subiquity/Install/install/curtin_install/stage-partitioning",
            ),
            ev(
                30,
                INSTALLER_PROGRESS,
                "start subiquity/Install/install/curtin_install/stage-extract",
            ),
        ];
        let p = progress(State::Installing, &events).unwrap();
        assert_eq!((p.percent, p.phase.as_str()), (35, "writing the system"));
        assert_eq!(install_started(&events), Some(10));
        assert_eq!(progress(State::Installing, &[]).unwrap().percent, 5);
        assert_eq!(progress(State::Joined, &events).unwrap().percent, 100);
        assert_eq!(progress(State::Discovered, &events), None);
    }

    #[test]
    fn a_reimage_starts_a_new_install() {
        let events = vec![
            ev(10, INSTALLER_PROGRESS, "start x/stage-curthooks"),
            ev(
                20,
                FIRSTBOOT_FAILED,
                "first boot failed at step kubeadm-join; see log",
            ),
            ev(30, REIMAGE, "operator requested a reinstall"),
            ev(40, INSTALLER_PROGRESS, "start subiquity/Early"),
        ];
        assert_eq!(install_started(&events), Some(40));
        assert_eq!(
            failure(&events),
            None,
            "the old failure belongs to the old install"
        );
        assert_eq!(progress(State::Installing, &events).unwrap().percent, 10);
    }

    #[test]
    fn failures_carry_the_step_and_log_until_a_success() {
        let mut events = vec![
            ev(10, INSTALLER_PROGRESS, "start subiquity/Early"),
            ev(11, INSTALL_FINISHED, "installer reported success"),
            ev(
                20,
                FIRSTBOOT_FAILED,
                "first boot failed at step kubeadm-join; see log",
            ),
            ev(20, FAILURE_LOG, "line 1\nerror: join timed out"),
        ];
        let f = failure(&events).unwrap();
        assert_eq!(f.step, "first boot: kubeadm-join");
        assert_eq!(f.time, 20);
        assert_eq!(f.log_tail.as_deref(), Some("line 1\nerror: join timed out"));
        events.push(ev(30, JOINED, "joined"));
        assert_eq!(failure(&events), None, "a later join clears it");

        let installer = vec![ev(
            5,
            INSTALLER_PROGRESS,
            "finish subiquity/Install/install/curtin_install/stage-partitioning [FAIL] [partitioning failed]",
        )];
        assert_eq!(
            failure(&installer).unwrap().step,
            "installer: subiquity/Install/install/curtin_install/stage-partitioning"
        );
    }
}
