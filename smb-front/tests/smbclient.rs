//! The SMB front end driven by Samba's `smbclient`, results checked in the
//! backing directory.

mod common;

use common::*;

#[test]
fn put_get_ls_mkdir_rename_del_rmdir() {
    let fx = start(|_| {});
    let local = fx.dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    std::fs::write(local.join("hello.txt"), b"hello, weir\n").unwrap();
    let l = local.display();
    fx.run(
        &[],
        &format!(
            "lcd {l}; put hello.txt; mkdir sub; put hello.txt sub\\copy.txt; rename hello.txt greeting.txt"
        ),
    );
    let o = fx.origin();
    assert_eq!(std::fs::read(o.join("greeting.txt")).unwrap(), b"hello, weir\n");
    assert_eq!(std::fs::read(o.join("sub/copy.txt")).unwrap(), b"hello, weir\n");
    assert!(!o.join("hello.txt").exists());
    let ls = fx.run(&[], "ls; cd sub; ls");
    assert!(ls.contains("greeting.txt"), "{ls}");
    assert!(ls.contains("copy.txt"), "{ls}");
    fx.run(&[], &format!("lcd {l}; get greeting.txt back.txt"));
    assert_eq!(std::fs::read(local.join("back.txt")).unwrap(), b"hello, weir\n");
    fx.run(&[], "del greeting.txt; cd sub; del copy.txt; cd ..; rmdir sub");
    assert!(!o.join("greeting.txt").exists());
    assert!(!o.join("sub").exists());
}

/// A 20 MiB file there and back, checked byte for byte.
fn big_file_round_trip(fx: &Fixture, extra: &[&str]) {
    let local = fx.dir.path().join(format!("local{}", extra.len()));
    std::fs::create_dir_all(&local).unwrap();
    let data: Vec<u8> = (0..20u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(local.join("big.bin"), &data).unwrap();
    let l = local.display();
    fx.run(extra, &format!("lcd {l}; put big.bin; get big.bin back.bin"));
    assert!(std::fs::read(fx.origin().join("big.bin")).unwrap() == data);
    assert!(std::fs::read(local.join("back.bin")).unwrap() == data);
}

#[test]
fn twenty_mib_with_smb3() {
    let fx = start(|_| {});
    big_file_round_trip(&fx, &["-m", "SMB3"]);
}

#[test]
fn dialect_2_0_2() {
    let fx = start(|_| {});
    big_file_round_trip(&fx, &["-m", "SMB2_02"]);
    let ls = fx.run(&["-m", "SMB2_02"], "ls");
    assert!(ls.contains("big.bin"), "{ls}");
}

#[test]
fn signed_smb3() {
    let fx = start(|_| {});
    big_file_round_trip(&fx, &["-m", "SMB3", "--client-protection=sign"]);
}

#[test]
fn encrypted_smb3() {
    let fx = start(|_| {});
    big_file_round_trip(&fx, &["-m", "SMB3", "--client-protection=encrypt"]);
}

#[test]
fn encryption_required_by_the_server() {
    let fx = start(|c| c.encryption = smb_front::config::Encryption::Required);
    let ls = fx.run(&["-m", "SMB3"], "mkdir sealed; ls");
    assert!(ls.contains("sealed"), "{ls}");
    assert!(fx.origin().join("sealed").is_dir());
    let out = fx.smbclient("export", &format!("{USER}%{PASS}"), &["-m", "SMB2_10"], "ls");
    assert!(!out.status.success());
}

#[test]
fn signing_required_by_the_server() {
    let fx = start(|c| c.signing = smb_front::config::Signing::Required);
    big_file_round_trip(&fx, &["-m", "SMB3_00"]);
    big_file_round_trip(&fx, &["-m", "SMB2_10"]);
}

#[test]
fn wrong_password_and_unknown_share_refused() {
    let fx = start(|_| {});
    let out = fx.smbclient("export", &format!("{USER}%wrong"), &[], "ls");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("NT_STATUS_LOGON_FAILURE"), "{text}");
    let out = fx.smbclient("nosuch", &format!("{USER}%{PASS}"), &[], "ls");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("NT_STATUS_BAD_NETWORK_NAME"), "{text}");
}

#[test]
fn share_users_and_read_only() {
    let fx = start(|c| {
        let mut ro = smb_front::config::ShareConfig::new("ro");
        ro.read_only = true;
        let mut only = smb_front::config::ShareConfig::new("bob");
        only.users = vec!["bob".into()];
        let hash = smb_front::auth::users::nt_hash("b");
        c.users.insert(
            "bob".into(),
            smb_front::config::UserConfig::new(&hash, 0, 0, Vec::new()),
        );
        c.shares = vec![smb_front::config::ShareConfig::new("export"), ro, only];
    });
    std::fs::write(fx.origin().join("f.txt"), b"x").unwrap();
    let out = fx.smbclient("ro", &format!("{USER}%{PASS}"), &[], "ls; mkdir nope");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("f.txt"), "{text}");
    assert!(text.contains("NT_STATUS_ACCESS_DENIED"), "{text}");
    assert!(!fx.origin().join("nope").exists());
    let out = fx.smbclient("bob", &format!("{USER}%{PASS}"), &[], "ls");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("NT_STATUS_ACCESS_DENIED"), "{text}");
    let out = fx.smbclient("bob", "bob%b", &[], "ls");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn attributes_links_and_info() {
    use std::os::unix::fs::MetadataExt;
    let fx = start(|_| {});
    std::fs::write(fx.origin().join("f.txt"), b"abc").unwrap();
    std::fs::write(fx.origin().join(".hidden"), b"").unwrap();
    let out = fx.run(
        &["-m", "SMB3"],
        "setmode f.txt +r; hardlink f.txt link.txt; allinfo f.txt; ls",
    );
    assert!(out.contains("attributes: RA (21)"), "{out}");
    assert!(out.contains("stream: [::$DATA], 3 bytes"), "{out}");
    assert!(
        out.lines().any(|l| l.contains(".hidden") && l.contains('H')),
        "{out}"
    );
    let m = std::fs::metadata(fx.origin().join("f.txt")).unwrap();
    assert_eq!(m.mode() & 0o222, 0, "READONLY clears the write bits");
    assert_eq!(m.nlink(), 2);
    // A read-only file refuses writes and deletion until the bit is cleared.
    let out = fx.smbclient("export", &format!("{USER}%{PASS}"), &[], "del f.txt");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("NT_STATUS_CANNOT_DELETE") || text.contains("NT_STATUS_ACCESS_DENIED"),
        "{text}"
    );
    fx.run(&[], "setmode f.txt -r; del f.txt; del link.txt");
    assert!(!fx.origin().join("f.txt").exists());
    assert!(!fx.origin().join("link.txt").exists());
}
