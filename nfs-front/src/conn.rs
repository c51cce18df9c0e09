//! Listening and connections, on the shard threads.
//!
//! Each connection has a reader (this task: records in, one task per call)
//! and a writer (one task: replies out, several per vectored write, never
//! interleaved). A READ reply is its header followed by the engine's own
//! buffers, so cached data is not copied on the way to the socket.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use cache_engine::front::large;
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
    cache_engine::front::spawn_acceptor("nfs", l, stop, spread, move |stream, peer| {
        serve(srv.clone(), stream, peer)
    });
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
    let mut records = RecordReader::new(srv.cfg.max_record);
    // A large record read by itself, to run before the buffered ones.
    let mut pending: Option<Bytes> = None;
    'conn: loop {
        loop {
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
        match large::read_taken(&mut rd, records.take_partial(large::MIN)).await {
            Ok(Some(rec)) => {
                pending = Some(rec);
                continue;
            }
            Ok(None) => {}
            Err(()) => break,
        }
        let mut buf = std::mem::take(records.buffer());
        buf.reserve(records.wanted().clamp(32 << 10, srv.cfg.max_record + 4));
        // compio fills a buffer from its start: read into the part after what is held.
        let held = buf.len();
        let BufResult(res, slice) = rd.read(buf.slice(held..)).await;
        *records.buffer() = slice.into_inner();
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
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
