//! bootherd: a network-boot provisioning server. Blank machines on a
//! provisioning VLAN get DHCP, a boot loader over TFTP/HTTP, an unattended
//! Ubuntu install, and a first boot that joins them to a Kubernetes cluster.
//!
//! # Layout
//!
//! - `config`    — `bootherd.toml`: wire types → validated types; errors name the line and the fix.
//! - `mac`       — the MAC address type used everywhere.
//! - `inventory` — lifecycle states (discovered … joined) and events.
//! - `store`     — the crash-safe store (SQLite) of leases, states, events and install tokens.
//! - `boot`      — the boot decision: one pure function every transport asks.
//! - `app`       — the running server's shared state: current config, store, renderer.
//! - `cluster`   — cluster secrets: CAs, service-account keys, bootstrap token, VRRP password; per-role filtering.
//! - `render`    — tera templates, compiled in, overridable from `<data_dir>/templates`.
//! - `artifacts` — what a machine is served (iPXE script, GRUB config, cloud-init seed); used by HTTP, TFTP and `render`.
//! - `firstboot` — the installed system's role files (kubeadm, haproxy, keepalived, containerd, scripts) and the autoinstall user-data carrying them.
//! - `bootfiles` — the read-only boot-file namespace (iPXE builds, boot directory) for TFTP and HTTP.
//! - `pi`        — Raspberry Pi 4/5: TFTP boot files, config.txt/cmdline.txt, the disk-image installer.
//! - `images`    — the image catalog and cache: download, verify, import, extract; what is missing.
//! - `operator`  — the operator token that guards API writes.
//! - `dhcp`      — the DHCP server: client classification, leases, replies.
//! - `tftp`      — the read-only TFTP server (its own engine on tokio).
//! - `http`      — the HTTP server: boot scripts, cloud-init seeds, assets, JSON API.
//! - `serve`     — starts the services and handles reloads.
//! - `cli`       — the command line (clap).

pub mod app;
pub mod artifacts;
pub mod boot;
pub mod bootfiles;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dhcp;
pub mod firstboot;
pub mod http;
pub mod images;
pub mod inventory;
pub mod mac;
pub mod operator;
pub mod pi;
pub mod render;
pub mod serve;
pub mod store;
pub mod tftp;
