//! The HTTP server (being written).
use crate::app::App;
use std::sync::Arc;

pub async fn serve(_app: Arc<App>) -> anyhow::Result<()> {
    anyhow::bail!("HTTP is not built yet")
}
