//! iperf3 over loopback: what one machine's TCP stack moves, the ceiling for
//! a server that sends file data over it.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use testbed::process::{self, Guard};

/// Bytes per second received by an iperf3 client run of `seconds` with
/// `streams` parallel streams against a one-off server on 127.0.0.1:`port`.
pub fn loopback(port: u16, seconds: u64, streams: usize) -> Result<f64, String> {
    process::ensure_installed(&["iperf3"], &["iperf3"])?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    if process::answers(addr) {
        return Err(format!("port {port} is in use: pick another with --iperf-port"));
    }
    let server = Command::new("iperf3")
        // Not one-off (-1): the probe below would count as its one client.
        .args(["-s", "-B", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("iperf3 -s: {e}"))?;
    let mut server = Guard::new("iperf3 -s", server);
    if !process::wait_port(addr, Duration::from_secs(10), || server.running()) {
        return Err("iperf3 server did not start".into());
    }
    let out = Command::new("iperf3")
        .args(["-c", "127.0.0.1", "-J", "-p", &port.to_string()])
        .args(["-t", &seconds.to_string(), "-P", &streams.to_string()])
        .output()
        .map_err(|e| format!("iperf3 -c: {e}"))?;
    server.stop(Duration::from_secs(2));
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("iperf3 JSON: {e}"))?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .map(|b| b / 8.0)
        .ok_or_else(|| format!("iperf3 reported no throughput: {}", v["error"]))
}
