//! Which Kubernetes minors bootherd's generated configs serve, and which of
//! them upstream still supports. The table is compiled in: `bootherd check`
//! must not need the internet to say a version is out of support.

use time::{Date, Month};

/// The minor a config without `kubernetes_version` gets: a current one,
/// supported upstream well past this release of bootherd.
pub const DEFAULT_MINOR: &str = "1.36";

/// The oldest minor the kubeadm configs work with: they are `v1beta4`,
/// which kubeadm reads from 1.31 on.
pub const OLDEST_MINOR: u32 = 31;

/// Upstream's end-of-life date per minor (kubernetes.io/releases): after
/// it, no more patch releases, security fixes included.
const END_OF_LIFE: &[(u32, (i32, Month, u8))] = &[
    (31, (2025, Month::October, 28)),
    (32, (2026, Month::February, 28)),
    (33, (2026, Month::June, 28)),
    (34, (2026, Month::October, 27)),
    (35, (2027, Month::February, 28)),
    (36, (2027, Month::June, 28)),
    (37, (2027, Month::October, 28)),
];

/// What bootherd can say of a `1.<minor>` on `today`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// Supported upstream until the date.
    Supported(Date),
    /// Works, but upstream stopped supporting it on the date.
    EndOfLife(Date),
    /// Older than the generated configs can serve.
    TooOld,
    /// Newer than the table: bootherd's configs were not checked against it.
    Unknown,
}

/// The support status of Kubernetes `1.<minor>` on `today`.
pub fn support(minor: u32, today: Date) -> Support {
    if minor < OLDEST_MINOR {
        return Support::TooOld;
    }
    match END_OF_LIFE.iter().find(|(m, _)| *m == minor) {
        None => Support::Unknown,
        Some((_, (y, m, d))) => {
            let eol = Date::from_calendar_date(*y, *m, *d).expect("valid table date");
            if today > eol {
                Support::EndOfLife(eol)
            } else {
                Support::Supported(eol)
            }
        }
    }
}

/// The minors supported on `today`, oldest first, as `1.N`.
pub fn supported_on(today: Date) -> Vec<String> {
    END_OF_LIFE
        .iter()
        .filter(|(m, _)| matches!(support(*m, today), Support::Supported(_)))
        .map(|(m, _)| format!("1.{m}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: Month, d: u8) -> Date {
        Date::from_calendar_date(y, m, d).unwrap()
    }

    #[test]
    fn support_follows_the_end_of_life_dates() {
        let today = day(2026, Month::December, 2);
        assert_eq!(support(30, today), Support::TooOld);
        assert_eq!(
            support(31, today),
            Support::EndOfLife(day(2025, Month::October, 28))
        );
        assert_eq!(
            support(34, today),
            Support::EndOfLife(day(2026, Month::October, 27))
        );
        assert_eq!(
            support(35, today),
            Support::Supported(day(2027, Month::February, 28))
        );
        assert_eq!(support(99, today), Support::Unknown);
        assert_eq!(supported_on(today), ["1.35", "1.36", "1.37"]);
        // The last day is still supported.
        assert!(matches!(
            support(35, day(2027, Month::February, 28)),
            Support::Supported(_)
        ));
    }

    #[test]
    fn the_default_is_supported_for_a_while_yet() {
        let minor: u32 = DEFAULT_MINOR.trim_start_matches("1.").parse().unwrap();
        assert!(matches!(
            support(minor, day(2027, Month::March, 1)),
            Support::Supported(_)
        ));
    }
}
