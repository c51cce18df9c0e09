//! The Samba fixture: a private smbd serves its directory to a real client,
//! demands signing when told to, and leaves no process behind when dropped.

use std::process::Command;

use testbed::samba::{Samba, SambaConfig};

fn smbclient(s: &Samba, protection: &str, commands: &str) -> (bool, String) {
    let out = Command::new("smbclient")
        .arg(s.unc())
        .args(["-p", &s.addr.port().to_string()])
        .arg("-U")
        .arg(format!("{}%{}", s.config.user, s.config.password))
        .arg(format!("--client-protection={protection}"))
        .args(["-m", "SMB3", "-c", commands])
        .output()
        .expect("smbclient runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success() && !text.contains("NT_STATUS_"), text)
}

fn alive(pid: u32) -> bool {
    // A zombie (State: Z) has exited and only waits to be reaped.
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .is_ok_and(|s| !s.lines().any(|l| l.starts_with("State:") && l.contains('Z')))
}

#[test]
fn samba_serves_its_directory_and_stops() {
    if let Err(e) = testbed::process::ensure_installed(&["smbd", "smbclient"], &["samba", "smbclient"]) {
        panic!("{e}");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), b"hello from the host").unwrap();
    let config = SambaConfig {
        signing_required: true,
        ..SambaConfig::default()
    };
    let samba = Samba::start_with(dir.path(), 0, config).expect("smbd starts");
    let pid = samba.pid();
    let local = tempfile::tempdir().unwrap();
    let get = format!(
        "get hello.txt {}; mkdir made-over-smb",
        local.path().join("got.txt").display()
    );
    let (ok, text) = smbclient(&samba, "sign", &get);
    assert!(ok, "smbclient: {text}");
    assert_eq!(
        std::fs::read(local.path().join("got.txt")).unwrap(),
        b"hello from the host"
    );
    assert!(dir.path().join("made-over-smb").is_dir());
    let conf = std::fs::read_to_string(samba.conf().unwrap()).unwrap();
    assert!(conf.contains("server signing = mandatory"), "{conf}");
    drop(samba);
    assert!(!alive(pid), "smbd {pid} still runs after drop");
}
