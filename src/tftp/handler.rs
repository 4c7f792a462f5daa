//! Maps a read request onto the boot-file namespace (`crate::bootfiles`),
//! and its refusals onto TFTP error codes. The caller passes the config in
//! force when the request arrived, so reloads apply to the next transfer.
//! GRUB's configs (`grub/grub.cfg*`) are generated per machine instead.

use super::packet::ErrorCode;
use crate::app::App;
use crate::artifacts::GrubFile;
use crate::bootfiles::{self, BootFileError};
use crate::config::Config;
use std::fs::File;
use std::io::{Seek, Write};
use std::net::SocketAddr;
use std::os::fd::FromRawFd;

/// Opens `name` for `client`: the file and its length, or the TFTP error
/// that refuses it. Refusals are logged at debug level (they are routine: a
/// Raspberry Pi probes its serial-number directory first).
pub fn open(
    app: &App,
    config: &Config,
    client: SocketAddr,
    name: &str,
) -> Result<(File, u64), ErrorCode> {
    if let Some(grub) = GrubFile::from_name(name) {
        return generated_grub_cfg(app, config, client, grub);
    }
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

/// A GRUB config rendered now, as an in-memory file the transfer reads like
/// any other.
fn generated_grub_cfg(
    app: &App,
    config: &Config,
    client: SocketAddr,
    grub: GrubFile,
) -> Result<(File, u64), ErrorCode> {
    let (text, action) = grub.render(app, config).map_err(|e| {
        tracing::error!(%client, "TFTP: cannot render the GRUB config {grub:?}: {e:#}");
        ErrorCode::NotDefined
    })?;
    if let (GrubFile::Machine(mac), Some(action)) = (grub, action) {
        tracing::info!(%client, %mac, ?action, "GRUB config");
    }
    let file = in_memory_file(text.as_bytes()).map_err(|e| {
        tracing::error!(%client, "TFTP: cannot hold a generated file: {e}");
        ErrorCode::NotDefined
    })?;
    Ok((file, text.len() as u64))
}

/// An anonymous in-memory file (memfd) holding `bytes`, positioned at its start.
fn in_memory_file(bytes: &[u8]) -> std::io::Result<File> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags; the fd it
    // returns is new and owned by nobody else, so File may take it over.
    let fd = unsafe { libc::memfd_create(c"bootherd-generated".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes)?;
    file.rewind()?;
    Ok(file)
}
