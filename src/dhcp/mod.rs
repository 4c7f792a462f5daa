//! The DHCP server (placeholder until the DHCP module lands).
use crate::app::App;
use std::sync::Arc;

pub async fn serve(_app: Arc<App>) -> anyhow::Result<()> {
    anyhow::bail!("DHCP is not built yet")
}
