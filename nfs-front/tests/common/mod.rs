//! A real engine over a temp dir, the NFS front end on 127.0.0.1:0, and a
//! blocking RPC client: nfs-proto's sans-IO client over a std socket.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cache_engine::filer::local::LocalFiler;
use cache_engine::test_support::engine_config;
use cache_engine::{Engine, EngineConfig};
use nfs_front::{Access, ExportConfig, NfsConfig, NfsServer, RuleConfig, Squash};
use nfs_proto::mount::{self, MountRes3};
use nfs_proto::nfs3::{self, Nfs3Args, Nfs3Res, NfsFh3};
use nfs_proto::rpc::{decode_reply, AuthSysParams, OpaqueAuth, ReplyHeader};
use nfs_proto::xdr::{Encoder, List, Opaque, Xdr};
use nfs_proto::Decoder;

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub engine: Engine,
    pub server: NfsServer,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // From a failing test, waking the shards would abort the process
        // and hide the failure: leave them to the process exit.
        if !std::thread::panicking() {
            self.server.stop();
            self.engine.shutdown();
        }
    }
}

impl Fixture {
    pub fn origin(&self) -> PathBuf {
        self.dir.path().join("origin")
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// Stop the server and the engine, keeping the directory for a restart.
    pub fn stop(mut self) -> tempfile::TempDir {
        std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap())
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }
}

pub fn start_in(dir: tempfile::TempDir, tune: impl FnOnce(&mut NfsConfig)) -> Fixture {
    let _ = std::fs::create_dir(dir.path().join("origin"));
    let filer = LocalFiler::open(&dir.path().join("origin")).unwrap();
    // No NVMe tier: what a test reads back comes from RAM or the origin.
    let cfg = EngineConfig {
        cache_bytes: 0,
        ..engine_config(dir.path())
    };
    let engine = Engine::start(cfg, Arc::new(filer)).unwrap();
    let mut cfg = NfsConfig::new("127.0.0.1:0".parse().unwrap());
    // Tests act as root from ordinary ports, so they say so (the embedded
    // default squashes root and wants privileged ports).
    cfg.exports = vec![ExportConfig {
        path: "/export".into(),
        subdir: "/".into(),
        rules: vec![insecure(&["127.0.0.0/8"], Access::Rw, Squash::None)],
    }];
    tune(&mut cfg);
    let server = NfsServer::start(engine.clone(), cfg).unwrap();
    Fixture { dir, engine, server }
}

/// A rule that also admits clients on unprivileged ports, as the tests' are.
pub fn insecure(clients: &[&str], access: Access, squash: Squash) -> RuleConfig {
    RuleConfig {
        secure: false,
        ..RuleConfig::new(clients, access, squash)
    }
}

pub fn start(tune: impl FnOnce(&mut NfsConfig)) -> Fixture {
    start_in(tempfile::tempdir().unwrap(), tune)
}

fn bound_stream(to: SocketAddr, from: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(to), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    s.bind(&from.into())?;
    s.connect(&to.into())?;
    Ok(s.into())
}

pub struct Client {
    pub s: TcpStream,
    rpc: nfs_proto::client::Client,
    pub cred: OpaqueAuth,
}

pub fn sys(uid: u32, gid: u32) -> OpaqueAuth {
    OpaqueAuth::sys(&AuthSysParams {
        stamp: 1,
        machine_name: Opaque::new(&b"testclient"[..]),
        uid,
        gid,
        gids: List(vec![gid]),
    })
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Self::over(TcpStream::connect(addr).unwrap())
    }

    /// A client calling from `from` (an address, and a port or 0).
    pub fn connect_from(addr: SocketAddr, from: SocketAddr) -> Client {
        Self::over(bound_stream(addr, from).unwrap())
    }

    /// A client on a privileged source port (below 1024; needs root).
    pub fn connect_privileged(addr: SocketAddr) -> Client {
        let s = (600..1024)
            .find_map(|port| bound_stream(addr, SocketAddr::new(addr.ip(), port)).ok())
            .expect("no free privileged port (do the tests run as root?)");
        Self::over(s)
    }

    fn over(s: TcpStream) -> Client {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Client {
            s,
            rpc: nfs_proto::client::Client::new(2, 8 << 20),
            cred: sys(0, 0),
        }
    }

    /// Send one call without waiting; returns its xid.
    pub fn send(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> u32 {
        let args = [Bytes::copy_from_slice(args)];
        let (xid, record) = self.rpc.call(prog, vers, proc_, &self.cred, &args);
        self.s.write_all(&record.concat()).unwrap();
        xid
    }

    /// The next whole record; None when the server closed the connection.
    pub fn record(&mut self) -> Option<Bytes> {
        loop {
            if let Some((_, r)) = self.rpc.next_reply().unwrap() {
                return Some(r);
            }
            let mut buf = [0u8; 65536];
            match self.s.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.rpc.buffer().extend_from_slice(&buf[..n]),
            }
        }
    }

    pub fn reply(&mut self) -> (ReplyHeader, Decoder) {
        decode_reply(self.record().expect("connection closed")).unwrap()
    }

    pub fn call_raw(&mut self, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> (ReplyHeader, Decoder) {
        let xid = self.send(prog, vers, proc_, args);
        let (h, d) = self.reply();
        assert_eq!(h.xid, xid);
        (h, d)
    }

    pub fn nfs(&mut self, args: Nfs3Args) -> Nfs3Res {
        let mut e = Encoder::new();
        args.encode(&mut e);
        let p = args.proc_();
        let (h, mut d) = self.call_raw(nfs3::PROGRAM, 3, p as u32, e.as_slice());
        assert_eq!(h.stat, nfs_proto::rpc::ReplyStat::Success, "{p:?}");
        Nfs3Res::decode(p, &mut d).unwrap()
    }

    pub fn mnt(&mut self, path: &str) -> MountRes3 {
        let arg = mount::DirPath::new(path.as_bytes().to_vec()).to_bytes();
        let (h, d) = self.call_raw(mount::PROGRAM, 3, 1, &arg);
        assert_eq!(h.stat, nfs_proto::rpc::ReplyStat::Success);
        MountRes3::from_bytes(d.rest()).unwrap()
    }

    pub fn root(&mut self, path: &str) -> NfsFh3 {
        match self.mnt(path) {
            MountRes3::Ok(ok) => {
                assert_eq!(ok.auth_flavors.0, vec![1]);
                ok.fhandle
            }
            MountRes3::Err(e) => panic!("mount {path}: {e:?}"),
        }
    }
}
