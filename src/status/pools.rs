//! Leases in use and addresses free, per dynamic pool, for `/metrics`.

use crate::config::Config;
use crate::metrics::PoolUsage;
use crate::store::Lease;
use std::net::Ipv4Addr;

/// Usage of every pool the config has. (Today `[dhcp]` has at most one
/// pool; when it has several, this loop is the one place that changes.)
pub fn usage(
    config: &Config,
    leases: &[Lease],
    quarantined: &[(Ipv4Addr, u64)],
    now: u64,
) -> Vec<PoolUsage> {
    let mut out = Vec::new();
    for pool in config.dhcp.pool.iter() {
        let in_use = leases
            .iter()
            .filter(|l| l.expires > now && pool.contains(l.ip))
            .count() as u64;
        let held_back = quarantined
            .iter()
            .filter(|(ip, until)| *until > now && pool.contains(*ip))
            .count() as u64;
        // Addresses the DHCP server never hands out from a pool (validation
        // already keeps machine reservations out of it).
        let net = config.dhcp.subnet;
        let mut reserved: Vec<Ipv4Addr> =
            vec![config.server.address, net.network(), net.broadcast()];
        reserved.extend(config.dhcp.gateway);
        reserved.extend(config.dhcp.dns.iter().copied());
        reserved.sort();
        reserved.dedup();
        let reserved = reserved.iter().filter(|ip| pool.contains(**ip)).count() as u64;
        out.push(PoolUsage {
            pool: pool.to_string(),
            in_use,
            free: u64::from(pool.len()).saturating_sub(in_use + held_back + reserved),
        });
    }
    out
}
