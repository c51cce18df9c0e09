//! One connection of a front end, whatever its framing (ONC RPC record
//! marking, SMB's direct-TCP header): a reader that takes messages out of
//! the byte stream in arrival order and runs each as a task, and one writer
//! that sends the replies, several per vectored write, never interleaved.
//!
//! The limits apply here once for every front end: messages are bounded
//! small until the client has shown it speaks the protocol (then large
//! ones are read into buffers of their own, within the receive budget of
//! [`super::large`]), a connection silent too long is closed, and a permit
//! is taken per message, given back once its reply is on the socket (or at
//! once when it has none), so a client that stops reading its replies
//! stops being served instead of piling them up here.

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

pub use bytes::{Bytes, BytesMut};
use compio::buf::{BufResult, IntoInner, IoBuf};
use compio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use compio::net::TcpStream;
use futures::channel::mpsc;
use futures::StreamExt;

use super::large;
use super::limits::{read_or_idle, Idle};

/// Most buffers handed to one vectored write (the kernel takes up to 1024).
const MAX_IOVECS: usize = 512;

/// A sans-IO reassembler of one protocol's messages: bytes read from the
/// connection are appended to [`Framing::buffer`], whole messages come out.
pub trait Framing {
    type Error: std::fmt::Display;
    /// Bytes read from the connection go here.
    fn buffer(&mut self) -> &mut BytesMut;
    /// How many more bytes the message in progress needs at least.
    fn wanted(&self) -> usize;
    /// Bound each message from now on.
    fn set_max(&mut self, max: usize);
    /// The message in progress, once its header has arrived: how long it
    /// is and those of its first bytes that have arrived.
    fn in_progress(&self) -> Option<(usize, &[u8])>;
    /// The message in progress when it is at least `min` bytes long and
    /// has not all arrived: its length and what has, taken out of the
    /// buffer (the caller reads the rest itself).
    fn take_partial(&mut self, min: usize) -> Result<Option<(usize, BytesMut)>, Self::Error>;
    /// The next whole message, if one has arrived. An error means the
    /// stream is unusable: the connection is closed.
    fn next_message(&mut self) -> Result<Option<Bytes>, Self::Error>;
}

/// Implements [`Framing`] for `$wrapper`, a one-field tuple struct around
/// a protocol's reassembler, which has `buffer`, `wanted`, `set_max`,
/// `in_progress` and `take_partial` of the same meaning, and `$next` for
/// the next whole message; `$err` is its error.
#[macro_export]
macro_rules! framing_for {
    ($wrapper:ty, $err:ty, $next:ident) => {
        impl $crate::front::framed::Framing for $wrapper {
            type Error = $err;
            fn buffer(&mut self) -> &mut $crate::front::framed::BytesMut {
                self.0.buffer()
            }
            fn wanted(&self) -> usize {
                self.0.wanted()
            }
            fn set_max(&mut self, max: usize) {
                self.0.set_max(max)
            }
            fn in_progress(&self) -> Option<(usize, &[u8])> {
                self.0.in_progress()
            }
            fn take_partial(
                &mut self,
                min: usize,
            ) -> Result<Option<(usize, $crate::front::framed::BytesMut)>, $err> {
                self.0.take_partial(min)
            }
            fn next_message(&mut self) -> Result<Option<$crate::front::framed::Bytes>, $err> {
                self.0.$next()
            }
        }
    };
}

/// How one front end serves a connection's messages. One value per
/// connection, living on the shard thread that serves it.
pub trait Front: Sized + 'static {
    type Framing: Framing;
    /// A message the front end admitted, ready to run.
    type Admitted: 'static;
    /// Names the front end in log lines.
    const NAME: &'static str;
    /// Said in the log when `idle` closes a connection.
    const IDLE_CLOSE: &'static str;
    /// Whether the client may send messages up to the trusted size, judged
    /// when a message is in progress (`start`: its first bytes that have
    /// arrived); `None` when that cannot be told from what has arrived.
    fn trusts(&self, start: &[u8]) -> Option<bool>;
    /// Take one message in, in arrival order.
    fn admit(&self, msg: Bytes) -> Admit<Self::Admitted>;
    /// Serve one admitted message; its reply (`None`: none is sent) is
    /// queued behind what the task sent through the [`Outbox`] itself.
    fn run(conn: &Rc<Self>, msg: Self::Admitted) -> impl Future<Output = Option<Vec<Bytes>>> + 'static;
    /// When the connection may be closed if nothing arrives; `busy` when
    /// some message has not had its reply sent yet, `last` when the client
    /// last sent something.
    fn idle(&self, busy: bool, last: Instant) -> Idle;
    /// The connection's reader is done: release what it held.
    fn close(conn: Rc<Self>) -> impl Future<Output = ()>;
}

/// What becomes of a message taken in.
pub enum Admit<T> {
    /// Run it.
    Run(T),
    /// It was answered as it was taken in, or needs no answer.
    Done,
    /// Close the connection.
    Close,
}

/// Sizes that bound one connection's reading.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Largest message before the client is trusted.
    pub untrusted: usize,
    /// Largest message once it is.
    pub trusted: usize,
    /// Messages whose replies are not yet sent before the reader waits.
    pub in_flight: usize,
    /// Room made in the read buffer before each read, at least.
    pub read_size: usize,
}

enum Out {
    Send(Vec<Bytes>, Option<Permit>),
    HangUp,
}

/// Where a connection's messages to the client go, in the order given.
#[derive(Clone)]
pub struct Outbox(mpsc::UnboundedSender<Out>);

impl Outbox {
    /// Queue buffers to send as they are (the connection may be gone:
    /// then they are dropped quietly).
    pub fn send(&self, bufs: Vec<Bytes>) {
        let _ = self.0.unbounded_send(Out::Send(bufs, None));
    }

    /// Send what is queued, then close the connection.
    pub fn hang_up(&self) {
        let _ = self.0.unbounded_send(Out::HangUp);
    }
}

/// Messages in flight on one connection: a bounded channel of tokens.
struct InFlight {
    tx: async_channel::Sender<()>,
    rx: async_channel::Receiver<()>,
}

impl InFlight {
    fn new(n: usize) -> InFlight {
        let (tx, rx) = async_channel::bounded(n.max(1));
        InFlight { tx, rx }
    }

    /// Wait for room for one more; `None` once the writer is gone.
    async fn take(&self) -> Option<Permit> {
        self.tx.send(()).await.ok()?;
        Some(Permit(self.rx.clone()))
    }

    fn busy(&self) -> bool {
        !self.tx.is_empty()
    }
}

/// One message in flight; dropped when its reply is on the socket.
struct Permit(async_channel::Receiver<()>);

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

/// Serve one connection with `make`'s front end until the client goes or
/// breaks the stream, or `idle` says it was silent too long.
pub async fn serve<F: Front>(
    stream: TcpStream,
    peer: SocketAddr,
    limits: FrameLimits,
    mut framing: F::Framing,
    make: impl FnOnce(Outbox) -> F,
) {
    let (mut rd, wr) = stream.into_split();
    let flight = InFlight::new(limits.in_flight);
    let (tx, rx) = mpsc::unbounded::<Out>();
    let writer = compio::runtime::spawn(write_loop(wr, rx, flight.rx.clone()));
    let conn = Rc::new(make(Outbox(tx.clone())));
    let untrusted = limits.untrusted.min(limits.trusted);
    framing.set_max(untrusted);
    let mut trusted = false;
    let last = Cell::new(Instant::now());
    let idle = || conn.idle(flight.busy(), last.get());
    // A large message read by itself, to run before the buffered ones.
    let mut pending: Option<Bytes> = None;
    'conn: loop {
        loop {
            if !judge(&*conn, &mut framing, &limits, &mut trusted) {
                break;
            }
            let next = match pending.take() {
                Some(msg) => Ok(Some(msg)),
                None => framing.next_message(),
            };
            match next {
                Ok(Some(msg)) => {
                    crate::note_work();
                    let msg = match conn.admit(msg) {
                        Admit::Run(m) => m,
                        Admit::Done => continue,
                        Admit::Close => break 'conn,
                    };
                    let Some(permit) = flight.take().await else {
                        break 'conn;
                    };
                    let job = F::run(&conn, msg);
                    let out = tx.clone();
                    let mut task = Box::pin(async move {
                        if let Some(reply) = job.await {
                            let _ = out.unbounded_send(Out::Send(reply, Some(permit)));
                        }
                    });
                    // Most messages (cached metadata, reads of cached data on
                    // this shard) finish without waiting: run them here, and
                    // give only those that must wait a task of their own.
                    if futures::poll!(task.as_mut()).is_pending() {
                        compio::runtime::spawn(task).detach();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, "{}: closing connection: {e}", F::NAME);
                    break 'conn;
                }
            }
        }
        judge(&*conn, &mut framing, &limits, &mut trusted);
        let taken = if trusted {
            framing.take_partial(large::MIN)
        } else {
            Ok(None)
        };
        match large::read_taken(&mut rd, taken, idle).await {
            Ok(Some(msg)) => {
                last.set(Instant::now());
                pending = Some(msg);
                continue;
            }
            Ok(None) => {}
            Err(()) => break,
        }
        let mut buf = std::mem::take(framing.buffer());
        let most = if trusted { limits.trusted } else { untrusted };
        buf.reserve(framing.wanted().min(most + 4).max(limits.read_size));
        // compio fills a buffer from its start: read into the part after what is held.
        let held = buf.len();
        let Some(BufResult(res, slice)) = read_or_idle(rd.read(buf.slice(held..)), idle).await else {
            tracing::debug!(%peer, "{}: {}", F::NAME, F::IDLE_CLOSE);
            break;
        };
        *framing.buffer() = slice.into_inner();
        match res {
            Ok(0) | Err(_) => break,
            Ok(_) => last.set(Instant::now()),
        }
    }
    F::close(conn).await;
    drop(tx);
    // Tasks still running hold senders; the writer ends once they finish.
    let _ = writer.await;
}

/// Trust the client with large messages once the front end says so.
/// False when the message in progress is too large for an untrusted
/// client and cannot be judged yet: read more of it first.
fn judge<F: Front>(conn: &F, framing: &mut F::Framing, limits: &FrameLimits, trusted: &mut bool) -> bool {
    if *trusted {
        return true;
    }
    let Some((len, start)) = framing.in_progress() else {
        return true;
    };
    match conn.trusts(start) {
        Some(true) => {
            *trusted = true;
            framing.set_max(limits.trusted);
            true
        }
        None => len <= limits.untrusted.min(limits.trusted),
        Some(false) => true,
    }
}

async fn write_loop(
    mut wr: TcpStream,
    mut rx: mpsc::UnboundedReceiver<Out>,
    permits: async_channel::Receiver<()>,
) {
    let mut hung_up = false;
    while let Some(first) = rx.next().await {
        let mut bufs = Vec::new();
        let mut sent = Vec::new();
        let mut take = |out: Out, bufs: &mut Vec<Bytes>| match out {
            Out::Send(b, permit) => {
                bufs.extend(b);
                sent.extend(permit);
                false
            }
            Out::HangUp => true,
        };
        hung_up = take(first, &mut bufs);
        while !hung_up && bufs.len() < MAX_IOVECS {
            match rx.try_recv() {
                Ok(more) => hung_up = take(more, &mut bufs),
                Err(_) => break,
            }
        }
        let mut failed = false;
        if !bufs.is_empty() {
            let BufResult(res, _) = wr.write_vectored_all(bufs).await;
            // The client went away mid-reply: nothing to tell anyone.
            failed = res.is_err();
        }
        drop(sent);
        if hung_up || failed {
            break;
        }
    }
    // The reader takes no more messages in.
    permits.close();
    if hung_up {
        // The reader may be waiting for more: the client sees the close now.
        let _ = wr.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_permit_is_given_back_when_dropped_and_the_writer_closes_them_all() {
        compio::runtime::Runtime::new().unwrap().block_on(async {
            let f = InFlight::new(2);
            let a = f.take().await.unwrap();
            let b = f.take().await.unwrap();
            assert!(f.busy());
            drop(a);
            let c = f.take().await.unwrap();
            drop((b, c));
            assert!(!f.busy());
            f.rx.close();
            assert!(f.take().await.is_none());
        });
    }
}
