//! Maps a read request onto what is served: first the generated boot files
//! (`crate::bootsource::generated`, which sees the asking client), then the
//! static boot-file namespace (`crate::bootfiles`); and refusals onto TFTP
//! error codes. The caller passes the config in force when the request
//! arrived, so reloads apply to the next transfer.

use super::packet::ErrorCode;
use crate::app::App;
use crate::bootfiles::{self, BootFileError};
use crate::bootsource::{self, Claim, Source};
use crate::config::Config;
use std::net::{IpAddr, SocketAddr};

/// Opens `name` for `client`: its source, or the TFTP error that refuses
/// it. Refusals are logged at debug level (they are routine: a Raspberry Pi
/// probes its serial-number directory first).
pub fn open(
    app: &App,
    config: &Config,
    client: SocketAddr,
    name: &str,
) -> Result<Source, ErrorCode> {
    let claim = match client.ip() {
        IpAddr::V4(ip) => bootsource::generated(app, config, ip, name),
        IpAddr::V6(_) => Claim::NotMine,
    };
    let found = match claim {
        Claim::Served(source) => Ok(source),
        Claim::Refused(e) => Err(e),
        Claim::NotMine => bootfiles::open(config, name).map(|(file, len)| Source::file(file, len)),
    };
    found.map_err(|e| {
        tracing::debug!(%client, "TFTP read refused: {e}");
        match e {
            BootFileError::Refused(..) => ErrorCode::AccessViolation,
            BootFileError::NotFound(_) => ErrorCode::FileNotFound,
        }
    })
}
