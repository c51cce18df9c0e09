//! A userspace WAN between Weir and the NAS it caches: this kernel has no
//! netem, so tests and benchmarks put this TCP proxy in front of a server to
//! add latency per direction, cap bandwidth, and pull the cable.
//!
//! Every chunk read from one side is stamped with the time it may arrive on
//! the other (when the shared link has finished sending it, plus the one-way
//! latency), and a writer delivers it no earlier. Chunks of one connection
//! travel in order and many are in flight at once, so a stream pays the
//! latency once, not once per chunk. Each connection may have `window` bytes
//! in flight per direction; that credit comes back one reverse latency after
//! delivery, as a TCP acknowledgement would, so a long stream runs at about
//! window / RTT like a long fat link. The bandwidth of each direction is one
//! token bucket shared by every connection.
//!
//! The proxy runs on a small tokio runtime of its own; dropping the
//! [`DelayProxy`] stops it and closes every connection. It measures nothing
//! itself beyond byte counts: timings belong to `benches`.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;

/// Largest chunk read at once, and so the unit of scheduling.
const CHUNK: usize = 64 << 10;
/// What a connection may have in flight per direction unless told otherwise:
/// about what Linux lets a TCP window grow to by default.
pub const DEFAULT_WINDOW: usize = 4 << 20;

/// One direction of the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OneWay {
    /// Added to every byte (propagation delay).
    pub latency: Duration,
    /// Bytes per second, shared by all connections; None: no cap.
    pub bandwidth: Option<u64>,
}

/// The simulated link between clients and the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// From clients to the target.
    pub to_target: OneWay,
    /// From the target back to clients.
    pub from_target: OneWay,
    /// Bytes one connection may have in flight per direction (at least one
    /// 64 KiB chunk). Read when a connection opens.
    pub window: usize,
}

impl Link {
    /// Half of `rtt` each way and the same bandwidth cap (bytes/s) both ways.
    pub fn new(rtt: Duration, bandwidth: Option<u64>) -> Link {
        let way = OneWay {
            latency: rtt / 2,
            bandwidth,
        };
        Link {
            to_target: way,
            from_target: way,
            window: DEFAULT_WINDOW,
        }
    }

    /// No delay and no cap: a plain relay.
    pub fn unlimited() -> Link {
        Link::new(Duration::ZERO, None)
    }

    fn way(&self, dir: Dir) -> OneWay {
        match dir {
            Dir::ToTarget => self.to_target,
            Dir::FromTarget => self.from_target,
        }
    }
}

impl Default for Link {
    fn default() -> Self {
        Link::unlimited()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ToTarget,
    FromTarget,
}

impl Dir {
    fn reverse(self) -> Dir {
        match self {
            Dir::ToTarget => Dir::FromTarget,
            Dir::FromTarget => Dir::ToTarget,
        }
    }
}

/// Whether the cable is pulled, and how many times it was: a connection
/// that saw the count change was open across a cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Cable {
    dark: bool,
    cuts: u64,
}

/// A token bucket whose tokens may go negative: the debt is the queue of
/// bytes the link still has to send.
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Book `n` bytes at `rate` bytes/s; returns when their last byte has left.
    fn book(&mut self, n: usize, rate: u64, now: Instant) -> Instant {
        let rate = rate.max(1) as f64;
        // Up to 10 ms (at least one chunk) of idle link may be used as a burst.
        let depth = (rate / 100.0).max(CHUNK as f64);
        let idle = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + idle * rate).min(depth);
        self.last = now;
        self.tokens -= n as f64;
        if self.tokens >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

struct Shared {
    target: SocketAddr,
    link: Mutex<Link>,
    buckets: [Mutex<Bucket>; 2],
    cable: watch::Sender<Cable>,
    to_target: AtomicU64,
    from_target: AtomicU64,
    open: AtomicUsize,
}

impl Shared {
    fn link(&self) -> Link {
        *self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bucket(&self, dir: Dir) -> &Mutex<Bucket> {
        &self.buckets[dir as usize]
    }

    fn delivered(&self, dir: Dir) -> &AtomicU64 {
        match dir {
            Dir::ToTarget => &self.to_target,
            Dir::FromTarget => &self.from_target,
        }
    }

    /// When a chunk of `n` bytes read now may arrive at the far end.
    fn due(&self, dir: Dir, n: usize) -> Instant {
        let now = Instant::now();
        let way = self.link().way(dir);
        let sent = match way.bandwidth {
            Some(rate) => self
                .bucket(dir)
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .book(n, rate, now),
            None => now,
        };
        sent + way.latency
    }
}

/// A running delay proxy; dropping it stops it and closes its connections.
pub struct DelayProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl DelayProxy {
    /// Listen on 127.0.0.1 (a free port) and relay to `target` over `link`.
    pub fn start(target: SocketAddr, link: Link) -> io::Result<DelayProxy> {
        DelayProxy::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), target, link)
    }

    /// As [`DelayProxy::start`], listening on `listen`.
    pub fn start_on(listen: SocketAddr, target: SocketAddr, link: Link) -> io::Result<DelayProxy> {
        let listener = StdListener::bind(listen)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("delay-proxy")
            .enable_all()
            .build()?;
        let now = Instant::now();
        let bucket = || {
            Mutex::new(Bucket {
                tokens: 0.0,
                last: now,
            })
        };
        let shared = Arc::new(Shared {
            target,
            link: Mutex::new(link),
            buckets: [bucket(), bucket()],
            cable: watch::Sender::new(Cable::default()),
            to_target: AtomicU64::new(0),
            from_target: AtomicU64::new(0),
            open: AtomicUsize::new(0),
        });
        let listener = {
            let _ctx = runtime.enter();
            TcpListener::from_std(listener)?
        };
        runtime.spawn(accept_loop(listener, shared.clone()));
        Ok(DelayProxy {
            addr,
            shared,
            runtime: Some(runtime),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    pub fn link(&self) -> Link {
        self.shared.link()
    }

    /// Change the link; latency and bandwidth apply to chunks read from now
    /// on, the window to connections opened from now on.
    pub fn set_link(&self, link: Link) {
        *self.shared.link.lock().unwrap_or_else(|p| p.into_inner()) = link;
    }

    /// Pull the cable: open connections stop delivering both ways, and new
    /// ones are left waiting in the listen queue (their handshake may
    /// complete in the kernel, but nothing answers them).
    pub fn cut(&self) {
        self.shared.cable.send_modify(|c| {
            if !c.dark {
                c.dark = true;
                c.cuts += 1;
            }
        });
    }

    /// Plug the cable back in: connections that were open across the cut are
    /// closed (what they had in flight is lost), and new ones — including
    /// those that waited in the listen queue — are relayed again.
    pub fn restore(&self) {
        self.shared.cable.send_modify(|c| c.dark = false);
    }

    /// Whether the cable is pulled.
    pub fn is_cut(&self) -> bool {
        self.shared.cable.borrow().dark
    }

    /// Bytes delivered to the target so far.
    pub fn bytes_to_target(&self) -> u64 {
        self.shared.to_target.load(Ordering::Relaxed)
    }

    /// Bytes delivered from the target to clients so far.
    pub fn bytes_from_target(&self) -> u64 {
        self.shared.from_target.load(Ordering::Relaxed)
    }

    /// Connections open now (accepted and not yet closed).
    pub fn connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Safe inside another runtime too; tasks and sockets drop with it.
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut cable = shared.cable.subscribe();
    loop {
        // While the cable is pulled, nobody is accepted.
        if cable.wait_for(|c| !c.dark).await.is_err() {
            return;
        }
        let accepted = tokio::select! {
            biased;
            _ = cable.wait_for(|c| c.dark) => continue,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((client, _)) => {
                tokio::spawn(connection(client, shared.clone()));
            }
            // Out of descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// Counts an open connection for as long as it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(client: TcpStream, shared: Arc<Shared>) {
    shared.open.fetch_add(1, Ordering::Relaxed);
    let _open = OpenGuard(shared.clone());
    let mut cable = shared.cable.subscribe();
    // Accepted just as the cable was pulled: as unanswered as the listen queue.
    let cuts = match cable.wait_for(|c| !c.dark).await {
        Ok(c) => c.cuts,
        Err(_) => return,
    };
    // Resolves once the cable was pulled since this connection opened.
    let mut cut_seen = cable.clone();
    let cut = async move {
        let _ = cut_seen.wait_for(|c| c.cuts != cuts).await;
    };
    tokio::pin!(cut);
    let upstream = tokio::select! {
        s = TcpStream::connect(shared.target) => s,
        _ = &mut cut => {
            let _ = cable.wait_for(|c| !c.dark).await;
            return;
        }
    };
    let Ok(upstream) = upstream else { return };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let window = shared.link().window.max(CHUNK);
    let relay = async {
        tokio::try_join!(
            pump(&mut cr, &mut uw, &shared, Dir::ToTarget, window),
            pump(&mut ur, &mut cw, &shared, Dir::FromTarget, window),
        )
    };
    tokio::select! {
        _ = relay => {}
        _ = &mut cut => {
            // The relay is dropped but the sockets stay open, silent, until
            // the cable is back; then they close and the peers reconnect.
            let _ = cable.wait_for(|c| !c.dark).await;
        }
    }
}

enum Segment {
    Data(Instant, Vec<u8>),
    Eof(Instant),
}

/// Relay one direction: read chunks, stamp them with their arrival time,
/// deliver each no earlier, and forward the end of the stream the same way.
async fn pump(
    src: &mut OwnedReadHalf,
    dst: &mut OwnedWriteHalf,
    shared: &Shared,
    dir: Dir,
    window: usize,
) -> io::Result<()> {
    let credit = Arc::new(Semaphore::new(window));
    let (tx, mut rx) = mpsc::unbounded_channel::<Segment>();
    let read = async {
        let closed = || io::Error::from(io::ErrorKind::BrokenPipe);
        loop {
            let want = CHUNK.min(window);
            credit
                .acquire_many(want as u32)
                .await
                .map_err(|_| closed())?
                .forget();
            let mut buf = vec![0u8; want];
            let n = src.read(&mut buf).await?;
            credit.add_permits(want - n);
            if n == 0 {
                tx.send(Segment::Eof(shared.due(dir, 0))).map_err(|_| closed())?;
                return Ok::<(), io::Error>(());
            }
            buf.truncate(n);
            tx.send(Segment::Data(shared.due(dir, n), buf))
                .map_err(|_| closed())?;
        }
    };
    let write = async {
        while let Some(seg) = rx.recv().await {
            match seg {
                Segment::Data(due, buf) => {
                    tokio::time::sleep_until(due).await;
                    dst.write_all(&buf).await?;
                    let n = buf.len();
                    shared.delivered(dir).fetch_add(n as u64, Ordering::Relaxed);
                    let ack = shared.link().way(dir.reverse()).latency;
                    if ack.is_zero() {
                        credit.add_permits(n);
                    } else {
                        let credit = credit.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(ack).await;
                            credit.add_permits(n);
                        });
                    }
                }
                Segment::Eof(due) => {
                    tokio::time::sleep_until(due).await;
                    dst.shutdown().await?;
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    tokio::try_join!(read, write).map(|_| ())
}
