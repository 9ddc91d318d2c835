//! Fuzz target: unpacking a tar into a fresh directory with the layer rules
//! (`TarOptions::layer()`: import, pull, load) or, when the first byte is odd, the copy
//! rules ADD and build contexts use (devices refused or skipped, never created). The
//! oracle beyond "no panic": nothing appears outside the unpack root.
#![no_main]

use std::sync::Once;

use berth_base::fsroot::{Devices, TarOptions, open_root, unpack_tar};
use libfuzzer_sys::fuzz_target;

static INIT: Once = Once::new();

/// A tar can describe a huge (sparse) file; cap what one input may write so a run cannot
/// fill the disk: beyond the limit `write` fails with EFBIG instead of raising SIGXFSZ.
fn limit_file_size() {
    // SAFETY: ignoring SIGXFSZ installs no handler; it only changes what an oversize
    // write does (EFBIG instead of killing the process).
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    let lim = libc::rlimit { rlim_cur: 64 << 20, rlim_max: 64 << 20 };
    // SAFETY: `lim` is a valid rlimit that outlives the call.
    unsafe {
        libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
    }
}

fuzz_target!(|data: &[u8]| {
    INIT.call_once(limit_file_size);
    let Some((&mode, tar)) = data.split_first() else { return };
    let opts = match mode % 4 {
        1 => TarOptions::copy("archive", None, Devices::Refuse),
        3 => TarOptions::copy("build context", Some((1000, 1000)), Devices::Skip),
        _ => TarOptions::layer(),
    };
    let base = tempfile::Builder::new().prefix("berth-fuzz-").tempdir().expect("tempdir");
    let root_path = base.path().join("root");
    std::fs::create_dir(&root_path).expect("mkdir root");
    let root = open_root(&root_path).expect("open root");
    let dest = if mode & 0x80 != 0 { "/sub/dir" } else { "/" };
    let mut src = tar;
    let _ = unpack_tar(&mut src, &root, dest, &opts);
    let outside: Vec<_> = std::fs::read_dir(base.path())
        .expect("read base")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| n != "root")
        .collect();
    assert!(outside.is_empty(), "unpack wrote outside its root: {outside:?}");
    drop(root);
    // A tar may leave directories without write or search permission; we run as root,
    // so removal still works, and a failure here is not the unpacker's bug.
    let _ = base.close();
});
