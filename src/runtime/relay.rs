//! The native Waku Relay transport in the manager: building the node from the configuration, and
//! keeping its identity (node key) beside the manager's database so that the peer id survives
//! restarts.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::messaging::relay::{generate_node_key, RelayConfig, RelayError, RelayHandle, RelayTransport};
use crate::messaging::{Transport, TransportSink};
use crate::storage::StorageConfig;

/// Suffix of the node key file kept beside the manager's database (`<storage.path>.relay-key`).
pub(crate) const NODE_KEY_SUFFIX: &str = ".relay-key";

impl From<RelayError> for Error {
    /// Configuration errors name the key (`RC_ERR_CONFIG`); a busy port, an address not on this
    /// host or a node that cannot start are `RC_ERR_TRANSPORT`, naming the address.
    fn from(e: RelayError) -> Self {
        match e {
            RelayError::Config { .. } => Error::Config(e.to_string()),
            RelayError::Listen { .. } | RelayError::Runtime(_) | RelayError::ShutDown => Error::Transport(e.to_string()),
        }
    }
}

/// Where the node key of a manager with `storage` is kept.
pub(crate) fn node_key_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(NODE_KEY_SUFFIX);
    PathBuf::from(p)
}

/// The node key kept at `path`, created (mode 0600, written whole then renamed into place) when
/// missing. The manager holds its database's lock while it calls this: no other manager races it.
fn load_or_create_node_key(path: &Path) -> Result<String, Error> {
    let storage = |what: &str, e: std::io::Error| Error::Storage(format!("relay node key {}: {what}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(s) => return Ok(s.trim().to_owned()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(storage("cannot read", e)),
        Err(_) => {}
    }
    let key = generate_node_key();
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(|e| storage("cannot create", e))?;
    f.write_all(key.as_bytes()).and_then(|_| f.sync_all()).map_err(|e| storage("cannot write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| storage("cannot rename into place", e))?;
    log::info!("relay: generated a node key, kept in {}", path.display());
    Ok(key)
}

/// Starts the relay node of a manager. Without `transport.nodeKey` but with `storage`, the node
/// key kept beside the database is used (generated the first time): the same peer id after a
/// restart, so peers that know our address redial us.
pub(crate) fn make_relay(
    cfg: &RelayConfig,
    storage: Option<&StorageConfig>,
    sink: TransportSink,
) -> Result<(Box<dyn Transport>, RelayHandle), Error> {
    let mut cfg = cfg.clone();
    if cfg.node_key.is_none() {
        if let Some(s) = storage {
            // A key file that is not a valid key names the file, not `transport.nodeKey`.
            let path = node_key_path(&s.path);
            let key = load_or_create_node_key(&path)?;
            crate::messaging::relay::peer_id_of_node_key(&key)
                .map_err(|_| Error::Storage(format!("relay node key {}: not a secp256k1 secret key in hex", path.display())))?;
            cfg.node_key = Some(key);
        }
    }
    let (transport, handle) = RelayTransport::new(cfg, sink)?;
    let addrs: Vec<String> = handle.listen_addresses().iter().map(ToString::to_string).collect();
    log::info!("relay: transport started, peer id {}, pubsub topic {}, listening on {}", handle.peer_id(), handle.pubsub_topic(), addrs.join(", "));
    Ok((Box::new(transport), handle))
}
