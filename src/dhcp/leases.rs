//! In-memory address allocation: who holds which address until when.
//!
//! The receive loop owns one [`Leases`] and is its only user, so it needs no
//! lock. It is loaded from the store at start; every change that must survive
//! a crash is also sent to the store by the caller (see `mod.rs`). Offers are
//! held here only, for [`OFFER_HOLD_SECS`], so that two clients discovering
//! at once are not offered the same address.

use crate::config::Pool;
use crate::mac::MacAddr;
use crate::store::Lease;
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// How long an offered address stays set aside for the client it was offered to.
pub const OFFER_HOLD_SECS: u64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    ip: Ipv4Addr,
    /// Unix seconds; after this the address may go to another client.
    expires: u64,
}

/// What an address must not be, whatever the pool says.
pub struct Exclusions<'a> {
    /// Reservations of configured machines, the server, the gateway, …
    pub addresses: &'a HashSet<Ipv4Addr>,
}

#[derive(Debug, Default)]
pub struct Leases {
    by_mac: HashMap<MacAddr, Binding>,
    by_ip: HashMap<Ipv4Addr, MacAddr>,
    /// Declined addresses (DHCPDECLINE) and until when they stay out.
    quarantine: HashMap<Ipv4Addr, u64>,
    /// Per pool (keyed by its first address): the offset where the next
    /// search for a free address starts, so allocation does not rescan the
    /// taken front of the pool every time.
    cursors: HashMap<Ipv4Addr, u32>,
}

impl Leases {
    /// Builds the table from the store's leases and quarantined addresses.
    pub fn load(leases: Vec<Lease>, quarantined: Vec<(Ipv4Addr, u64)>) -> Leases {
        let mut table = Leases {
            quarantine: quarantined.into_iter().collect(),
            ..Leases::default()
        };
        for lease in leases {
            table.set(lease.mac, lease.ip, lease.expires);
        }
        table
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_mac.is_empty()
    }

    /// The address a MAC holds (lease or offer), expired or not.
    pub fn address_of(&self, mac: MacAddr) -> Option<Ipv4Addr> {
        self.by_mac.get(&mac).map(|b| b.ip)
    }

    fn quarantined(&self, ip: Ipv4Addr, now: u64) -> bool {
        self.quarantine.get(&ip).is_some_and(|until| *until > now)
    }

    /// Whether `mac` may hold pool address `ip` now: in the pool, not excluded
    /// or quarantined, and free, expired, or already its own.
    pub fn assignable(
        &self,
        mac: MacAddr,
        ip: Ipv4Addr,
        pool: Option<Pool>,
        ex: &Exclusions<'_>,
        now: u64,
    ) -> bool {
        if !pool.is_some_and(|p| p.contains(ip))
            || ex.addresses.contains(&ip)
            || self.quarantined(ip, now)
        {
            return false;
        }
        match self.by_ip.get(&ip) {
            None => true,
            Some(owner) if *owner == mac => true,
            Some(owner) => self.by_mac.get(owner).is_none_or(|b| b.expires <= now),
        }
    }

    /// Chooses a pool address for `mac` and holds it as an offer: its current
    /// or previous address when still usable, else the one it asked for, else
    /// the next free one. `None` when the pool is exhausted (or missing).
    pub fn offer(
        &mut self,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        pool: Option<Pool>,
        ex: &Exclusions<'_>,
        now: u64,
    ) -> Option<Ipv4Addr> {
        let pool = pool?;
        let hold_until = now + OFFER_HOLD_SECS;
        if let Some(current) = self.by_mac.get(&mac).copied() {
            if self.assignable(mac, current.ip, Some(pool), ex, now) {
                self.set(mac, current.ip, current.expires.max(hold_until));
                return Some(current.ip);
            }
        }
        if let Some(ip) = requested.filter(|ip| self.assignable(mac, *ip, Some(pool), ex, now)) {
            self.set(mac, ip, hold_until);
            return Some(ip);
        }
        let first = u32::from(pool.first);
        let len = pool.len();
        let start = self.cursors.get(&pool.first).copied().unwrap_or(0) % len;
        for step in 0..len {
            let offset = (start + step) % len;
            let ip = Ipv4Addr::from(first + offset);
            if self.assignable(mac, ip, Some(pool), ex, now) {
                self.cursors.insert(pool.first, offset + 1);
                self.set(mac, ip, hold_until);
                return Some(ip);
            }
        }
        None
    }

    /// Records a lease (after a REQUEST is accepted) until `expires`.
    pub fn bind(&mut self, mac: MacAddr, ip: Ipv4Addr, expires: u64) {
        self.set(mac, ip, expires);
    }

    /// Forgets the client's binding when it holds `ip` (DHCPRELEASE, or a
    /// DHCPREQUEST for another server). Returns whether it held it.
    pub fn release(&mut self, mac: MacAddr, ip: Ipv4Addr) -> bool {
        match self.by_mac.get(&mac) {
            Some(b) if b.ip == ip => {
                self.by_mac.remove(&mac);
                self.by_ip.remove(&ip);
                true
            }
            _ => false,
        }
    }

    /// Takes `ip` out of use until `until` (DHCPDECLINE: someone else uses it).
    pub fn quarantine(&mut self, ip: Ipv4Addr, until: u64) {
        if let Some(owner) = self.by_ip.remove(&ip) {
            self.by_mac.remove(&owner);
        }
        self.quarantine.insert(ip, until);
    }

    /// Binds `mac` to `ip`, dropping the MAC's other address and the address's
    /// previous (expired) holder: one address per MAC, one MAC per address.
    fn set(&mut self, mac: MacAddr, ip: Ipv4Addr, expires: u64) {
        if let Some(old) = self.by_mac.insert(mac, Binding { ip, expires }) {
            if old.ip != ip && self.by_ip.get(&old.ip) == Some(&mac) {
                self.by_ip.remove(&old.ip);
            }
        }
        if let Some(previous_owner) = self.by_ip.insert(ip, mac) {
            if previous_owner != mac {
                self.by_mac.remove(&previous_owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u8) -> MacAddr {
        MacAddr([0x52, 0x54, 0, 0, 0, n])
    }
    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }
    fn pool(first: u8, last: u8) -> Option<Pool> {
        Some(Pool {
            first: ip(first),
            last: ip(last),
        })
    }

    #[test]
    fn offers_the_next_free_address_and_keeps_it_for_the_same_client() {
        let none = HashSet::new();
        let ex = Exclusions { addresses: &none };
        let mut t = Leases::default();
        let a = t.offer(mac(1), None, pool(10, 12), &ex, 100).unwrap();
        let b = t.offer(mac(2), None, pool(10, 12), &ex, 100).unwrap();
        assert_ne!(
            a, b,
            "two clients discovering at once get different addresses"
        );
        assert_eq!(
            t.offer(mac(1), None, pool(10, 12), &ex, 101),
            Some(a),
            "a repeated DISCOVER gets the same offer"
        );
        t.bind(mac(1), a, 1000);
        assert_eq!(t.offer(mac(1), None, pool(10, 12), &ex, 200), Some(a));
    }

    #[test]
    fn honours_a_requested_free_address() {
        let none = HashSet::new();
        let ex = Exclusions { addresses: &none };
        let mut t = Leases::default();
        assert_eq!(
            t.offer(mac(1), Some(ip(12)), pool(10, 12), &ex, 0),
            Some(ip(12))
        );
        // Outside the pool: ignored, the next free one is offered.
        assert_eq!(
            t.offer(mac(2), Some(ip(99)), pool(10, 12), &ex, 0),
            Some(ip(10))
        );
    }

    #[test]
    fn never_hands_out_excluded_taken_or_quarantined_addresses() {
        let reserved: HashSet<Ipv4Addr> = [ip(10)].into();
        let ex = Exclusions {
            addresses: &reserved,
        };
        let mut t = Leases::default();
        t.bind(mac(1), ip(11), 1000);
        t.quarantine(ip(12), 500);
        assert_eq!(t.offer(mac(2), None, pool(10, 13), &ex, 100), Some(ip(13)));
        assert_eq!(
            t.offer(mac(3), None, pool(10, 13), &ex, 100),
            None,
            "pool exhausted"
        );
        assert!(
            !t.assignable(mac(3), ip(11), pool(10, 13), &ex, 100),
            "someone else's lease"
        );
        assert!(
            t.assignable(mac(1), ip(11), pool(10, 13), &ex, 100),
            "its own lease"
        );
        // After the quarantine ends the address is usable again.
        assert_eq!(t.offer(mac(3), None, pool(10, 13), &ex, 600), Some(ip(12)));
    }

    #[test]
    fn expired_leases_are_reused() {
        let none = HashSet::new();
        let ex = Exclusions { addresses: &none };
        let mut t = Leases::default();
        t.bind(mac(1), ip(10), 50);
        assert_eq!(t.offer(mac(2), None, pool(10, 10), &ex, 40), None);
        assert_eq!(t.offer(mac(2), None, pool(10, 10), &ex, 60), Some(ip(10)));
        assert_eq!(t.address_of(mac(1)), None, "the old holder lost it");
    }

    #[test]
    fn loading_restores_leases_and_quarantine() {
        let none = HashSet::new();
        let ex = Exclusions { addresses: &none };
        let leases = vec![Lease {
            ip: ip(11),
            mac: mac(7),
            expires: 1000,
            hostname: None,
        }];
        let mut t = Leases::load(leases, vec![(ip(10), 1000)]);
        assert_eq!(
            t.offer(mac(7), None, pool(10, 13), &ex, 100),
            Some(ip(11)),
            "its previous address back"
        );
        assert_eq!(t.offer(mac(8), None, pool(10, 13), &ex, 100), Some(ip(12)));
    }

    #[test]
    fn release_frees_only_the_clients_own_address() {
        let none = HashSet::new();
        let ex = Exclusions { addresses: &none };
        let mut t = Leases::default();
        t.bind(mac(1), ip(10), 1000);
        assert!(!t.release(mac(2), ip(10)));
        assert!(!t.release(mac(1), ip(11)));
        assert!(t.release(mac(1), ip(10)));
        assert!(t.assignable(mac(2), ip(10), pool(10, 10), &ex, 0));
    }
}
