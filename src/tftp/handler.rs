//! Maps a read request onto the boot-file namespace (`crate::bootfiles`),
//! and its refusals onto TFTP error codes. The caller passes the config in
//! force when the request arrived, so reloads apply to the next transfer.

use super::packet::ErrorCode;
use crate::bootfiles::{self, BootFileError};
use crate::config::Config;
use std::fs::File;
use std::net::SocketAddr;

/// Opens `name` for `client`: the file and its length, or the TFTP error
/// that refuses it. Refusals are logged at debug level (they are routine: a
/// Raspberry Pi probes its serial-number directory first).
pub fn open(config: &Config, client: SocketAddr, name: &str) -> Result<(File, u64), ErrorCode> {
    match bootfiles::open(config, name) {
        Ok(found) => Ok(found),
        Err(e @ BootFileError::Refused(..)) => {
            tracing::debug!(%client, "TFTP read refused: {e}");
            Err(ErrorCode::AccessViolation)
        }
        Err(e @ BootFileError::NotFound(_)) => {
            tracing::debug!(%client, "TFTP read refused: {e}");
            Err(ErrorCode::FileNotFound)
        }
    }
}
