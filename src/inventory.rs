//! Machine lifecycle: the states a machine moves through and the events that
//! move it. The config says what machines *should* exist; this is what
//! bootherd has *observed* of them.

use crate::mac::MacAddr;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where a machine is in its life. Moved by callbacks from the installer and
/// the first-boot script, and by the operator's reimage, never by a boot alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Not in the config: seen on the network, given a pool lease, never installed.
    Discovered,
    /// In the config, nothing reported yet: installs at its next boot.
    Configured,
    /// The installer has reported progress.
    Installing,
    /// The installer reported success: boots its own disk from now on.
    Installed,
    /// The first-boot script reported that the node joined the cluster.
    Joined,
    /// The operator asked for a reinstall at the next boot.
    ReimagePending,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Discovered => "discovered",
            State::Configured => "configured",
            State::Installing => "installing",
            State::Installed => "installed",
            State::Joined => "joined",
            State::ReimagePending => "reimage-pending",
        }
    }

    pub fn from_name(s: &str) -> Option<State> {
        [
            State::Discovered,
            State::Configured,
            State::Installing,
            State::Installed,
            State::Joined,
            State::ReimagePending,
        ]
        .into_iter()
        .find(|st| st.name() == s)
    }

    /// Whether a configured machine in this state gets the installer when it boots.
    pub fn install_due(self) -> bool {
        matches!(
            self,
            State::Configured | State::Installing | State::ReimagePending
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What bootherd stores per MAC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MachineRecord {
    pub mac: MacAddr,
    pub state: State,
    /// Unix seconds of the last DHCP or HTTP contact.
    pub last_seen: Option<u64>,
    pub last_event: Option<Event>,
}

/// One line of a machine's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub time: u64,
    /// Short machine-readable kind: `installer-progress`, `install-finished`, `reimage`, …
    pub kind: String,
    pub message: String,
}

impl Event {
    pub fn now(kind: &str, message: impl Into<String>) -> Event {
        Event {
            time: unix_now(),
            kind: kind.to_string(),
            message: message.into(),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
