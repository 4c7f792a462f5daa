//! The running server's shared state: the current config (swapped whole on
//! reload), the store, and the template renderer. Transports hold an
//! `Arc<App>` and ask it; none of them keeps its own copy of the inventory.

use crate::boot::{self, BootAction, Client};
use crate::changes::{Announcing, Changes};
use crate::config::{Config, Finding, Machine};
use crate::inventory::{Event, State};
use crate::mac::MacAddr;
use crate::render::Renderer;
use crate::store::{Store, Write};
use anyhow::Result;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub struct App {
    config: RwLock<Arc<Config>>,
    /// Where reloads read the config from; `None` for a config given in memory (tests).
    config_path: Option<PathBuf>,
    /// `--data-dir` given on the command line wins over the file's, on every reload.
    data_dir_override: Option<PathBuf>,
    /// The store; every committed write is announced on `changes`.
    pub store: Arc<dyn Store>,
    /// Live views (the status page's stream) subscribe here.
    pub changes: Changes,
    pub renderer: Renderer,
    /// Pis seen by DHCP (serial and address → MAC), for TFTP's Pi requests.
    pub pis: crate::pi::Sightings,
}

impl App {
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        data_dir_override: Option<PathBuf>,
        store: Arc<dyn Store>,
    ) -> App {
        let renderer = Renderer::new(&config.server.data_dir);
        let changes = Changes::default();
        App {
            config: RwLock::new(Arc::new(config)),
            config_path,
            data_dir_override,
            store: Arc::new(Announcing::new(store, changes.clone())),
            changes,
            renderer,
            pis: crate::pi::Sightings::default(),
        }
    }

    /// The config in force now. Cheap: callers take one per request and use it throughout.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the config file. A file that does not validate is refused
    /// with its findings and the running config stays.
    pub fn reload(&self) -> Result<Vec<Finding>> {
        let Some(path) = &self.config_path else {
            return Ok(Vec::new());
        };
        let (mut config, warnings) = Config::load(path)?;
        // Templates first: a broken override refuses the whole reload.
        self.renderer.reload()?;
        if let Some(d) = &self.data_dir_override {
            config.server.data_dir = d.clone();
        }
        let old = self.config();
        if config.server.data_dir != old.server.data_dir {
            tracing::warn!(
                old = %old.server.data_dir.display(), new = %config.server.data_dir.display(),
                "data_dir changed in the config: the store stays where it is until restart"
            );
        }
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(warnings)
    }

    /// The lifecycle state of a MAC: what the store recorded, or `configured`
    /// / `discovered` for a MAC the store has not recorded yet.
    pub fn state_of(&self, config: &Config, mac: MacAddr) -> Result<State> {
        let known = config.machine_by_mac(mac).is_some();
        let state = match self.store.machine(mac)?.map(|r| r.state) {
            // A machine that was discovered and has since been configured installs.
            Some(State::Discovered) | None if known => State::Configured,
            Some(s) if known => s,
            _ => State::Discovered,
        };
        Ok(state)
    }

    /// The machine's config entry with its lifecycle state; `None` when not configured.
    pub fn lookup(&self, config: &Config, mac: MacAddr) -> Result<Option<(Machine, State)>> {
        let Some(machine) = config.machine_by_mac(mac) else {
            return Ok(None);
        };
        Ok(Some((machine.clone(), self.state_of(config, mac)?)))
    }

    /// Asks the boot decision for this MAC and client.
    pub fn decide(&self, config: &Config, mac: MacAddr, client: &Client) -> Result<BootAction> {
        let found = self.lookup(config, mac)?;
        Ok(boot::decide(found.as_ref().map(|(m, s)| (m, *s)), client))
    }

    /// Moves a machine to `state` and logs the change.
    pub fn transition(&self, mac: MacAddr, state: State, event: Event) -> Result<()> {
        tracing::info!(%mac, to = %state, kind = %event.kind, "state change: {}", event.message);
        self.store.write(&[Write::SetState { mac, state, event }])
    }
}
