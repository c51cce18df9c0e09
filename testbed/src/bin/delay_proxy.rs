//! `delay-proxy`: the test bed's WAN delay proxy by hand, for trying Weir or
//! a NAS over a slow link without a test around it. Runs until Ctrl-C.

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use testbed::proxy::{DelayProxy, Link, OneWay, DEFAULT_WINDOW};

#[derive(Debug, Parser)]
#[command(
    name = "delay-proxy",
    about = "Relay TCP to a server over a simulated WAN link"
)]
struct Args {
    /// Address to listen on
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Server to relay to (HOST:PORT)
    #[arg(long, value_name = "HOST:PORT")]
    to: String,
    /// Round-trip time added, split evenly between the two directions
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    rtt_ms: f64,
    /// One-way latency towards the server (overrides half of --rtt-ms)
    #[arg(long, value_name = "MS")]
    up_ms: Option<f64>,
    /// One-way latency back from the server (overrides half of --rtt-ms)
    #[arg(long, value_name = "MS")]
    down_ms: Option<f64>,
    /// Bandwidth cap per direction in Mbit/s, shared by all connections
    #[arg(long, value_name = "MBIT")]
    mbit: Option<f64>,
    /// Bytes a connection may have in flight per direction
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_WINDOW)]
    window: usize,
    /// Print the byte counters every SECONDS (0: never)
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    report: u64,
}

fn ms(what: &str, v: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(v / 1000.0).map_err(|_| format!("{what} {v}: not a duration in ms"))
}

fn run(a: Args) -> Result<(), String> {
    let target =
        a.to.to_socket_addrs()
            .map_err(|e| format!("--to {}: {e}", a.to))?
            .next()
            .ok_or_else(|| format!("--to {}: no address", a.to))?;
    let half = ms("--rtt-ms", a.rtt_ms)? / 2;
    let up = a.up_ms.map(|v| ms("--up-ms", v)).transpose()?.unwrap_or(half);
    let down = a.down_ms.map(|v| ms("--down-ms", v)).transpose()?.unwrap_or(half);
    let bandwidth = match a.mbit {
        Some(m) if m.is_finite() && m > 0.0 => Some((m * 1e6 / 8.0) as u64),
        Some(m) => return Err(format!("--mbit {m}: must be above 0")),
        None => None,
    };
    let link = Link {
        to_target: OneWay {
            latency: up,
            bandwidth,
        },
        from_target: OneWay {
            latency: down,
            bandwidth,
        },
        window: a.window,
    };
    let proxy =
        DelayProxy::start_on(a.listen, target, link).map_err(|e| format!("--listen {}: {e}", a.listen))?;
    println!(
        "delay-proxy: {} -> {target}, latency {up:?} up / {down:?} down, {}",
        proxy.addr(),
        match a.mbit {
            Some(m) => format!("{m} Mbit/s each way"),
            None => "no bandwidth cap".into(),
        }
    );
    loop {
        if a.report == 0 {
            std::thread::park();
            continue;
        }
        std::thread::sleep(Duration::from_secs(a.report));
        println!(
            "delay-proxy: {} connections, {} bytes to the server, {} bytes back",
            proxy.connections(),
            proxy.bytes_to_target(),
            proxy.bytes_from_target()
        );
    }
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("delay-proxy: {e}");
            ExitCode::FAILURE
        }
    }
}
