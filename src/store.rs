//! The store: what bootherd observes and decides (leases, lifecycle state,
//! events, per-install tokens), kept crash-safe in `data_dir`.
//!
//! Everything goes through the small [`Store`] trait so that a shared backend
//! (etcd, for several replicas) can replace SQLite without touching the
//! transports. Writes come in batches: one batch is one durable transaction,
//! which lets the DHCP server commit many leases per fsync (group commit)
//! and still acknowledge only leases that are on disk.

use crate::bringup::{Slot, SlotAction};
use crate::inventory::{unix_now, Event, MachineRecord, State};
use crate::mac::MacAddr;
use anyhow::{Context, Result};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Mutex;

/// An address bound to a MAC until `expires` (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub expires: u64,
    pub hostname: Option<String>,
}

/// One change inside a write batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Create or renew a lease (replaces any lease on the same address or MAC).
    BindLease(Lease),
    /// The client gave the address back (DHCPRELEASE).
    ReleaseLease { ip: Ipv4Addr, mac: MacAddr },
    /// A client reported the address in use (DHCPDECLINE): keep it out of the pool until `until`.
    QuarantineAddress { ip: Ipv4Addr, until: u64 },
    /// A machine was heard from; records an unknown MAC as `discovered` the first time.
    Seen { mac: MacAddr, at: u64, known: bool },
    /// A lifecycle move, with the event that explains it. Moving to
    /// `ReimagePending` also revokes the machine's install token.
    SetState {
        mac: MacAddr,
        state: State,
        event: Event,
    },
    /// An event that does not move the state (installer progress, …).
    Event { mac: MacAddr, event: Event },
}

pub trait Store: Send + Sync {
    /// Applies the batch in one durable transaction: all or nothing.
    fn write(&self, batch: &[Write]) -> Result<()>;
    fn leases(&self) -> Result<Vec<Lease>>;
    fn quarantined(&self) -> Result<Vec<(Ipv4Addr, u64)>>;
    /// `None` when the MAC has never been recorded.
    fn machine(&self, mac: MacAddr) -> Result<Option<MachineRecord>>;
    fn machines(&self) -> Result<Vec<MachineRecord>>;
    /// The newest `limit` events of a machine, oldest first.
    fn events(&self, mac: MacAddr, limit: usize) -> Result<Vec<Event>>;
    /// The token the current install of `mac` must present in its callbacks;
    /// minted (and stored) when there is none.
    fn install_token(&self, mac: MacAddr) -> Result<String>;
    /// Whether `token` is the current install token of `mac`. It stays valid
    /// through the first boot (its callbacks use it too) until a reimage
    /// revokes it (see `Write::SetState`).
    fn check_install_token(&self, mac: MacAddr, token: &str) -> Result<bool>;
    /// The control-plane slot (`crate::bringup`), expired or not.
    fn slot(&self) -> Result<Option<Slot>>;
    /// Replaces the slot with `new` if it is still `expected`; false (and
    /// nothing changed) when another request changed it first.
    fn swap_slot(&self, expected: Option<&Slot>, new: Option<&Slot>) -> Result<bool>;
}

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/state.db`.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "cannot create data_dir {} (create it, or set [server] data_dir)",
                data_dir.display()
            )
        })?;
        let path = data_dir.join("state.db");
        let conn = Connection::open(&path)
            .with_context(|| format!("cannot open the store {}", path.display()))?;
        // WAL + FULL: every committed transaction is fsynced before commit returns,
        // so a `kill -9` or power loss after an ACK cannot lose that lease.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(SCHEMA)
            .context("cannot create the store's tables")?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction behind
        // (SQLite rolls it back), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS leases (
    ip INTEGER PRIMARY KEY, mac TEXT NOT NULL UNIQUE, expires INTEGER NOT NULL, hostname TEXT);
CREATE TABLE IF NOT EXISTS quarantine (ip INTEGER PRIMARY KEY, until INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS machines (
    mac TEXT PRIMARY KEY, state TEXT NOT NULL, last_seen INTEGER);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, mac TEXT NOT NULL, time INTEGER NOT NULL,
    kind TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_mac ON events (mac, id);
CREATE TABLE IF NOT EXISTS install_tokens (mac TEXT PRIMARY KEY, token TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS slots (
    name TEXT PRIMARY KEY, mac TEXT NOT NULL, action TEXT NOT NULL, expires INTEGER NOT NULL);
";

/// The one row of `slots` the control-plane slot lives in.
const CONTROL_PLANE_SLOT: &str = "control-plane";

fn parse_mac(s: String) -> rusqlite::Result<MacAddr> {
    s.parse().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn parse_state(s: String) -> rusqlite::Result<State> {
    State::from_name(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown state {s}").into(),
        )
    })
}

/// Runs one statement, prepared once per connection: the write path runs
/// thousands of times a second under DHCP load.
fn exec(
    tx: &rusqlite::Transaction,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(params)
}

fn insert_event(tx: &rusqlite::Transaction, mac: MacAddr, e: &Event) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO events (mac, time, kind, message) VALUES (?1, ?2, ?3, ?4)",
        params![mac.to_string(), e.time, e.kind, e.message],
    )?;
    Ok(())
}

impl Store for SqliteStore {
    fn write(&self, batch: &[Write]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for w in batch {
            match w {
                Write::BindLease(l) => {
                    exec(
                        &tx,
                        "DELETE FROM leases WHERE mac = ?1 AND ip != ?2",
                        params![l.mac.to_string(), u32::from(l.ip)],
                    )?;
                    exec(
                        &tx,
                        "INSERT OR REPLACE INTO leases (ip, mac, expires, hostname) VALUES (?1, ?2, ?3, ?4)",
                        params![u32::from(l.ip), l.mac.to_string(), l.expires, l.hostname],
                    )?;
                }
                Write::ReleaseLease { ip, mac } => {
                    exec(
                        &tx,
                        "DELETE FROM leases WHERE ip = ?1 AND mac = ?2",
                        params![u32::from(*ip), mac.to_string()],
                    )?;
                }
                Write::QuarantineAddress { ip, until } => {
                    exec(
                        &tx,
                        "DELETE FROM leases WHERE ip = ?1",
                        params![u32::from(*ip)],
                    )?;
                    exec(
                        &tx,
                        "INSERT OR REPLACE INTO quarantine (ip, until) VALUES (?1, ?2)",
                        params![u32::from(*ip), until],
                    )?;
                }
                Write::Seen { mac, at, known } => {
                    let initial = if *known {
                        State::Configured
                    } else {
                        State::Discovered
                    };
                    exec(
                        &tx,
                        "INSERT INTO machines (mac, state, last_seen) VALUES (?1, ?2, ?3)
                         ON CONFLICT (mac) DO UPDATE SET last_seen = MAX(COALESCE(last_seen, 0), excluded.last_seen)",
                        params![mac.to_string(), initial.name(), at],
                    )?;
                }
                Write::SetState { mac, state, event } => {
                    exec(
                        &tx,
                        "INSERT INTO machines (mac, state) VALUES (?1, ?2)
                         ON CONFLICT (mac) DO UPDATE SET state = excluded.state",
                        params![mac.to_string(), state.name()],
                    )?;
                    if *state == State::ReimagePending {
                        // A reimage starts a new install: the old install's
                        // token (and so its callbacks and seed) stop working.
                        exec(
                            &tx,
                            "DELETE FROM install_tokens WHERE mac = ?1",
                            [mac.to_string()],
                        )?;
                    }
                    insert_event(&tx, *mac, event)?;
                }
                Write::Event { mac, event } => insert_event(&tx, *mac, event)?,
            }
        }
        tx.commit().context("cannot commit to the store")?;
        Ok(())
    }

    fn leases(&self) -> Result<Vec<Lease>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT ip, mac, expires, hostname FROM leases ORDER BY ip")?;
        let rows = st.query_map([], |r| {
            Ok(Lease {
                ip: Ipv4Addr::from(r.get::<_, u32>(0)?),
                mac: parse_mac(r.get(1)?)?,
                expires: r.get(2)?,
                hostname: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn quarantined(&self) -> Result<Vec<(Ipv4Addr, u64)>> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT ip, until FROM quarantine")?;
        let rows = st.query_map([], |r| Ok((Ipv4Addr::from(r.get::<_, u32>(0)?), r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn machine(&self, mac: MacAddr) -> Result<Option<MachineRecord>> {
        Ok(self.machines_where(Some(mac))?.pop())
    }

    fn machines(&self) -> Result<Vec<MachineRecord>> {
        self.machines_where(None)
    }

    fn events(&self, mac: MacAddr, limit: usize) -> Result<Vec<Event>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT time, kind, message FROM events WHERE mac = ?1 ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![mac.to_string(), limit as i64], |r| {
            Ok(Event {
                time: r.get(0)?,
                kind: r.get(1)?,
                message: r.get(2)?,
            })
        })?;
        let mut events: Vec<Event> = rows.collect::<rusqlite::Result<_>>()?;
        events.reverse();
        Ok(events)
    }

    fn install_token(&self, mac: MacAddr) -> Result<String> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let existing: Option<String> = tx
            .query_row(
                "SELECT token FROM install_tokens WHERE mac = ?1",
                [mac.to_string()],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(t) = existing {
            return Ok(t);
        }
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let token = hex::encode(bytes);
        exec(
            &tx,
            "INSERT INTO install_tokens (mac, token, created) VALUES (?1, ?2, ?3)",
            params![mac.to_string(), token, unix_now()],
        )?;
        tx.commit()?;
        Ok(token)
    }

    fn check_install_token(&self, mac: MacAddr, token: &str) -> Result<bool> {
        let conn = self.conn();
        let n: i64 = conn.query_row(
            "SELECT COUNT(*) FROM install_tokens WHERE mac = ?1 AND token = ?2",
            params![mac.to_string(), token],
            |r| r.get(0),
        )?;
        Ok(n == 1)
    }

    fn slot(&self) -> Result<Option<Slot>> {
        read_slot(&self.conn())
    }

    fn swap_slot(&self, expected: Option<&Slot>, new: Option<&Slot>) -> Result<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        if read_slot(&tx)?.as_ref() != expected {
            return Ok(false);
        }
        exec(
            &tx,
            "DELETE FROM slots WHERE name = ?1",
            [CONTROL_PLANE_SLOT],
        )?;
        if let Some(s) = new {
            exec(
                &tx,
                "INSERT INTO slots (name, mac, action, expires) VALUES (?1, ?2, ?3, ?4)",
                params![
                    CONTROL_PLANE_SLOT,
                    s.holder.to_string(),
                    s.action.name(),
                    s.expires
                ],
            )?;
        }
        tx.commit()
            .context("cannot commit the control-plane slot")?;
        Ok(true)
    }
}

fn read_slot(conn: &Connection) -> Result<Option<Slot>> {
    let row: Option<(String, String, u64)> = conn
        .query_row(
            "SELECT mac, action, expires FROM slots WHERE name = ?1",
            [CONTROL_PLANE_SLOT],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((mac, action, expires)) = row else {
        return Ok(None);
    };
    Ok(Some(Slot {
        holder: mac.parse().context("a slot holder that is not a MAC")?,
        action: SlotAction::from_name(&action)
            .with_context(|| format!("unknown slot action {action}"))?,
        expires,
    }))
}

impl SqliteStore {
    fn machines_where(&self, mac: Option<MacAddr>) -> Result<Vec<MachineRecord>> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT m.mac, m.state, m.last_seen, e.time, e.kind, e.message FROM machines m
             LEFT JOIN events e ON e.id = (SELECT MAX(id) FROM events WHERE mac = m.mac)
             WHERE ?1 IS NULL OR m.mac = ?1 ORDER BY m.mac",
        )?;
        let rows = st.query_map([mac.map(|m| m.to_string())], |r| {
            let time: Option<u64> = r.get(3)?;
            Ok(MachineRecord {
                mac: parse_mac(r.get(0)?)?,
                state: parse_state(r.get(1)?)?,
                last_seen: r.get(2)?,
                last_event: match time {
                    Some(time) => Some(Event {
                        time,
                        kind: r.get(4)?,
                        message: r.get(5)?,
                    }),
                    None => None,
                },
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }

    #[test]
    fn leases_survive_reopen_and_rebinding_moves_the_mac() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(dir.path()).unwrap();
            let l = |ip: [u8; 4]| Lease {
                ip: ip.into(),
                mac: mac(1),
                expires: 100,
                hostname: None,
            };
            s.write(&[Write::BindLease(l([10, 0, 0, 200]))]).unwrap();
            s.write(&[Write::BindLease(l([10, 0, 0, 201]))]).unwrap();
        }
        let s = SqliteStore::open(dir.path()).unwrap();
        let leases = s.leases().unwrap();
        assert_eq!(leases.len(), 1, "a MAC holds one lease");
        assert_eq!(leases[0].ip, Ipv4Addr::new(10, 0, 0, 201));
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.conn().execute_batch("CREATE TRIGGER fail BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'boom'); END;").unwrap();
        let r = s.write(&[
            Write::BindLease(Lease {
                ip: Ipv4Addr::new(10, 0, 0, 9),
                mac: mac(2),
                expires: 1,
                hostname: None,
            }),
            Write::Event {
                mac: mac(2),
                event: Event::now("x", "y"),
            },
        ]);
        assert!(r.is_err());
        assert!(s.leases().unwrap().is_empty());
    }

    #[test]
    fn state_events_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(dir.path()).unwrap();
        s.write(&[Write::Seen {
            mac: mac(3),
            at: 5,
            known: false,
        }])
        .unwrap();
        assert_eq!(s.machine(mac(3)).unwrap().unwrap().state, State::Discovered);
        s.write(&[Write::SetState {
            mac: mac(3),
            state: State::Installed,
            event: Event::now("install-finished", "ok"),
        }])
        .unwrap();
        let rec = s.machine(mac(3)).unwrap().unwrap();
        assert_eq!(rec.state, State::Installed);
        assert_eq!(rec.last_event.unwrap().kind, "install-finished");
        assert_eq!(rec.last_seen, Some(5));
        let t = s.install_token(mac(3)).unwrap();
        assert_eq!(
            s.install_token(mac(3)).unwrap(),
            t,
            "the token stays until a reimage"
        );
        assert!(!s.check_install_token(mac(3), "wrong").unwrap());
        assert!(s.check_install_token(mac(3), &t).unwrap());
        s.write(&[Write::SetState {
            mac: mac(3),
            state: State::ReimagePending,
            event: Event::now("reimage", "x"),
        }])
        .unwrap();
        assert!(
            !s.check_install_token(mac(3), &t).unwrap(),
            "a reimage revokes the old token"
        );
        assert_ne!(s.install_token(mac(3)).unwrap(), t);
    }
}
