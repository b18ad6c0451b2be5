//! Varint-length-prefixed protobuf over a libp2p stream (nwaku's `writeLp`/`readLp`, js-waku's
//! `it-length-prefixed`): one request and one response per stream. [`LpCodec`] is the
//! request-response codec of the metadata (`metadata.rs`) and store (`store.rs`) protocols.

use std::io;
use std::marker::PhantomData;

use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;

/// Bytes of the longest varint length prefix read (enough for 32 GiB).
const MAX_PREFIX_BYTES: usize = 5;

/// Reads one varint-length-prefixed protobuf message of at most `max` bytes.
pub(crate) async fn read_lp<M: prost::Message + Default, T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<M> {
    read_lp_checked(io, max, |_| Ok(())).await
}

/// [`read_lp`], with `check` run on the raw bytes before they are decoded (a cheap look at their
/// shape that refuses what would decode into far more memory than the bytes themselves).
pub(crate) async fn read_lp_checked<M: prost::Message + Default, T: AsyncRead + Unpin + Send>(
    io: &mut T,
    max: usize,
    check: impl FnOnce(&[u8]) -> io::Result<()>,
) -> io::Result<M> {
    let mut len: usize = 0;
    let mut byte = [0u8; 1];
    for i in 0..=MAX_PREFIX_BYTES {
        if i == MAX_PREFIX_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "length prefix too long"));
        }
        io.read_exact(&mut byte).await?;
        len |= usize::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("message of {len} bytes (limit {max})")));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    check(&buf)?;
    M::decode(bytes::Bytes::from(buf)).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Writes one varint-length-prefixed protobuf message and closes the stream's write side.
pub(crate) async fn write_lp<M: prost::Message, T: AsyncWrite + Unpin + Send>(io: &mut T, msg: &M) -> io::Result<()> {
    io.write_all(&msg.encode_length_delimited_to_vec()).await?;
    io.close().await
}

/// The request-response codec of a protocol with one length-prefixed protobuf `Req` and one
/// `Res` per stream, each read up to its limit; a response is first shown to `check_response`
/// (its raw bytes, before decoding).
pub struct LpCodec<Req, Res> {
    max_request: usize,
    max_response: usize,
    check_response: fn(&[u8]) -> io::Result<()>,
    _messages: PhantomData<fn() -> (Req, Res)>,
}

impl<Req, Res> LpCodec<Req, Res> {
    /// A codec reading requests up to `max_request` bytes and responses up to `max_response`.
    pub(crate) fn new(max_request: usize, max_response: usize, check_response: fn(&[u8]) -> io::Result<()>) -> Self {
        LpCodec { max_request, max_response, check_response, _messages: PhantomData }
    }
}

// By hand: derived impls would require `Req: Clone` and `Res: Clone`.
impl<Req, Res> Clone for LpCodec<Req, Res> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Res> Copy for LpCodec<Req, Res> {}

impl<Req, Res> std::fmt::Debug for LpCodec<Req, Res> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LpCodec").field("max_request", &self.max_request).field("max_response", &self.max_response).finish()
    }
}

/// No check: every response within the size limit is decoded.
pub(crate) fn any_shape(_: &[u8]) -> io::Result<()> {
    Ok(())
}

impl<Req, Res> request_response::Codec for LpCodec<Req, Res>
where
    Req: prost::Message + Default + Send + 'static,
    Res: prost::Message + Default + Send + 'static,
{
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Res;

    async fn read_request<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req> {
        read_lp(io, self.max_request).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Res> {
        read_lp_checked(io, self.max_response, self.check_response).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T, req: Req) -> io::Result<()> {
        write_lp(io, &req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T, res: Res) -> io::Result<()> {
        write_lp(io, &res).await
    }
}
