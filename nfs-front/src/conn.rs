//! Listening and connections, on the shard threads: the engine's framed
//! connection loop over RPC record marking, each call a task of its own. A
//! READ reply is its header followed by the engine's own buffers, so cached
//! data is not copied on the way to the socket.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cache_engine::front::framed::{self, Admit, FrameLimits, Front};
use cache_engine::front::limits::Idle;
use compio::net::TcpStream;
use nfs_proto::record::{RecordError, RecordReader};

use crate::Server;

/// Start accepting on this shard's thread until `stop` closes.
/// `spread`: the shards' common `Spread` and this shard's index, to even
/// out connections (not for a listener only one shard has).
pub fn spawn_acceptor(
    srv: Arc<Server>,
    l: std::net::TcpListener,
    stop: async_channel::Receiver<()>,
    spread: Option<(Arc<cache_engine::front::Spread>, usize)>,
) {
    let limits = srv.conns.clone();
    cache_engine::front::spawn_acceptor("nfs", l, stop, spread, limits, move |stream, peer| {
        serve(srv.clone(), stream, peer)
    });
}

/// Records before a connection's first RPC call header is seen are at
/// most this large: a client that has not shown it speaks RPC is not
/// trusted with the memory of a large WRITE.
pub(crate) const UNTRUSTED_MAX_RECORD: usize = 64 << 10;

/// The programs served here: a record that starts as a call to one of them
/// is taken to be RPC.
const PROGRAMS: [u32; 5] = [
    nfs_proto::portmap::PROGRAM,
    nfs_proto::nfs3::PROGRAM,
    nfs_proto::mount::PROGRAM,
    nfs_proto::nlm::PROGRAM,
    nfs_proto::nlm::nsm::PROGRAM,
];

/// Whether a record starting with `b` is an RPC version 2 call to a program
/// served here (xid, CALL, rpcvers, prog); `None` until 16 bytes are there.
pub(crate) fn starts_rpc_call(b: &[u8]) -> Option<bool> {
    let word = |i: usize| {
        b.get(i..i + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let prog = word(12)?;
    Some(word(4)? == 0 && word(8)? == 2 && PROGRAMS.contains(&prog))
}

/// Serve one connection until the client goes or breaks the record stream.
async fn serve(srv: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let limits = FrameLimits {
        untrusted: UNTRUSTED_MAX_RECORD,
        trusted: srv.cfg.max_record,
        in_flight: srv.cfg.max_inflight,
        read_size: 32 << 10,
    };
    let records = Records(RecordReader::new(limits.untrusted.min(limits.trusted)));
    framed::serve(stream, peer, limits, records, |_| NfsConn { srv, peer }).await;
}

/// One client connection: its calls each run as a task of their own.
struct NfsConn {
    srv: Arc<Server>,
    peer: SocketAddr,
}

impl Front for NfsConn {
    type Framing = Records;
    type Admitted = Bytes;
    const NAME: &'static str = "nfs";
    const IDLE_CLOSE: &'static str = "closing an idle connection";

    fn trusts(&self, start: &[u8]) -> Option<bool> {
        starts_rpc_call(start)
    }

    fn admit(&self, rec: Bytes) -> Admit<Bytes> {
        Admit::Run(rec)
    }

    fn run(conn: &Rc<Self>, rec: Bytes) -> impl Future<Output = Option<Vec<Bytes>>> + 'static {
        let (srv, peer) = (conn.srv.clone(), conn.peer);
        async move { crate::dispatch::call(&srv, peer, rec).await }
    }

    /// Silent with no call in progress for `idle_timeout`: closed.
    fn idle(&self, busy: bool, last: Instant) -> Idle {
        let idle_timeout = self.srv.cfg.idle_timeout;
        if busy {
            Idle::AskAt(Instant::now() + idle_timeout)
        } else {
            Idle::CloseAt(last + idle_timeout)
        }
    }

    async fn close(_: Rc<Self>) {}
}

/// RPC record marking, as the connection loop takes it.
struct Records(RecordReader);

cache_engine::framing_for!(Records, RecordError, next_record);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_rpc_call_to_a_served_program_is_trusted_with_a_large_record() {
        let call = |mtype: u32, vers: u32, prog: u32| {
            [7, mtype, vers, prog]
                .iter()
                .flat_map(|w: &u32| w.to_be_bytes())
                .collect::<Vec<u8>>()
        };
        assert_eq!(starts_rpc_call(&call(0, 2, 100_003)), Some(true));
        assert_eq!(starts_rpc_call(&call(0, 2, 100_021)), Some(true));
        assert_eq!(starts_rpc_call(&call(1, 2, 100_003)), Some(false));
        assert_eq!(starts_rpc_call(&call(0, 3, 100_003)), Some(false));
        assert_eq!(starts_rpc_call(&call(0, 2, 12345)), Some(false));
        assert_eq!(starts_rpc_call(&call(0, 2, 100_003)[..15]), None);
    }
}
