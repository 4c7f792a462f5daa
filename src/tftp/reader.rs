//! The reader async-tftp pulls blocks from. async-tftp asks for one block
//! (512–1468 bytes typically) at a time; going to a thread pool for each of
//! those would cost more than the transfer itself. Boot files are read here
//! in large chunks, directly: they are local and almost always in the page
//! cache, and each TFTP server thread only stalls its own transfers.
//!
//! The reader is dropped when its transfer ends, however it ends, which makes
//! it the one place that sees every transfer finish: it logs the outcome.

use futures_lite::AsyncRead;
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Bytes read from the file at once.
const CHUNK: usize = 256 * 1024;

pub struct BootFileReader {
    file: File,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes handed to the protocol engine so far (includes a window that
    /// may not be acknowledged yet when the transfer is cut short).
    handed: u64,
    eof: bool,
    failed: bool,
    size: u64,
    client: SocketAddr,
    name: String,
    started: Instant,
}

impl BootFileReader {
    pub fn new(file: File, size: u64, client: SocketAddr, name: String) -> BootFileReader {
        BootFileReader {
            file,
            buf: Vec::new(),
            pos: 0,
            handed: 0,
            eof: false,
            failed: false,
            size,
            client,
            name,
            started: Instant::now(),
        }
    }

    fn refill(&mut self) -> io::Result<()> {
        // Small files get a buffer of their own size, not a whole chunk.
        let want = (self.size.saturating_sub(self.handed) as usize).clamp(4096, CHUNK);
        self.buf.resize(want, 0);
        self.pos = 0;
        loop {
            match self.file.read(&mut self.buf) {
                Ok(n) => {
                    self.buf.truncate(n);
                    self.eof = n == 0;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl AsyncRead for BootFileReader {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pos == this.buf.len() && !this.eof {
            if let Err(e) = this.refill() {
                this.failed = true;
                tracing::warn!(client = %this.client, file = %this.name, "TFTP read error: {e}");
                return Poll::Ready(Err(e));
            }
        }
        let n = out.len().min(this.buf.len() - this.pos);
        out[..n].copy_from_slice(&this.buf[this.pos..this.pos + n]);
        this.pos += n;
        this.handed += n as u64;
        Poll::Ready(Ok(n))
    }
}

impl Drop for BootFileReader {
    fn drop(&mut self) {
        let outcome = if self.failed {
            "read error"
        } else if self.eof {
            "complete"
        } else {
            "aborted"
        };
        tracing::info!(
            client = %self.client,
            file = %self.name,
            bytes = self.handed,
            size = self.size,
            secs = format!("{:.3}", self.started.elapsed().as_secs_f64()),
            outcome,
            "TFTP transfer ended"
        );
    }
}
