//! The command line. `serve` runs the server; `check` and `render` work on the
//! config offline; `machines`, `events`, `reimage` and `reload` talk to a
//! running `serve` through its HTTP API.

use crate::app::App;
use crate::artifacts;
use crate::config::{Config, LoadError, DEFAULT_CONFIG_PATH};
use crate::http::{script_client, MachineRow};
use crate::inventory::{unix_now, Event};
use crate::mac::MacAddr;
use crate::operator;
use crate::status::{table, Overview};
use crate::store::SqliteStore;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "bootherd",
    version,
    about = "Network-boot provisioning: DHCP, TFTP and HTTP that install Ubuntu and join machines to a Kubernetes cluster"
)]
struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = DEFAULT_CONFIG_PATH, env = "BOOTHERD_CONFIG")]
    config: PathBuf,
    /// Overrides `[server] data_dir` (store, secrets, images, template overrides).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: DHCP, TFTP and HTTP as the config enables them.
    Serve,
    /// Validate the config: lists every error with its line and fix (exit 1); warnings exit 0.
    Check,
    /// Print exactly what a machine would be served now.
    Render {
        #[arg(long)]
        mac: MacAddr,
        /// The firmware the iPXE script is for.
        #[arg(long, value_enum, default_value = "bios")]
        firmware: FirmwareArg,
        what: RenderWhat,
    },
    /// List machines with their state and install progress (asks the running server).
    Machines {
        /// The running server's base URL (default: from the config).
        #[arg(long)]
        server: Option<String>,
        /// Keep showing the cluster and the table, refreshed every --interval
        /// (on a terminal in place; otherwise printed again each time).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
    },
    /// Print a machine's event history, oldest first.
    Events {
        /// Hostname or MAC.
        machine: String,
        #[arg(long)]
        server: Option<String>,
    },
    /// Reinstall a machine at its next boot.
    Reimage {
        /// Hostname or MAC.
        machine: String,
        #[arg(long)]
        server: Option<String>,
    },
    /// Make the running server re-read its config (same as SIGHUP); a bad file is refused.
    Reload {
        #[arg(long)]
        server: Option<String>,
    },
    /// The cluster's join material (generated into `<data_dir>/cluster/` on first use).
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// Download, verify, import and list OS images and boot firmware.
    Images {
        /// A catalog file to use instead of the compiled-in one (e.g. one pointing at a local mirror).
        #[arg(long, global = true)]
        catalog: Option<PathBuf>,
        #[command(subcommand)]
        command: ImagesCommand,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Print the API endpoint, the bootstrap token's expiry and the CA cert hash.
    Info,
    /// Mint a fresh bootstrap token on the running cluster (when the current
    /// one has less than 6 h left, or always with --force) and keep it for joins.
    RenewToken {
        /// Renew even when the current token is still fresh.
        #[arg(long)]
        force: bool,
        /// The API server to create it through, `host:port` (default: the config's endpoint).
        #[arg(long)]
        endpoint: Option<String>,
    },
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// What the inventory needs, what is cached, what is missing.
    List,
    /// Download and verify images (default: what the inventory needs).
    Fetch {
        /// Catalog names (see `bootherd images list --all`).
        names: Vec<String>,
        /// Attempts per file before giving up (an interrupted transfer resumes).
        #[arg(long, default_value_t = 5)]
        attempts: u32,
    },
    /// Re-hash every cached image against its recorded digest.
    Verify,
    /// Fill the cache from a directory or mounted media, with the same checks as `fetch`.
    Import { path: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum FirmwareArg {
    Bios,
    Uefi,
}

#[derive(Clone, Copy, ValueEnum)]
enum RenderWhat {
    Ipxe,
    /// The `grub.cfg` an arm64 server's GRUB gets.
    Grub,
    UserData,
    MetaData,
    /// A Raspberry Pi's `config.txt`, as TFTP serves it while its install is due.
    PiConfig,
    /// A Pi's netplan network-config (its NoCloud seed has one).
    NetworkConfig,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads the config, printing each finding; `--data-dir` wins over the file.
fn load(cli: &Cli) -> Result<Config> {
    match Config::load(&cli.config) {
        Ok((mut config, warnings)) => {
            for w in warnings {
                eprintln!("{}:{w}", cli.config.display());
            }
            if let Some(d) = &cli.data_dir {
                config.server.data_dir = d.clone();
            }
            Ok(config)
        }
        Err(e @ LoadError::Read { .. }) => Err(e.into()),
        Err(LoadError::Invalid { path, findings }) => {
            for f in &findings {
                eprintln!("{}:{}", path.display(), f);
            }
            bail!(
                "{} has {} problem(s); fix them and run `bootherd check` again",
                path.display(),
                findings.len()
            )
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Serve => {
            let config = load(&cli)?;
            crate::serve::run(config, cli.config.clone(), cli.data_dir.clone()).await?;
        }
        Command::Check => {
            let config = match load(&cli) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e:#}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            println!(
                "{}: ok ({} machines)",
                cli.config.display(),
                config.machines.len()
            );
        }
        Command::Render {
            mac,
            firmware,
            what,
        } => {
            let config = load(&cli)?;
            print!("{}", render(&config, *mac, *firmware, *what)?);
        }
        Command::Machines {
            server,
            watch: false,
            ..
        } => {
            let config = load(&cli)?;
            let rows: Vec<MachineRow> =
                api(&config, server, reqwest::Method::GET, "machines", None).await?;
            print!("{}", table::machines_table(&rows, unix_now()));
        }
        Command::Machines {
            server,
            watch: true,
            interval,
        } => {
            let config = load(&cli)?;
            watch_machines(&config, server, *interval).await?;
        }
        Command::Events { machine, server } => {
            let config = load(&cli)?;
            let path = format!("machines/{machine}/events");
            let events: Vec<Event> =
                api(&config, server, reqwest::Method::GET, &path, None).await?;
            print!("{}", events_text(&events));
        }
        Command::Reimage { machine, server } => {
            let config = load(&cli)?;
            let token = operator::read(&config.server.data_dir)?;
            let path = format!("machines/{machine}/reimage");
            let v: serde_json::Value =
                api(&config, server, reqwest::Method::POST, &path, Some(&token)).await?;
            println!(
                "{} ({}) will be reinstalled at its next boot",
                v["hostname"].as_str().unwrap_or(machine),
                v["mac"].as_str().unwrap_or("")
            );
        }
        Command::Reload { server } => {
            // Checked here first, so a broken file never reaches the server.
            let config = load(&cli).context("not reloaded: the running config stays in force")?;
            let token = operator::read(&config.server.data_dir)?;
            let v: serde_json::Value = api(
                &config,
                server,
                reqwest::Method::POST,
                "reload",
                Some(&token),
            )
            .await?;
            for w in v["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            println!("config reloaded");
        }
        Command::Cluster {
            command: ClusterCommand::Info,
        } => {
            let config = load(&cli)?;
            let secrets = crate::cluster::Secrets::load_or_create(&config)?;
            print!("{}", cluster_info(&config, &secrets, unix_now()));
        }
        Command::Cluster {
            command: ClusterCommand::RenewToken { force, endpoint },
        } => {
            let config = load(&cli)?;
            let mut secrets = crate::cluster::Secrets::load_or_create(&config)?;
            let endpoint = endpoint
                .clone()
                .unwrap_or_else(|| config.cluster.endpoint.to_string());
            let now = time::OffsetDateTime::now_utc();
            if *force {
                secrets.renew_token(&endpoint, now).await?;
            } else if !secrets.renew_token_if_due(&endpoint, now).await? {
                println!(
                    "the bootstrap token {} is still valid until {}: nothing to do (--force renews anyway)",
                    secrets.token().id(),
                    secrets.token().expires_rfc3339()
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "minted bootstrap token {} (expires {})",
                secrets.token().id(),
                secrets.token().expires_rfc3339()
            );
        }
        Command::Images { catalog, command } => {
            let config = load(&cli)?;
            return images_command(&config, catalog.as_deref(), command).await;
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn images_command(
    config: &Config,
    catalog_file: Option<&std::path::Path>,
    command: &ImagesCommand,
) -> Result<ExitCode> {
    use crate::images::{cache, catalog, fetch, import};
    let custom;
    let entries = match catalog_file {
        None => catalog::builtin(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the catalog {}", p.display()))?;
            custom = catalog::parse(&text).with_context(|| format!("{}", p.display()))?;
            &custom
        }
    };
    let dir = crate::images::images_dir(config);
    let needed = catalog::needed(entries, config);
    match command {
        ImagesCommand::List => {
            let mut missing = 0;
            for e in entries {
                let hosts = needed
                    .iter()
                    .find(|(n, _)| n.name == e.name)
                    .map(|(_, h)| h.join(","));
                let state = cache::state(e, &dir);
                if hosts.is_some() && state == cache::State::Missing {
                    missing += 1;
                }
                println!(
                    "{:<34} {:<20} {:<32} {}",
                    e.name,
                    state.to_string(),
                    hosts
                        .map(|h| format!("needed by {h}"))
                        .unwrap_or_else(|| "not needed".into()),
                    match &e.source {
                        catalog::Source::Package { path, .. }
                            if state == cache::State::FromPackage =>
                            path.display().to_string(),
                        _ => e.path(&dir).display().to_string(),
                    }
                );
            }
            if missing > 0 {
                println!("{missing} needed image(s) missing: run `bootherd images fetch` (or `bootherd images import DIR` without internet)");
            }
        }
        ImagesCommand::Fetch { names, attempts } => {
            let chosen: Vec<&catalog::Entry> = if names.is_empty() {
                needed.iter().map(|(e, _)| *e).collect()
            } else {
                names
                    .iter()
                    .map(|n| {
                        entries.iter().find(|e| &e.name == n).with_context(|| {
                            format!(
                                "{n:?} is not in the catalog; `bootherd images list` names them"
                            )
                        })
                    })
                    .collect::<Result<_>>()?
            };
            if chosen.is_empty() {
                println!("the inventory needs no images; name some: bootherd images fetch NAME…");
            }
            let client = fetch::client();
            let opts = fetch::FetchOptions {
                attempts: *attempts,
                ..Default::default()
            };
            let mut failed = 0;
            for e in chosen {
                if let Err(err) = cache::fetch_entry(&client, e, &dir, &opts).await {
                    eprintln!("error: {}: {err:#}", e.name);
                    failed += 1;
                } else {
                    println!("{}: ok", e.name);
                }
            }
            if failed > 0 {
                return Ok(ExitCode::FAILURE);
            }
        }
        ImagesCommand::Verify => {
            let (lines, ok) = cache::verify_all(entries, &dir)?;
            for l in &lines {
                println!("{l}");
            }
            if lines.is_empty() {
                println!("nothing cached yet: run `bootherd images fetch`");
            }
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        ImagesCommand::Import { path } => {
            for name in import::import(entries, path, &dir)? {
                println!("{name}: imported");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn render(
    config: &Config,
    mac: MacAddr,
    firmware: FirmwareArg,
    what: RenderWhat,
) -> Result<String> {
    let store = SqliteStore::open(&config.server.data_dir)?;
    let app = App::new(config.clone(), None, None, Arc::new(store));
    let platform = match firmware {
        FirmwareArg::Bios => "pcbios",
        FirmwareArg::Uefi => "efi",
    };
    let machine = || {
        config.machine_by_mac(mac).with_context(|| {
            format!(
                "{mac} is not in {}: unknown machines get no cloud-init",
                "the config"
            )
        })
    };
    let due = || -> Result<()> {
        let state = app.state_of(config, mac)?;
        if !state.install_due() {
            bail!("{mac} is {state}: bootherd serves its seed only while an install is due (bootherd reimage it first)");
        }
        Ok(())
    };
    match what {
        RenderWhat::Ipxe => Ok(artifacts::ipxe_script(
            &app,
            config,
            Some(mac),
            &script_client(Some(platform), None),
        )?
        .0),
        RenderWhat::Grub => Ok(artifacts::grub_cfg(&app, config, mac)?.0),
        RenderWhat::UserData | RenderWhat::MetaData | RenderWhat::NetworkConfig => {
            let m = machine()?;
            due()?;
            let name = match what {
                RenderWhat::UserData => "user-data",
                RenderWhat::MetaData => "meta-data",
                _ => "network-config",
            };
            artifacts::seed_file(&app, config, m, name)?.with_context(|| {
                format!(
                    "{} has no {name} (only a Pi's seed has network-config)",
                    m.hostname
                )
            })
        }
        RenderWhat::PiConfig => {
            let m = machine()?;
            let model = crate::boot::PiModel::of(m.platform).with_context(|| {
                format!(
                    "{} is platform {}, not a Raspberry Pi",
                    m.hostname, m.platform
                )
            })?;
            crate::pi::boot_files::render_config(&app, m, model)
        }
    }
}

/// Calls the running server's API and decodes its JSON answer.
async fn api<T: serde::de::DeserializeOwned>(
    config: &Config,
    server: &Option<String>,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> Result<T> {
    let base = server.clone().unwrap_or_else(|| config.http_base());
    let url = format!("{}/api/v1/{path}", base.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let mut req = client.request(method, &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach bootherd at {base}: is `bootherd serve` running? (pass --server URL if it listens elsewhere)"))?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        bail!("{url}: {status}: {}", body.trim());
    }
    resp.json()
        .await
        .with_context(|| format!("{url}: unexpected answer"))
}

/// The `bootherd cluster info` text: public facts only (the token's secret
/// part stays in `<data_dir>/cluster/`).
fn cluster_info(config: &Config, secrets: &crate::cluster::Secrets, now: u64) -> String {
    let token = secrets.token();
    let left = token.expires().unix_timestamp() - now as i64;
    let state = if left > 0 {
        format!("in {}h {:02}m", left / 3600, left % 3600 / 60)
    } else {
        "expired: run `bootherd cluster renew-token` once the cluster is up".to_string()
    };
    format!(
        "endpoint:      {}\ntoken id:      {}\ntoken expires: {} ({state})\nca cert hash:  {}\nsecrets:       {}\n",
        config.cluster.endpoint,
        token.id(),
        token.expires_rfc3339(),
        secrets.ca_cert_hash(),
        secrets.dir().display()
    )
}

/// `bootherd machines --watch`: the cluster strip and the table, redrawn in
/// place on a terminal; elsewhere (a pipe, a log) printed again each time,
/// without escape codes. A server that goes away is reported and retried.
async fn watch_machines(config: &Config, server: &Option<String>, interval: u64) -> Result<()> {
    use std::io::{IsTerminal, Write};
    let tty = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let view = match api::<Overview>(config, server, reqwest::Method::GET, "status", None).await
        {
            Ok(o) => table::overview_text(&o),
            Err(e) => format!("{e:#}\n(retrying every {interval}s)\n"),
        };
        let stamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let mut out = std::io::stdout().lock();
        if tty {
            // Home, draw, then clear what is left of a longer previous frame.
            write!(
                out,
                "\x1b[H{}{stamp}  (every {interval}s, Ctrl-C to stop)\x1b[K\x1b[J",
                view.replace('\n', "\x1b[K\n")
            )?;
        } else {
            writeln!(out, "--- {stamp}")?;
            write!(out, "{view}")?;
        }
        out.flush()?;
    }
}

/// `bootherd events HOST`: one line per event (multi-line messages indented).
fn events_text(events: &[Event]) -> String {
    let mut out = String::new();
    for e in events {
        let when = time::OffsetDateTime::from_unix_timestamp(e.time as i64)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| e.time.to_string());
        let mut lines = e.message.lines();
        out.push_str(&format!(
            "{when}  {:<20} {}\n",
            e.kind,
            lines.next().unwrap_or_default()
        ));
        for l in lines {
            out.push_str(&format!("{:<44}| {l}\n", ""));
        }
    }
    if events.is_empty() {
        out.push_str("no events recorded yet\n");
    }
    out
}
