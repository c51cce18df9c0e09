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
