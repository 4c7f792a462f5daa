//! The installed system's first boot: the files each role needs (kubeadm
//! config, haproxy, keepalived, containerd, the role scripts) rendered from
//! the config and the cluster's secrets, and the autoinstall user-data that
//! carries them.
//!
//! - `material`   — `RoleMaterial`, the secrets a role may receive.
//! - `files`      — which files a machine gets, by role (secrets only where needed).
//! - `kubeadm`    — InitConfiguration/ClusterConfiguration/JoinConfiguration (v1beta4).
//! - `lb`         — haproxy.cfg and keepalived.conf.
//! - `network`    — the static network (netplan v2), for autoinstall and the Pi's seed.
//! - `scripts`    — the compiled-in bash role scripts from `cloud-init/`.
//! - `autoinstall`— the full autoinstall user-data of one machine.

pub mod autoinstall;
pub mod files;
pub mod kubeadm;
pub mod lb;
pub mod material;
pub mod network;
pub mod scripts;

pub use files::{role_files, RoleFile};
pub use material::{Pki, RoleMaterial};

/// Where the first boot keeps its inputs on the installed system.
pub const ETC_DIR: &str = "/etc/bootherd";
/// Where the role scripts are installed.
pub const LIB_DIR: &str = "/usr/local/lib/bootherd";
/// The placeholder the load-balancer script replaces with the NIC that holds
/// the node's IP: interface names are only known on the installed system.
pub const INTERFACE_PLACEHOLDER: &str = "@NODE_INTERFACE@";
/// The placeholder the control-plane script replaces with the installed
/// kubeadm's exact version, so the cluster never needs a version lookup on
/// the internet (kubeadm resolves a bare minor through dl.k8s.io).
pub const VERSION_PLACEHOLDER: &str = "@KUBERNETES_VERSION@";
/// Calico release the first control plane applies (operator install).
pub const CALICO_VERSION: &str = "v3.29.2";
/// Where Calico's images come from: Tigera's own registry, not Docker Hub.
pub const CALICO_REGISTRY: &str = "quay.io/";
/// Pod network MTU: VXLAN adds 50 bytes, and 1400 leaves room for links below 1500.
pub const POD_MTU: u32 = 1400;
pub use crate::config::{API_PORT, STACKED_API_PORT};
