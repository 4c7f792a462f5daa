//! The control-plane slot: which control plane runs `kubeadm init`, and one
//! control-plane join at a time. Pure: the HTTP handler reads the current
//! slot and whether the cluster exists, asks [`ask`], and stores the answer
//! with a compare-and-swap, so two control planes asking at once cannot both
//! win.
//!
//! Why a slot: config order cannot say which node inits (the first one in
//! the file may be dead, or be the one being reimaged, and a reimaged node
//! that ran `init` again would build a second cluster behind the same VIP).
//! And etcd admits one learner at a time: control planes that join together
//! fail with "too many learner members", leaving members half-added.
//!
//! The holder renews the slot while it works (the role script does so every
//! minute); a holder that dies stops renewing, and the slot passes on after
//! [`SLOT_TTL_SECS`]. Success (`joined`) or failure releases it at once.

use crate::mac::MacAddr;
use serde::Serialize;

/// How long a slot outlives its holder's last renewal.
pub const SLOT_TTL_SECS: u64 = 180;

/// What the holder of the slot runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotAction {
    /// `kubeadm init`: no control plane has joined yet.
    Init,
    /// `kubeadm join --control-plane`.
    Join,
}

impl SlotAction {
    pub fn name(self) -> &'static str {
        match self {
            SlotAction::Init => "init",
            SlotAction::Join => "join",
        }
    }

    pub fn from_name(s: &str) -> Option<SlotAction> {
        match s {
            "init" => Some(SlotAction::Init),
            "join" => Some(SlotAction::Join),
            _ => None,
        }
    }
}

/// The slot as stored: who holds it, for what, until when (unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Slot {
    pub holder: MacAddr,
    pub action: SlotAction,
    pub expires: u64,
}

/// The answer to a control plane that asks for the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Run `action` now; store `slot` (new or renewed).
    Granted(Slot),
    /// Another control plane holds the slot until `slot.expires`: ask again.
    Wait(Slot),
}

/// Decides the slot for `asker` at `now`. `cluster_exists`: some control
/// plane has joined (so `init` must never run again).
pub fn ask(current: Option<&Slot>, asker: MacAddr, cluster_exists: bool, now: u64) -> Answer {
    let expires = now + SLOT_TTL_SECS;
    match current {
        Some(s) if s.holder != asker && s.expires > now => Answer::Wait(*s),
        // A renewal keeps its action: an `init` half-way through must not
        // turn into a `join` because the API it is creating now answers.
        Some(s) if s.holder == asker && s.expires > now => Answer::Granted(Slot { expires, ..*s }),
        // Free, expired, or the asker's own lapsed slot: decided afresh.
        _ => Answer::Granted(Slot {
            holder: asker,
            action: if cluster_exists {
                SlotAction::Join
            } else {
                SlotAction::Init
            },
            expires,
        }),
    }
}

/// The slot after `holder` releases it: `None` when it held it, else unchanged.
pub fn release(current: Option<&Slot>, holder: MacAddr) -> Option<Slot> {
    match current {
        Some(s) if s.holder == holder => None,
        other => other.copied(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        format!("52:54:00:aa:00:{n:02x}").parse().unwrap()
    }

    #[test]
    fn the_first_to_ask_inits_and_the_others_wait_then_join() {
        let (cp1, cp2) = (mac(1), mac(2));
        let Answer::Granted(s) = ask(None, cp2, false, 100) else {
            panic!("a free slot is granted")
        };
        assert_eq!(s.action, SlotAction::Init);
        assert_eq!(s.holder, cp2, "the asker, not config order, inits");
        assert_eq!(ask(Some(&s), cp1, false, 101), Answer::Wait(s));
        // Released after the init'ing node joined: the next one joins.
        let free = release(Some(&s), cp2);
        assert_eq!(free, None);
        let Answer::Granted(j) = ask(free.as_ref(), cp1, true, 150) else {
            panic!()
        };
        assert_eq!(j.action, SlotAction::Join);
    }

    #[test]
    fn a_dead_holder_loses_the_slot_after_the_ttl_and_a_renewal_keeps_it() {
        let (cp1, cp2) = (mac(1), mac(2));
        let Answer::Granted(s) = ask(None, cp1, false, 0) else {
            panic!()
        };
        let Answer::Granted(renewed) = ask(Some(&s), cp1, true, 100) else {
            panic!()
        };
        assert_eq!(renewed.action, SlotAction::Init, "a renewal keeps init");
        assert_eq!(renewed.expires, 100 + SLOT_TTL_SECS);
        assert!(matches!(
            ask(Some(&renewed), cp2, false, 200),
            Answer::Wait(_)
        ));
        // cp1 died before any control plane joined: cp2 inits instead.
        let Answer::Granted(taken) = ask(Some(&renewed), cp2, false, 100 + SLOT_TTL_SECS) else {
            panic!("an expired slot passes on")
        };
        assert_eq!((taken.holder, taken.action), (cp2, SlotAction::Init));
    }

    #[test]
    fn once_a_control_plane_joined_nobody_inits_again() {
        // A reimaged first control plane asks with the cluster there.
        let Answer::Granted(s) = ask(None, mac(1), true, 0) else {
            panic!()
        };
        assert_eq!(s.action, SlotAction::Join);
        assert_eq!(
            release(Some(&s), mac(2)),
            Some(s),
            "only the holder releases"
        );
    }
}
