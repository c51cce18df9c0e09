//! The calls the server makes itself (NLM GRANTED callbacks, results of
//! the _MSG procedures, NSM notifications), each on a fresh TCP connection
//! to the port the client's portmapper names: the I/O around nfs-proto's
//! sans-IO client.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use nfs_proto::client::{self, Client};
use nfs_proto::rpc::OpaqueAuth;
use nfs_proto::Decoder;

const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest reply taken.
const MAX_REPLY: usize = 1 << 20;

fn err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

/// Send the call `(xid, record)` built on `c` to `at` on a fresh
/// connection; returns its results.
async fn call_once(
    at: SocketAddr,
    mut c: Client,
    (xid, record): (u32, Vec<Bytes>),
) -> std::io::Result<Decoder> {
    let work = async {
        let mut s = TcpStream::connect(at).await?;
        let BufResult(r, _) = s.write_vectored_all(record).await;
        r?;
        loop {
            if let Some(results) = c.reply_to(xid).map_err(|e| err(format!("{at}: {e}")))? {
                return Ok(results);
            }
            let mut buf = std::mem::take(c.buffer());
            buf.reserve(4096);
            let held = buf.len();
            let BufResult(n, slice) = s.read(buf.slice(held..)).await;
            *c.buffer() = slice.into_inner();
            if n? == 0 {
                return Err(err(format!("{at}: connection closed")));
            }
        }
    };
    compio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| err(format!("{at}: timed out")))?
}

fn client() -> Client {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0x5745_0000);
    Client::new(NEXT.fetch_add(1, Ordering::Relaxed), MAX_REPLY)
}

/// Call `prog`/`vers` on `host`, asking its portmapper (at `pmap_port`) for the port.
pub(crate) async fn call(
    host: IpAddr,
    pmap_port: u16,
    prog: u32,
    vers: u32,
    proc_: u32,
    args: Bytes,
) -> std::io::Result<Bytes> {
    let mut c = client();
    let getport = c.getport(prog, vers);
    let results = call_once(SocketAddr::new(host, pmap_port), c, getport).await?;
    let port = client::port(results)
        .map_err(|_| err(format!("{host}: program {prog} v{vers} is not registered")))?;
    let mut c = client();
    let call = c.call(prog, vers, proc_, &OpaqueAuth::none(), &[args]);
    Ok(call_once(SocketAddr::new(host, port), c, call).await?.rest())
}
