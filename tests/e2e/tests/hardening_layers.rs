//! Layers that expand (issue 12, defect 5): a 10 KB tar holding a 4 GB sparse file must not
//! write 4 GB of zeros on import (holes stay holes), and a daemon refuses a layer whose files
//! add up past its `--max-layer-size`, leaving its images as they were.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::{Daemon, ok, text};

/// A GNU tar (`tar --sparse`) of a 4 GiB file that is all hole but for a few bytes.
fn sparse_tar(dir: &Path) -> PathBuf {
    let src = dir.join("sparse-src");
    std::fs::create_dir_all(&src).unwrap();
    let f = std::fs::File::create(src.join("f")).unwrap();
    f.set_len(4 << 30).unwrap();
    std::os::unix::fs::FileExt::write_at(&f, b"needle", 3 << 30).unwrap();
    drop(f);
    let tar = dir.join("sparse.tar");
    let out = Command::new("tar").arg("--sparse").arg("-cf").arg(&tar).arg("-C").arg(&src).arg("f").output().unwrap();
    assert!(out.status.success(), "tar: {}", text(&out.stderr));
    std::fs::remove_dir_all(&src).unwrap();
    assert!(std::fs::metadata(&tar).unwrap().len() < 64 * 1024);
    tar
}

/// Bytes the data root takes on disk.
fn disk_usage(p: &Path) -> u64 {
    let out = ok(&Command::new("du").args(["-s", "--block-size=1"]).arg(p).output().unwrap());
    out.split_whitespace().next().unwrap().parse().unwrap()
}

/// Every file named `name` under the data root's snapshots.
fn snapshot_files(data_root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(data_root.join("snapshots")).unwrap().flatten() {
        let p = e.path().join(name);
        if p.is_file() {
            found.push(p);
        }
    }
    found
}

#[test]
fn a_sparse_file_is_imported_as_holes() {
    let d = Daemon::start();
    let tar = sparse_tar(d.dir.path());
    let before = disk_usage(&d.data_root);
    let out = d.berth(&["import", tar.to_str().unwrap(), "sparse:1"]);
    ok(&out);
    let grown = disk_usage(&d.data_root).saturating_sub(before);
    assert!(grown < 64 << 20, "the data root grew by {grown} bytes");
    let files = snapshot_files(&d.data_root, "f");
    assert_eq!(files.len(), 1, "{files:?}");
    let md = std::fs::metadata(&files[0]).unwrap();
    assert_eq!(md.len(), 4 << 30);
    assert!(md.blocks() * 512 < 1 << 20, "{} bytes on disk", md.blocks() * 512);
    let mut needle = [0u8; 6];
    std::os::unix::fs::FileExt::read_exact_at(&std::fs::File::open(&files[0]).unwrap(), &mut needle, 3 << 30).unwrap();
    assert_eq!(&needle, b"needle");
    // Docker's layer size: the files' length.
    let size = ok(&d.berth(&["image", "inspect", "--format", "{{.Size}}", "sparse:1"]));
    assert_eq!(size.trim(), (4u64 << 30).to_string());
}

#[test]
fn a_layer_past_the_limit_is_refused_and_images_stay() {
    let d = Daemon::start_with(&["--max-layer-size", "1g"]);
    d.import_busybox("busybox");
    let images = ok(&d.berth(&["images", "-q", "--no-trunc"]));
    let tar = sparse_tar(d.dir.path());
    let before = disk_usage(&d.data_root);
    let out = d.berth(&["import", tar.to_str().unwrap(), "big:1"]);
    assert!(!out.status.success(), "a 4 GiB layer passed a 1 GiB limit");
    let err = text(&out.stderr);
    assert!(
        err.contains("layer too large: its files add up to more than 1073741824 bytes, the daemon's max-layer-size"),
        "{err}"
    );
    assert_eq!(ok(&d.berth(&["images", "-q", "--no-trunc"])), images);
    assert!(snapshot_files(&d.data_root, "f").is_empty());
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("snapshots"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(disk_usage(&d.data_root).saturating_sub(before) < 64 << 20);
    ok(&d.berth(&["run", "--rm", "busybox", "true"]));
}
