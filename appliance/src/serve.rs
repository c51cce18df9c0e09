//! `weir serve`: check the configuration and the directories it names, start
//! the metrics endpoint, the engine and the admin socket, say what is served,
//! and run until SIGINT or SIGTERM.

use std::fs;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use cache_engine::{Engine, Mount};
use core_filer::local::LocalFiler;
use core_filer::nfs::{NfsConfig, NfsFiler};
use core_filer::CoreFiler;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

use crate::admin::{self, AdminSocket};
use crate::config::{Config, ServeFlags, Settings};
use crate::filer_url::CoreFilerUrl;
use crate::metrics_http;
use crate::units::ByteSize;

/// Shuts the engine down however `run` ends after it started.
struct Running(Engine);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// Write everything dirty back (clients are gone by now); what cannot be
/// written stays in the journal for the next start.
fn flush_before_exit(sidecar: &tokio::runtime::Handle, engine: &cache_engine::Engine) {
    tracing::info!("writing dirty data back before stopping");
    match sidecar.block_on(engine.flush(None)) {
        Ok(r) if r.parked.is_empty() => {
            tracing::info!(files = r.files, bytes = r.bytes, "all dirty data written back")
        }
        Ok(r) => tracing::warn!(
            files = r.files,
            bytes = r.bytes,
            kept = r.parked.len(),
            "some files could not be written back; the journal keeps them"
        ),
        Err(e) => tracing::warn!("flush before stopping: {e}; the journal keeps what was dirty"),
    }
}

pub fn run(flags: &ServeFlags) -> anyhow::Result<()> {
    let settings = Config::from_flags(flags)?.validate()?;
    init_tracing(&settings.log)?;

    ensure_writable_dir("data dir", "server.data_dir", &settings.data_dir)?;
    if settings.engine.cache_bytes > 0 {
        ensure_writable_dir("cache dir", "cache.dir", &settings.engine.cache_dir)?;
    }
    let location = match &settings.core_filer {
        CoreFilerUrl::Local(dir) => {
            check_origin(dir, settings.origin_is_default)?;
            absolute(dir).display().to_string()
        }
        nfs @ CoreFilerUrl::Nfs { .. } => nfs.to_string(),
        other => bail!(
            "the `{}` core filer is not available in this build yet",
            other.kind()
        ),
    };

    // Before anything starts: a second server on this data dir is refused here.
    let mut admin = AdminSocket::bind(&settings.data_dir)?;
    // Named ports are bound before any the kernel picks (port 0), so that a
    // picked port can never be one named for another listener.
    let named_metrics = match settings.metrics_listen.port() {
        0 => None,
        _ => Some(metrics_http::bind(settings.metrics_listen)?),
    };
    let metrics = metrics_http::install_recorder()?;
    ::metrics::gauge!("weir_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);

    raise_open_files(2 * (settings.nfs.limits.max_connections + settings.smb.limits.max_connections));
    let (budget, wait) = settings.receive_budget;
    cache_engine::front::large::set_receive_budget(budget, wait);
    let mounts = open_mounts(&settings)?;
    let engine = Engine::start_namespace(settings.engine.clone(), mounts, settings.junctions.clone())
        .map_err(|e| anyhow!("cannot start the cache engine: {e}"))?;
    let running = Running(engine);
    let start_nfs = || {
        nfs_front::NfsServer::start(running.0.clone(), settings.nfs.clone()).map_err(|e| match e {
            nfs_front::StartError::Listen { addr, source } => {
                listen_error("NFS", addr, &source, "another NFS server or rpcbind?", "nfs")
            }
            other => anyhow!("NFS front end: {other}"),
        })
    };
    let start_smb = || {
        smb_front::SmbServer::start(running.0.clone(), settings.smb.clone()).map_err(|e| match e {
            smb_front::StartError::Listen { addr, source } => {
                listen_error("SMB", addr, &source, "Samba's smbd?", "smb")
            }
            other => anyhow!("SMB front end: {other}"),
        })
    };
    let (nfs, smb) = if settings.nfs.listen.port() == 0 && settings.smb.listen.port() != 0 {
        let smb = start_smb()?;
        (start_nfs()?, smb)
    } else {
        let nfs = start_nfs()?;
        (nfs, start_smb()?)
    };
    let listener = match named_metrics {
        Some(l) => l,
        None => metrics_http::bind(settings.metrics_listen)?,
    };
    let metrics_addr = listener.local_addr()?;
    let sidecar = running.0.sidecar().clone();
    sidecar.spawn(metrics_http::serve(listener, metrics));
    let ctx = admin::Context {
        engine: running.0.clone(),
        exports: nfs.export_roots(),
    };
    admin.serve(&sidecar, Arc::new(ctx))?;

    let (mut interrupt, mut terminate) = {
        let _ctx = sidecar.enter();
        let int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        (int, term)
    };
    print_banner(
        &settings,
        &location,
        &running.0,
        metrics_addr,
        &nfs,
        &smb,
        admin.path(),
    );
    tracing::info!(shards = running.0.shard_count(), "serving");

    let which = sidecar.block_on(async {
        tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
        }
    });
    tracing::info!("{which}: shutting down");
    drop((interrupt, terminate));
    drop(admin);
    drop(smb);
    drop(nfs);
    if settings.flush_on_exit {
        flush_before_exit(&sidecar, &running.0);
    }
    drop(running);
    tracing::info!("stopped");
    Ok(())
}

/// Logs go to stderr; `RUST_LOG` wins over `server.log`.
/// Let the process hold as many descriptors as its hard limit allows: the
/// usual soft limit of 1024 would refuse connections long before
/// `[limits]` does. Warns when even the hard limit is below `wanted`.
fn raise_open_files(wanted: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
    if (lim.rlim_cur as usize) < wanted {
        tracing::warn!(
            "at most {} open files (RLIMIT_NOFILE): fewer connections than [limits] allows can be served",
            lim.rlim_cur
        );
    }
}

fn init_tracing(default: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => EnvFilter::builder()
            .parse(&env)
            .map_err(|e| anyhow!("RUST_LOG={env:?}: {e}"))?,
        _ => EnvFilter::builder()
            .parse(default)
            .map_err(|e| anyhow!("server.log = {default:?}: {e}"))?,
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| anyhow!("cannot set up logging: {e}"))
}

/// Create `dir` if needed and prove that files can be made in it.
fn ensure_writable_dir(what: &str, key: &str, dir: &Path) -> anyhow::Result<()> {
    if let Ok(md) = fs::metadata(dir) {
        if !md.is_dir() {
            bail!("{what} {} ({key}) is not a directory", dir.display());
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {what} {} ({key})", dir.display()))?;
    let probe = dir.join(format!(".weir-write-probe-{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .and_then(|mut f| f.write_all(b"weir\n").and_then(|()| f.sync_all()));
    let _ = fs::remove_file(&probe);
    written.with_context(|| format!("{what} {} ({key}) is not writable", dir.display()))
}

/// The core filer the settings name.
/// The namespace: the root core filer, then one mount per junction. Junctions
/// on one named core filer share its connections. In a local root, missing
/// directories that junctions hang in are made.
fn open_mounts(settings: &Settings) -> anyhow::Result<Vec<Mount>> {
    let root = open_filer(settings, &settings.core_filer)?;
    if let CoreFilerUrl::Local(dir) = &settings.core_filer {
        for j in &settings.junctions {
            let parent = Path::new(j.path.trim_start_matches('/'))
                .parent()
                .unwrap_or(Path::new(""));
            fs::create_dir_all(dir.join(parent)).with_context(|| {
                format!(
                    "junction {}: cannot create its directory in {}",
                    j.path,
                    dir.display()
                )
            })?;
        }
    }
    let mut out = vec![Mount {
        filer: root,
        subdir: "/".into(),
        policy: settings.engine.policy.clone(),
    }];
    let mut opened: std::collections::BTreeMap<&str, Arc<dyn CoreFiler>> = Default::default();
    for m in &settings.mounts {
        let filer = match opened.get(m.name.as_str()) {
            Some(f) => f.clone(),
            None => {
                let f = open_filer(settings, &m.url).with_context(|| format!("core_filers.{}", m.name))?;
                opened.insert(&m.name, f.clone());
                f
            }
        };
        out.push(Mount {
            filer,
            subdir: m.subdir.clone(),
            policy: m.policy.clone(),
        });
    }
    Ok(out)
}

fn open_filer(settings: &Settings, url: &CoreFilerUrl) -> anyhow::Result<Arc<dyn CoreFiler>> {
    Ok(match url {
        CoreFilerUrl::Local(dir) => Arc::new(
            LocalFiler::open(dir)
                .with_context(|| format!("cannot open the local core filer at {}", dir.display()))?,
        ),
        url @ CoreFilerUrl::Nfs {
            host,
            port,
            path,
            mount_port,
            connections,
        } => {
            let mut cfg = NfsConfig::new(host.clone(), *port, path.clone());
            cfg.mount_port = *mount_port;
            if let Some(n) = connections {
                cfg.connections = *n;
            }
            // Give up (and say "unreachable") a little before the engine's own bound.
            cfg.timeout = settings.engine.filer_timeout.mul_f64(0.8);
            cfg.attempt_timeout = cfg.attempt_timeout.min(cfg.timeout);
            Arc::new(
                NfsFiler::connect(&cfg, &settings.engine.state_dir)
                    .with_context(|| format!("cannot mount the nfs core filer {url}"))?,
            )
        }
        other => bail!(
            "the `{}` core filer is not available in this build yet",
            other.kind()
        ),
    })
}

/// The embedded default origin is created, writable by everyone and
/// sticky as /tmp is, since the default export squashes root; one the
/// operator named must exist.
fn check_origin(origin: &Path, is_default: bool) -> anyhow::Result<()> {
    if is_default {
        if origin.exists() {
            return Ok(());
        }
        fs::create_dir_all(origin)
            .with_context(|| format!("cannot create the default origin {}", origin.display()))?;
        use std::os::unix::fs::PermissionsExt;
        return fs::set_permissions(origin, fs::Permissions::from_mode(0o1777))
            .with_context(|| format!("cannot open up the default origin {}", origin.display()));
    }
    match fs::metadata(origin) {
        Ok(md) if md.is_dir() => Ok(()),
        Ok(_) => bail!("origin {} is not a directory", origin.display()),
        Err(e) => Err(e).with_context(|| format!("origin {}", origin.display())),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// How a client names this host in a mount command.
fn host_of(addr: SocketAddr) -> String {
    match addr {
        a if a.ip().is_unspecified() => "HOST".to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    }
}

/// A front end's bind failure, said so that the operator knows what to change.
fn listen_error(
    front: &str,
    addr: SocketAddr,
    source: &std::io::Error,
    taken_by: &str,
    key: &str,
) -> anyhow::Error {
    let why = match source.kind() {
        std::io::ErrorKind::AddrInUse => format!("the port is taken ({taken_by})"),
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE".to_string()
        }
        _ => source.to_string(),
    };
    anyhow!(
        "{front} front end: cannot listen on {addr}: {why}; choose another address with \
         --{key}-listen or [server] {key}_listen"
    )
}

fn print_banner(
    s: &Settings,
    location: &str,
    engine: &Engine,
    metrics: SocketAddr,
    nfs: &nfs_front::NfsServer,
    smb: &smb_front::SmbServer,
    admin: &Path,
) {
    let e = engine.config();
    let nvme = if e.cache_bytes == 0 {
        "off".to_string()
    } else {
        format!(
            "{} in {}",
            ByteSize(e.cache_bytes),
            absolute(&e.cache_dir).display()
        )
    };
    let p = &e.policy;
    let smb_addr = smb.addr();
    let share = s
        .smb
        .effective_shares()
        .into_iter()
        .next()
        .map_or_else(|| "export".to_string(), |sh| sh.name);
    let nfs_addr = nfs.local_addr();
    let export = nfs
        .export_paths()
        .into_iter()
        .next()
        .unwrap_or_else(|| "/export".into());
    let portmapper = match nfs.portmapper_addr() {
        Some(a) => format!(
            "\n\x20                 portmapper on {a}: mount -t nfs {}:{export} /mnt",
            host_of(nfs_addr)
        ),
        None => String::new(),
    };
    let text = format!(
        "Weir {version} is running.\n\
         \x20 core filer     {kind} {location}\n\
         {junctions}\
         \x20 data dir       {data}\n\
         \x20 cache          RAM {ram}, NVMe {nvme}, block {block}, {shards}\n\
         \x20 policy         {preset} (attributes verified after {attr}, directories after {dir}, \
         negative lookups {neg})\n\
         \x20 metrics        http://{metrics}/metrics\n\
         \x20 admin socket   {admin} (weir prime)\n\
         \x20 NFS            NFSv3, MOUNT, NLM on {nfs_addr} (exports: {exports}){portmapper}\n\
         \x20                  mount -t nfs -o vers=3,proto=tcp,port={np},mountport={np},nolock {nh}:{export} /mnt\n\
         \x20                  nfs://{nh}{export}?version=3&nfsport={np}&mountport={np}\n\
         \x20 SMB            SMB 2.0.2-3.1.1 on {smb_addr} (shares: {shares}; users: weir smbpasswd NAME)\n\
         \x20                  smbclient //{sh}/{share} -p {sp} -U USER\n\
         \x20                  mount -t cifs //{sh}/{share} /mnt -o port={sp},vers=3.1.1,username=USER\n\
         Stop with Ctrl-C or SIGTERM.",
        version = env!("CARGO_PKG_VERSION"),
        kind = s.core_filer.kind(),
        junctions = s
            .junctions
            .iter()
            .zip(&s.mounts)
            .map(|(j, m)| {
                format!(
                    "\x20 junction       {} -> {} ({}) {}, attributes verified after {}\n",
                    j.path,
                    m.name,
                    m.url.kind(),
                    m.subdir,
                    humantime::format_duration(m.policy.attr_verify)
                )
            })
            .collect::<String>(),
        data = absolute(&s.data_dir).display(),
        admin = absolute(admin).display(),
        ram = ByteSize(e.ram_bytes),
        block = ByteSize(e.block_size.into()),
        shards = match engine.shard_count() {
            1 => "1 shard".to_string(),
            n => format!("{n} shards"),
        },
        preset = s.preset.name(),
        attr = humantime::format_duration(p.attr_verify),
        dir = humantime::format_duration(p.dir_verify),
        neg = if p.negative_lookups {
            "cached"
        } else {
            "not cached"
        },
        np = nfs_addr.port(),
        nh = host_of(nfs_addr),
        exports = nfs.export_paths().join(", "),
        sp = smb_addr.port(),
        sh = host_of(smb_addr),
        shares = s
            .smb
            .effective_shares()
            .iter()
            .map(|sh| sh.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_dir_is_created_and_probe_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_writable_dir("data dir", "server.data_dir", &dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0, "probe file left behind");
    }

    #[test]
    fn a_file_is_not_a_data_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, b"x").unwrap();
        let err = ensure_writable_dir("cache dir", "cache.dir", &file).unwrap_err();
        assert!(format!("{err:#}").contains("is not a directory"), "{err:#}");
        let err = ensure_writable_dir("cache dir", "cache.dir", &file.join("sub")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot create cache dir"), "{err:#}");
    }

    #[test]
    fn named_origins_must_exist_default_ones_are_made() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope");
        let err = check_origin(&missing, false).unwrap_err();
        assert!(format!("{err:#}").contains("No such file"), "{err:#}");
        check_origin(&missing, true).unwrap();
        assert!(missing.is_dir());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&missing).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o1777, "squashed users may create in the default origin");
        // An existing default origin is left as its owner made it.
        fs::set_permissions(&missing, fs::Permissions::from_mode(0o755)).unwrap();
        check_origin(&missing, true).unwrap();
        assert_eq!(
            fs::metadata(&missing).unwrap().permissions().mode() & 0o7777,
            0o755
        );
        let file = tmp.path().join("file");
        fs::write(&file, b"x").unwrap();
        let err = check_origin(&file, false).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn mount_hosts() {
        assert_eq!(host_of("0.0.0.0:2049".parse().unwrap()), "HOST");
        assert_eq!(host_of("[::]:2049".parse().unwrap()), "HOST");
        assert_eq!(host_of("10.1.2.3:2049".parse().unwrap()), "10.1.2.3");
        assert_eq!(host_of("[fd00::1]:445".parse().unwrap()), "[fd00::1]");
    }
}
