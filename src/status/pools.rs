//! Leases in use and addresses free, per dynamic pool, for `/metrics`.

use crate::config::Config;
use crate::metrics::PoolUsage;
use crate::store::Lease;
use std::net::Ipv4Addr;

/// Usage of every pool the config has, one entry per subnet with a pool.
pub fn usage(
    config: &Config,
    leases: &[Lease],
    quarantined: &[(Ipv4Addr, u64)],
    now: u64,
) -> Vec<PoolUsage> {
    let never_offered = crate::dhcp::never_offered(config);
    let mut out = Vec::new();
    for (_, pool) in config.dhcp.pools() {
        let in_use = leases
            .iter()
            .filter(|l| l.expires > now && pool.contains(l.ip))
            .count() as u64;
        let held_back = quarantined
            .iter()
            .filter(|(ip, until)| *until > now && pool.contains(*ip))
            .count() as u64;
        let reserved = never_offered
            .iter()
            .filter(|ip| pool.contains(**ip))
            .count() as u64;
        out.push(PoolUsage {
            pool: pool.to_string(),
            in_use,
            free: u64::from(pool.len()).saturating_sub(in_use + held_back + reserved),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{cp1, dhcp, lab_text, parse};

    #[test]
    fn in_use_and_free_count_live_leases_and_quarantine() {
        let config = parse(&lab_text(&dhcp("10.55.0.200-10.55.0.209"), &cp1()));
        let lease = |last: u8, expires| Lease {
            ip: Ipv4Addr::new(10, 55, 0, last),
            mac: crate::mac::MacAddr([0x52, 0x54, 0, 0, 1, last]),
            expires,
            hostname: None,
        };
        let leases = [
            lease(200, 100),
            lease(202, 100),
            lease(203, 5),
            lease(11, 100),
        ];
        let quarantined = [(Ipv4Addr::new(10, 55, 0, 204), 100)];
        let usage = usage(&config, &leases, &quarantined, 10);
        assert_eq!(
            usage,
            [PoolUsage {
                pool: "10.55.0.200-10.55.0.209".into(),
                // .203 expired; .11 is a reservation, not the pool.
                in_use: 2,
                // 10 - 2 leased - 1 quarantined.
                free: 7,
            }]
        );
    }
}
