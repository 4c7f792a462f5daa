//! The TFTP server (placeholder until the TFTP module lands).
use crate::app::App;
use std::sync::Arc;

pub async fn serve(_app: Arc<App>) -> anyhow::Result<()> {
    anyhow::bail!("TFTP is not built yet")
}
