//! Connecting to the upstream NAS over TCP from a reserved port when this
//! process may bind one.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use compio::net::TcpStream;

/// Reserved ports a connection may come from (as Linux's NFS client uses).
pub(super) const RESERVED_PORTS: std::ops::RangeInclusive<u16> = 665..=1023;

/// Connect to `addr`: from a reserved port (below 1024) when this process may
/// bind one, as NFS servers exporting with `secure` (knfsd's default) demand
/// of their clients; otherwise from any port.
pub(super) async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let n = RESERVED_PORTS.len();
    let start: usize = rand::random::<u32>() as usize % n;
    for i in 0..n {
        let port = *RESERVED_PORTS.start() + ((start + i) % n) as u16;
        match connect_from(addr, port).await {
            Ok(s) => return Ok(s),
            // Taken (or its connection to `addr` still in TIME_WAIT): the next one.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EADDRINUSE | libc::EADDRNOTAVAIL)) => continue,
            // Not ours to bind: any port will do.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => break,
            Err(e) => return Err(e),
        }
    }
    TcpStream::connect(addr).await
}

/// Connect to `addr` from local port `port`.
async fn connect_from(addr: SocketAddr, port: u16) -> io::Result<TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: socket(2) with constant arguments; the result is checked and owned at once.
    let raw = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor nothing else owns.
    let fd = Rc::new(unsafe { OwnedFd::from_raw_fd(raw) });
    let (local, len) = sockaddr(SocketAddr::new(
        if addr.is_ipv4() {
            [0u8; 4].into()
        } else {
            [0u16; 8].into()
        },
        port,
    ));
    // SAFETY: `local` is a sockaddr of `len` bytes; the descriptor is ours.
    if unsafe { libc::bind(fd.as_raw_fd(), (&raw const local).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let (remote, len) = sockaddr(addr);
    // SAFETY: `remote` is a sockaddr of `len` bytes; the descriptor is ours.
    if unsafe { libc::connect(fd.as_raw_fd(), (&raw const remote).cast(), len) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
        let poll = compio::runtime::fd::PollFd::new(fd.clone())?;
        poll.connect_ready().await?;
        drop(poll);
        let mut err: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `err` and `size` are valid for writes of an int and a socklen_t.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                (&raw mut err).cast(),
                &raw mut size,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        if err != 0 {
            return Err(io::Error::from_raw_os_error(err));
        }
    }
    let fd = Rc::try_unwrap(fd).map_err(|_| io::Error::other("socket still shared after connect"))?;
    let std = std::net::TcpStream::from(fd);
    // The io_uring driver wants a blocking socket; from_std makes it
    // non-blocking again where the driver polls.
    std.set_nonblocking(false)?;
    TcpStream::from_std(std)
}

/// `addr` as a `sockaddr_storage` and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero bytes are a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut ss).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}
