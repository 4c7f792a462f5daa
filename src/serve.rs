//! `bootherd serve`: opens the store, starts the services the config enables,
//! reloads on SIGHUP, and stops on SIGTERM/SIGINT. A service that fails
//! (e.g. its port is taken) stops the server with the reason.

use crate::app::App;
use crate::config::{Config, DhcpMode};
use crate::store::SqliteStore;
use crate::{dhcp, http, images, operator, tftp};
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

pub async fn run(
    config: Config,
    config_path: PathBuf,
    data_dir_override: Option<PathBuf>,
) -> Result<()> {
    let data_dir = config.server.data_dir.clone();
    let store = SqliteStore::open(&data_dir)?;
    operator::ensure(&data_dir)?;
    report_missing(&config, &config_path, data_dir_override.as_deref());
    let app = Arc::new(App::new(
        config,
        Some(config_path),
        data_dir_override,
        Arc::new(store),
    ));

    let config = app.config();
    let mut services: JoinSet<(&'static str, Result<()>)> = JoinSet::new();
    services.spawn(named("http", http::serve(app.clone())));
    match config.dhcp.mode {
        DhcpMode::Authoritative | DhcpMode::Proxy => {
            services.spawn(named("dhcp", dhcp::serve(app.clone())));
        }
        DhcpMode::Off => tracing::info!("DHCP is off ([dhcp] mode = \"off\")"),
    }
    if config.tftp.enabled {
        services.spawn(named("tftp", tftp::serve(app.clone())));
    } else {
        tracing::info!("TFTP is off ([tftp] enabled = false)");
    }
    tokio::spawn(keep_bootstrap_token_fresh(app.clone()));
    tracing::info!(
        machines = config.machines.len(),
        data_dir = %config.server.data_dir.display(),
        "bootherd serving on {} (HTTP {})",
        config.server.address,
        config.http_base()
    );

    let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    loop {
        tokio::select! {
            _ = hup.recv() => reload(&app),
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); return Ok(()); }
            _ = tokio::signal::ctrl_c() => { tracing::info!("interrupted: stopping"); return Ok(()); }
            Some(done) = services.join_next() => {
                let (name, result) = done.context("a service panicked")?;
                return Err(match result {
                    Err(e) => e.context(format!("{name} service stopped")),
                    Ok(()) => anyhow::anyhow!("{name} service stopped unexpectedly"),
                });
            }
        }
    }
}

/// Bootstrap tokens expire; late joins and reimages need a valid one. Once
/// an hour, mint a fresh token through the API server when the current one
/// is near expiry (bootherd holds the CA, so it can authenticate as admin).
async fn keep_bootstrap_token_fresh(app: Arc<App>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let config = app.config();
        let mut secrets = match crate::cluster::Secrets::load_or_create(&config) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cluster secrets: {e:#}");
                continue;
            }
        };
        let endpoint = config.cluster.endpoint.to_string();
        match secrets.renew_token_if_due(&endpoint, time::OffsetDateTime::now_utc()).await {
            Ok(true) => tracing::info!("minted a fresh bootstrap token {}", secrets.token().id()),
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "the bootstrap token {} expires {} and could not be renewed through {endpoint}: {e:#} (`bootherd cluster renew-token` retries by hand)",
                secrets.token().id(),
                secrets.token().expires_rfc3339()
            ),
        }
    }
}

async fn named(
    name: &'static str,
    f: impl std::future::Future<Output = Result<()>>,
) -> (&'static str, Result<()>) {
    (name, f.await)
}

fn reload(app: &App) {
    let mode_before = app.config().dhcp.mode;
    match app.reload() {
        Ok(warnings) => {
            for w in &warnings {
                tracing::warn!("config: {w}");
            }
            tracing::info!("config reloaded ({} machines)", app.config().machines.len());
            let mode = app.config().dhcp.mode;
            if mode != mode_before {
                // The DHCP sockets (67, and 4011 for proxy mode) are opened at start.
                tracing::warn!("[dhcp] mode changed from {mode_before} to {mode}: restart bootherd to apply it fully");
            }
        }
        Err(e) => tracing::error!("config reload refused, the running config stays: {e:#}"),
    }
}

/// Names, at start, each file the inventory needs that is not there.
fn report_missing(
    config: &Config,
    config_path: &std::path::Path,
    data_dir_override: Option<&std::path::Path>,
) {
    let missing = images::missing(config);
    for m in &missing {
        let looked: Vec<String> = m
            .looked_in
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        tracing::warn!(
            "missing {}: needed by {}; looked in {}. Place the file there (installer files come from the Ubuntu live-server ISO: casper/vmlinuz, casper/initrd, and the ISO itself; iPXE builds come with Debian's `ipxe` package; arm64 GRUB is Ubuntu's signed grubnetaa64.efi)",
            m.what,
            m.needed_by.join(", "),
            looked.join(", ")
        );
    }
    if !missing.is_empty() {
        let mut base = format!("bootherd --config {}", config_path.display());
        if let Some(d) = data_dir_override {
            base.push_str(&format!(" --data-dir {}", d.display()));
        }
        tracing::warn!(
            "to download and verify what is missing, run: {base} images fetch (without internet: {base} images import DIR)"
        );
    }
}
