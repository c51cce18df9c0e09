//! Listening and connections, on the shard threads.
//!
//! Each connection has a reader (this task: records in, one task per call)
//! and a writer (one task: replies out, several per vectored write, never
//! interleaved). A READ reply is its header followed by the engine's own
//! buffers, so cached data is not copied on the way to the socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cache_engine::front::large;
use cache_engine::front::limits::{read_or_idle, Idle};
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWriteExt};
use compio::net::TcpStream;
use futures::channel::mpsc;
use futures::StreamExt;
use nfs_proto::record::RecordReader;

use crate::Server;

/// Most buffers handed to one vectored write (the kernel takes up to 1024).
const MAX_IOVECS: usize = 512;

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
    let (mut rd, wr) = stream.into_split();
    // Tokens bound the calls in flight: one is taken per call and returned
    // once its reply is on the socket, so a client that stops reading stops
    // being served instead of piling replies up here.
    let (permit_tx, permit_rx) = async_channel::bounded::<()>(srv.cfg.max_inflight.max(1));
    let (tx, rx) = mpsc::unbounded::<Vec<Bytes>>();
    let writer = compio::runtime::spawn(write_loop(wr, rx, permit_rx.clone()));
    let mut records = RecordReader::new(UNTRUSTED_MAX_RECORD.min(srv.cfg.max_record));
    let mut trusted = false;
    let last = std::cell::Cell::new(Instant::now());
    // Silent with no call in progress for `idle_timeout`: closed.
    let idle_timeout = srv.cfg.idle_timeout;
    let idle = || {
        if permit_tx.is_empty() {
            Idle::CloseAt(last.get() + idle_timeout)
        } else {
            Idle::AskAt(Instant::now() + idle_timeout)
        }
    };
    // A large record read by itself, to run before the buffered ones.
    let mut pending: Option<Bytes> = None;
    'conn: loop {
        loop {
            if !trusted {
                if let Some((len, start)) = records.in_progress() {
                    match starts_rpc_call(start) {
                        Some(true) => {
                            trusted = true;
                            records.set_max(srv.cfg.max_record);
                        }
                        // Too long unless it is a call, whose start has yet
                        // to arrive: read on before judging it.
                        None if len > UNTRUSTED_MAX_RECORD => break,
                        _ => {}
                    }
                }
            }
            let next = match pending.take() {
                Some(rec) => Ok(Some(rec)),
                None => records.next_record(),
            };
            match next {
                Ok(Some(rec)) => {
                    cache_engine::note_work();
                    if permit_tx.send(()).await.is_err() {
                        break 'conn;
                    }
                    let (srv, tx, permit) = (srv.clone(), tx.clone(), permit_rx.clone());
                    let mut call = Box::pin(async move {
                        match crate::dispatch::call(&srv, peer, rec).await {
                            // The connection may be gone: drop the reply quietly.
                            Some(reply) => {
                                let _ = tx.unbounded_send(reply);
                            }
                            None => {
                                let _ = permit.try_recv();
                            }
                        }
                    });
                    // Most calls (cached metadata, reads of cached data on this
                    // shard) finish without waiting: run them here, and give
                    // only those that must wait a task of their own.
                    if futures::poll!(call.as_mut()).is_pending() {
                        compio::runtime::spawn(call).detach();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, "nfs: closing connection: {e}");
                    break 'conn;
                }
            }
        }
        let taken = if trusted {
            records.take_partial(large::MIN)
        } else {
            Ok(None)
        };
        match large::read_taken(&mut rd, taken, idle).await {
            Ok(Some(rec)) => {
                last.set(Instant::now());
                pending = Some(rec);
                continue;
            }
            Ok(None) => {}
            Err(()) => break,
        }
        let mut buf = std::mem::take(records.buffer());
        let most = if trusted {
            srv.cfg.max_record
        } else {
            UNTRUSTED_MAX_RECORD
        };
        buf.reserve(records.wanted().clamp(32 << 10, most + 4));
        // compio fills a buffer from its start: read into the part after what is held.
        let held = buf.len();
        let Some(BufResult(res, slice)) = read_or_idle(rd.read(buf.slice(held..)), idle).await else {
            tracing::debug!(%peer, "nfs: closing an idle connection");
            break;
        };
        *records.buffer() = slice.into_inner();
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => last.set(Instant::now()),
        }
    }
    drop(tx);
    // Calls still running hold senders; the writer ends once they finish.
    let _ = writer.await;
}

async fn write_loop(
    mut wr: TcpStream,
    mut rx: mpsc::UnboundedReceiver<Vec<Bytes>>,
    permits: async_channel::Receiver<()>,
) {
    while let Some(mut bufs) = rx.next().await {
        let mut replies = 1;
        while bufs.len() < MAX_IOVECS {
            match rx.try_recv() {
                Ok(more) => {
                    bufs.extend(more);
                    replies += 1;
                }
                _ => break,
            }
        }
        let BufResult(res, _) = wr.write_vectored_all(bufs).await;
        if res.is_err() {
            // The client went away mid-reply: nothing to tell anyone.
            permits.close();
            break;
        }
        for _ in 0..replies {
            let _ = permits.try_recv();
        }
    }
}

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
