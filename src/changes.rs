//! Change notification for live views: a [`Store`] wrapper that, after each
//! committed batch, tells subscribers that the operator's view changed.
//!
//! Every write — DHCP leases and sightings from the lease writer thread,
//! installer events and callbacks, the operator's reimage — passes through
//! `Store::write`, so wrapping the store is the one place that sees them
//! all; nothing else has to remember to send.

use crate::bringup::Slot;
use crate::inventory::{Event, MachineRecord};
use crate::mac::MacAddr;
use crate::store::{Lease, Store, Write};
use anyhow::Result;
use std::net::Ipv4Addr;
use std::sync::Arc;
use tokio::sync::broadcast;

/// How many notifications a slow subscriber may fall behind; it then sees
/// `Lagged` and simply re-reads the whole view, so nothing is lost.
const BACKLOG: usize = 64;

/// Subscribers are told *that* something changed, not what: each re-reads
/// the view it shows, which keeps them correct however many they miss.
#[derive(Clone)]
pub struct Changes {
    sender: broadcast::Sender<()>,
}

impl Default for Changes {
    fn default() -> Changes {
        Changes {
            sender: broadcast::channel(BACKLOG).0,
        }
    }
}

impl Changes {
    pub fn subscribe(&self) -> broadcast::Receiver<()> {
        self.sender.subscribe()
    }

    fn notify(&self) {
        // No subscribers is the usual case (no page open): not an error.
        let _ = self.sender.send(());
    }
}

/// The store, announcing every committed batch on `changes`.
pub struct Announcing {
    inner: Arc<dyn Store>,
    changes: Changes,
}

impl Announcing {
    pub fn new(inner: Arc<dyn Store>, changes: Changes) -> Announcing {
        Announcing { inner, changes }
    }
}

impl Store for Announcing {
    fn write(&self, batch: &[Write]) -> Result<()> {
        self.inner.write(batch)?;
        if !batch.is_empty() {
            self.changes.notify();
        }
        Ok(())
    }
    fn leases(&self) -> Result<Vec<Lease>> {
        self.inner.leases()
    }
    fn quarantined(&self) -> Result<Vec<(Ipv4Addr, u64)>> {
        self.inner.quarantined()
    }
    fn machine(&self, mac: MacAddr) -> Result<Option<MachineRecord>> {
        self.inner.machine(mac)
    }
    fn machines(&self) -> Result<Vec<MachineRecord>> {
        self.inner.machines()
    }
    fn events(&self, mac: MacAddr, limit: usize) -> Result<Vec<Event>> {
        self.inner.events(mac, limit)
    }
    fn install_token(&self, mac: MacAddr) -> Result<String> {
        self.inner.install_token(mac)
    }
    fn check_install_token(&self, mac: MacAddr, token: &str) -> Result<bool> {
        self.inner.check_install_token(mac, token)
    }
    fn slot(&self) -> Result<Option<Slot>> {
        self.inner.slot()
    }
    fn swap_slot(&self, expected: Option<&Slot>, new: Option<&Slot>) -> Result<bool> {
        self.inner.swap_slot(expected, new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    #[test]
    fn a_committed_batch_is_announced_once() {
        let dir = tempfile::tempdir().unwrap();
        let changes = Changes::default();
        let store = Announcing::new(
            Arc::new(SqliteStore::open(dir.path()).unwrap()),
            changes.clone(),
        );
        let mut rx = changes.subscribe();
        let mac: MacAddr = "52:54:00:00:00:01".parse().unwrap();
        store
            .write(&[Write::Event {
                mac,
                event: Event::now("x", "y"),
            }])
            .unwrap();
        assert!(rx.try_recv().is_ok(), "a committed write is announced");
        assert!(rx.try_recv().is_err(), "once");
        store.write(&[]).unwrap();
        assert!(rx.try_recv().is_err(), "an empty batch is not a change");
    }
}
