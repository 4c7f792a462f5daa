//! Maps TFTP requests onto the boot-file namespace. Every request reads the
//! config in force at that moment, so reloads apply to the next transfer.

use super::reader::BootFileReader;
use crate::app::App;
use crate::bootfiles::{self, BootFileError};
use async_tftp::packet;
use async_tftp::server::Handler;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub struct BootFileHandler {
    app: Arc<App>,
}

impl BootFileHandler {
    pub fn new(app: Arc<App>) -> BootFileHandler {
        BootFileHandler { app }
    }

    /// Opens `requested` for `client`, or says which TFTP error refuses it.
    pub fn open(
        &self,
        client: SocketAddr,
        requested: &Path,
    ) -> Result<(BootFileReader, u64), packet::Error> {
        let Some(name) = requested.to_str() else {
            tracing::debug!(%client, file = ?requested, "TFTP read refused: name is not UTF-8");
            return Err(packet::Error::PermissionDenied);
        };
        let config = self.app.config();
        match bootfiles::open(&config, name) {
            Ok((file, size)) => {
                tracing::info!(%client, file = name, size, "TFTP transfer started");
                Ok((
                    BootFileReader::new(file, size, client, name.to_string()),
                    size,
                ))
            }
            Err(e @ BootFileError::Refused(..)) => {
                tracing::debug!(%client, "TFTP read refused: {e}");
                Err(packet::Error::PermissionDenied)
            }
            Err(e @ BootFileError::NotFound(_)) => {
                tracing::debug!(%client, "TFTP read refused: {e}");
                Err(packet::Error::FileNotFound)
            }
        }
    }
}

impl Handler for BootFileHandler {
    type Reader = BootFileReader;
    /// Never constructed: every write request is refused.
    type Writer = futures_lite::io::Sink;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        // Opening is a few syscalls on local metadata; the handler is shared
        // behind async-tftp's lock, so keep it short and synchronous.
        self.open(*client, path)
            .map(|(reader, size)| (reader, Some(size)))
    }

    async fn write_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        tracing::debug!(%client, file = ?path, "TFTP write refused: the server is read-only");
        Err(packet::Error::PermissionDenied)
    }
}
