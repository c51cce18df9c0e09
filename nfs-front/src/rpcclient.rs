//! A minimal RPC client over TCP for the calls the server makes itself:
//! NLM GRANTED callbacks and results of the _MSG procedures, found through
//! the client's portmapper.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use nfs_proto::portmap::{self, Mapping};
use nfs_proto::record::{frame, RecordReader};
use nfs_proto::rpc::{decode_reply, encode_call, CallHeader, OpaqueAuth, ReplyStat};
use nfs_proto::Xdr;

const TIMEOUT: Duration = Duration::from_secs(10);

fn err(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::other(msg.into())
}

/// One call on a fresh connection; returns the results.
async fn call_once(at: SocketAddr, prog: u32, vers: u32, proc_: u32, args: Bytes) -> std::io::Result<Bytes> {
    let work = async {
        let mut s = TcpStream::connect(at).await?;
        let xid: u32 = rand_xid();
        let h = CallHeader {
            xid,
            prog,
            vers,
            proc_,
            cred: OpaqueAuth::none(),
            verf: OpaqueAuth::none(),
        };
        let mut msg = encode_call(&h, &()).to_vec();
        msg.extend_from_slice(&args);
        let BufResult(r, _) = s.write_all(frame(&msg, usize::MAX)).await;
        r?;
        let mut rr = RecordReader::new(1 << 20);
        loop {
            if let Some(rec) = rr.next_record().map_err(|e| err(e.to_string()))? {
                let (rh, d) = decode_reply(rec).map_err(|e| err(e.to_string()))?;
                if rh.xid != xid {
                    continue;
                }
                if rh.stat != ReplyStat::Success {
                    return Err(err(format!("{at}: {:?}", rh.stat)));
                }
                return Ok(d.rest());
            }
            let mut buf = std::mem::take(rr.buffer());
            buf.reserve(4096);
            let held = buf.len();
            let BufResult(n, slice) = s.read(buf.slice(held..)).await;
            *rr.buffer() = slice.into_inner();
            if n? == 0 {
                return Err(err(format!("{at}: connection closed")));
            }
        }
    };
    compio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| err(format!("{at}: timed out")))?
}

fn rand_xid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0x5745_0000);
    NEXT.fetch_add(1, Ordering::Relaxed)
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
    let m = Mapping {
        prog,
        vers,
        prot: portmap::IPPROTO_TCP,
        port: 0,
    };
    let pm = SocketAddr::new(host, pmap_port);
    let res = call_once(pm, portmap::PROGRAM, portmap::VERSION, 3, m.to_bytes()).await?;
    let port = u32::from_bytes(res).map_err(|e| err(e.to_string()))?;
    if port == 0 || port > u16::MAX as u32 {
        return Err(err(format!("{host}: program {prog} v{vers} is not registered")));
    }
    call_once(SocketAddr::new(host, port as u16), prog, vers, proc_, args).await
}
