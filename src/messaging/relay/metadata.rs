//! The Waku metadata protocol `/vac/waku/metadata/1.0.0` (spec: relay.metadata): each side asks
//! the other for its cluster id and shards right after connecting. nwaku disconnects peers that
//! fail it or answer with another cluster; so do we (see `swarm.rs`).
//!
//! Wire: one varint-length-prefixed protobuf request, one varint-length-prefixed protobuf
//! response on the same stream (`lp.rs`).

use libp2p::request_response::{self, ProtocolSupport};
use libp2p::StreamProtocol;

use super::lp::{any_shape, LpCodec};

/// The metadata protocol id.
pub const METADATA_PROTOCOL: StreamProtocol = StreamProtocol::new("/vac/waku/metadata/1.0.0");

/// The largest metadata message read (a cluster id and up to 1024 shards fit easily).
pub const MAX_METADATA_BYTES: usize = 8 * 1024;

/// `WakuMetadataRequest` and `WakuMetadataResponse` share one shape.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WakuMetadata {
    /// The sender's cluster id.
    #[prost(uint32, optional, tag = "1")]
    pub cluster_id: Option<u32>,
    /// The sender's shards, unpacked: deprecated, but the only field js-waku (@waku/proto
    /// 0.0.15) reads, so it is written too.
    #[prost(uint32, repeated, packed = "false", tag = "2")]
    pub shards_unpacked: Vec<u32>,
    /// The sender's shards, packed (what nwaku reads).
    #[prost(uint32, repeated, packed = "true", tag = "3")]
    pub shards: Vec<u32>,
}

impl WakuMetadata {
    /// Our announcement (shards in both fields).
    pub fn ours(cluster_id: u32, shards: &[u32]) -> Self {
        WakuMetadata { cluster_id: Some(cluster_id), shards_unpacked: shards.to_vec(), shards: shards.to_vec() }
    }
}

/// Whether a peer's metadata lets it stay connected: nwaku's rule is that it must report a
/// cluster id and that cluster id must be ours.
pub fn acceptable(ours: u32, theirs: &WakuMetadata) -> Result<(), String> {
    match theirs.cluster_id {
        Some(c) if c == ours => Ok(()),
        Some(c) => Err(format!("peer is on cluster {c}, we are on cluster {ours}")),
        None => Err("peer reported no cluster id".to_owned()),
    }
}

/// The request-response codec of the metadata protocol: one length-prefixed [`WakuMetadata`]
/// each way, at most `MAX_METADATA_BYTES`.
pub type MetadataCodec = LpCodec<WakuMetadata, WakuMetadata>;

impl Default for MetadataCodec {
    fn default() -> Self {
        LpCodec::new(MAX_METADATA_BYTES, MAX_METADATA_BYTES, any_shape)
    }
}

/// The metadata protocol behaviour (both sides).
pub type MetadataBehaviour = request_response::Behaviour<MetadataCodec>;

/// A metadata behaviour answering and asking on [`METADATA_PROTOCOL`].
pub fn behaviour(timeout: std::time::Duration) -> MetadataBehaviour {
    request_response::Behaviour::new([(METADATA_PROTOCOL, ProtocolSupport::Full)], request_response::Config::default().with_request_timeout(timeout))
}

#[cfg(test)]
mod tests {
    use super::super::lp::{read_lp, write_lp};
    use super::*;
    use prost::Message as _;

    #[test]
    fn wire_shape_matches_the_proto() {
        let m = WakuMetadata::ours(42, &[0, 3]);
        // field 1 varint 42, field 2 twice (unpacked), field 3 packed [0, 3]
        assert_eq!(m.encode_to_vec(), vec![0x08, 42, 0x10, 0, 0x10, 3, 0x1a, 2, 0, 3]);
        let old = WakuMetadata::decode(&[0x08, 7, 0x10, 1, 0x10, 2][..]).unwrap();
        assert_eq!((old.cluster_id, old.shards_unpacked), (Some(7), vec![1, 2]));
    }

    #[test]
    fn length_prefixed_round_trip_and_limits() {
        let m = WakuMetadata::ours(42, &[1]);
        let mut buf = Vec::new();
        libp2p::futures::executor::block_on(write_lp(&mut buf, &m)).unwrap();
        let back: WakuMetadata = libp2p::futures::executor::block_on(read_lp(&mut &buf[..], MAX_METADATA_BYTES)).unwrap();
        assert_eq!(back, m);
        let huge = [0xff, 0xff, 0xff, 0x7f];
        assert!(libp2p::futures::executor::block_on(read_lp::<WakuMetadata, _>(&mut &huge[..], MAX_METADATA_BYTES)).is_err());
        let endless = [0x80u8; 16];
        assert!(libp2p::futures::executor::block_on(read_lp::<WakuMetadata, _>(&mut &endless[..], MAX_METADATA_BYTES)).is_err());
    }

    #[test]
    fn cluster_rule() {
        assert!(acceptable(42, &WakuMetadata::ours(42, &[])).is_ok());
        assert!(acceptable(42, &WakuMetadata::ours(1, &[0])).unwrap_err().contains("cluster 1"));
        assert!(acceptable(42, &WakuMetadata::default()).is_err());
    }
}
