//! Root integration tests of the image store: imports, references, rmi rules, safe
//! extraction, overlay mounts and diffs, and reopening the store.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_base::{ErrorKind, Reference};
use berth_image::{ContainerUse, DeleteItem, ImageStore, ImportOptions};

fn hdr(ty: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(ty);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h
}

/// A busybox-like rootfs: dirs, files, a symlink and a hardlink.
fn rootfs_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for d in ["./", "bin/", "etc/", "tmp/"] {
        b.append_data(&mut hdr(tar::EntryType::Directory, 0o755, 0), d, std::io::empty()).unwrap();
    }
    let bb = b"#!/bin/sh\necho busybox\n";
    b.append_data(&mut hdr(tar::EntryType::Regular, 0o755, bb.len() as u64), "bin/busybox", &bb[..]).unwrap();
    b.append_data(&mut hdr(tar::EntryType::Regular, 0o644, 5), "etc/hostname", &b"host\n"[..]).unwrap();
    b.append_link(&mut hdr(tar::EntryType::Symlink, 0o777, 0), "bin/sh", "busybox").unwrap();
    b.append_link(&mut hdr(tar::EntryType::Link, 0o755, 0), "bin/ls", "bin/busybox").unwrap();
    b.into_inner().unwrap()
}

fn entries(list: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, ty, link) in list {
        let mut h = hdr(*ty, 0o644, 0);
        match ty {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                // Raw names, so the tar crate's own path checks do not stop the test input.
                h.set_link_name_literal(link).unwrap();
                h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
            _ => {
                h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_cksum();
                b.append(&h, std::io::empty()).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

fn no_users(_: &berth_base::Digest) -> Vec<ContainerUse> {
    Vec::new()
}

fn opts(name: Option<&str>) -> ImportOptions {
    ImportOptions { reference: name.map(|n| Reference::parse(n).unwrap()), ..Default::default() }
}

/// Nothing but the bookkeeping dirs: no blob, no snapshot, no ingest leftovers.
fn assert_empty_store(root: &Path) {
    assert_eq!(fs::read_dir(root.join("content/blobs/sha256")).unwrap().count(), 0, "no blob");
    assert_eq!(fs::read_dir(root.join("content/ingest")).unwrap().count(), 0, "no ingest file");
    let snaps: Vec<_> = fs::read_dir(root.join("snapshots")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(snaps, vec![std::ffi::OsString::from("empty")], "no snapshot");
}

#[test]
fn import_resolve_tag_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store.import(&mut &rootfs_tar()[..], &opts(Some("busybox"))).unwrap();
    assert_eq!(img.repo_tags, vec!["busybox:latest"]);
    assert_eq!(img.diff_ids.len(), 1);
    let snap = store.snapshot_dir(&img.diff_ids[0]);
    assert_eq!(fs::read(snap.join("etc/hostname")).unwrap(), b"host\n");
    assert_eq!(fs::read_link(snap.join("bin/sh")).unwrap(), Path::new("busybox"));
    let a = fs::metadata(snap.join("bin/busybox")).unwrap();
    assert_eq!(a.ino(), fs::metadata(snap.join("bin/ls")).unwrap().ino());
    assert_eq!(a.mode() & 0o7777, 0o755);
    assert_eq!(a.mtime(), 1_600_000_000);
    assert_eq!(fs::metadata(&snap).unwrap().mtime(), 1_600_000_000);

    let hex = img.id.hex().to_owned();
    for name in ["busybox", "busybox:latest", "docker.io/library/busybox", &hex, &format!("sha256:{hex}"), &hex[..5]] {
        assert_eq!(store.resolve(name).unwrap().id, img.id, "{name}");
    }
    let e = store.resolve("nothere").unwrap_err();
    assert_eq!(e.to_string(), "No such image: nothere:latest");
    assert_eq!(e.kind(), ErrorKind::NotFound);

    let h = store.history("busybox").unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].id, img.id.to_string());
    assert_eq!(h[0].comment, "Imported from -");
    assert_eq!(h[0].tags, vec!["busybox:latest"]);

    // Two tags: rmi by name only untags.
    store.tag("busybox", &Reference::parse("localhost:5000/app:1").unwrap()).unwrap();
    let img = store.resolve(&hex).unwrap();
    assert_eq!(img.repo_tags, vec!["busybox:latest", "localhost:5000/app:1"]);
    let out = store.delete("localhost:5000/app:1", false, false, &no_users).unwrap();
    assert_eq!(out, vec![DeleteItem::Untagged("localhost:5000/app:1".into())]);

    // Restart: everything is still there.
    drop(store);
    let store = ImageStore::open(dir.path()).unwrap();
    let mut reopened = store.resolve("busybox").unwrap();
    assert!(reopened.last_tag_time.is_some() && reopened.last_tag_time <= img.last_tag_time);
    reopened.last_tag_time = img.last_tag_time;
    assert_eq!(reopened, img_without(&img, "localhost:5000/app:1"));
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(store.gc().unwrap(), 0, "nothing to collect");

    // Last tag by name: untag + delete with the layer.
    let out = store.delete("busybox", false, false, &no_users).unwrap();
    assert_eq!(out[0], DeleteItem::Untagged("busybox:latest".into()));
    assert_eq!(out[1], DeleteItem::Deleted(img.id.to_string()));
    assert_eq!(out[2], DeleteItem::Deleted(img.diff_ids[0].to_string()));
    assert!(store.list().unwrap().is_empty());
    assert_empty_store(dir.path());
}

#[test]
fn tags_record_when_they_were_set() {
    let dir = tempfile::tempdir().unwrap();
    // A database from before `tagged_at`: the store adds the column when it opens it.
    let db = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    db.execute_batch(
        "CREATE TABLE image_refs (ref TEXT PRIMARY KEY, repo TEXT NOT NULL, is_digest INTEGER NOT NULL, image_id TEXT NOT NULL);",
    )
    .unwrap();
    drop(db);
    let store = ImageStore::open(dir.path()).unwrap();
    let untagged = store.import(&mut &rootfs_tar()[..], &opts(None)).unwrap();
    assert_eq!(untagged.last_tag_time, None, "never tagged");
    let before = chrono::Utc::now();
    store.tag(&untagged.id.to_string(), &Reference::parse("app:1").unwrap()).unwrap();
    let first = store.resolve("app:1").unwrap().last_tag_time.expect("tagged");
    assert!(first >= before && first <= chrono::Utc::now(), "{first} after {before}");
    std::thread::sleep(std::time::Duration::from_millis(5));
    store.tag("app:1", &Reference::parse("app:2").unwrap()).unwrap();
    let second = store.resolve("app:1").unwrap().last_tag_time.expect("tagged");
    assert!(second > first, "the newest tag counts: {second} after {first}");
    drop(store);
    let store = ImageStore::open(dir.path()).unwrap();
    assert_eq!(store.resolve("app:2").unwrap().last_tag_time, Some(second), "kept across reopening");
}

fn img_without(img: &berth_image::Image, tag: &str) -> berth_image::Image {
    let mut i = img.clone();
    i.repo_tags.retain(|t| t != tag);
    i
}

#[test]
fn delete_conflicts_follow_moby() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store.import(&mut &rootfs_tar()[..], &opts(Some("busybox"))).unwrap();
    let short = &img.id.hex()[..12];
    let cid = "0e5d5c1f1c07aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let stopped = |_: &berth_base::Digest| vec![ContainerUse { id: cid.into(), running: false }];
    let running = |_: &berth_base::Digest| vec![ContainerUse { id: cid.into(), running: true }];

    let e = store.delete("busybox", false, false, &stopped).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container 0e5d5c1f1c07 is using its referenced image {short}"
        )
    );
    let e = store.delete(short, false, false, &stopped).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to delete {short} (must be forced) - image is being used by stopped container 0e5d5c1f1c07"
        )
    );
    let e = store.delete(short, true, false, &running).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to delete {short} (cannot be forced) - image is being used by running container 0e5d5c1f1c07"
        )
    );
    store.tag("busybox", &Reference::parse("other").unwrap()).unwrap();
    let e = store.delete(short, false, false, &no_users).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories")
    );
    // -f by name with a running user: untag only, the image stays (dangling).
    let out = store.delete("other", true, false, &running).unwrap();
    assert_eq!(out, vec![DeleteItem::Untagged("other:latest".into())]);
    let out = store.delete("busybox", true, false, &running).unwrap();
    assert_eq!(out, vec![DeleteItem::Untagged("busybox:latest".into())]);
    assert!(store.resolve(short).unwrap().repo_tags.is_empty());
    // Dangling + stopped user + force: deleted.
    let out = store.delete(short, true, false, &stopped).unwrap();
    assert_eq!(out[0], DeleteItem::Deleted(img.id.to_string()));
    assert_empty_store(dir.path());
}

#[test]
fn shared_layers_survive_other_deletes_and_tags_move() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let a = store.import(&mut &rootfs_tar()[..], &opts(Some("a"))).unwrap();
    // Same content imported again: same layer, different image (created differs).
    let b = store.import(&mut &rootfs_tar()[..], &opts(Some("a"))).unwrap();
    assert_ne!(a.id, b.id);
    assert_eq!(a.diff_ids, b.diff_ids);
    assert!(store.resolve(a.id.hex()).unwrap().repo_tags.is_empty(), "tag moved, old image dangling");
    let out = store.delete(a.id.hex(), false, false, &no_users).unwrap();
    assert_eq!(out, vec![DeleteItem::Deleted(a.id.to_string())], "shared layer kept");
    assert!(store.snapshot_dir(&b.diff_ids[0]).join("bin/busybox").exists());
    store.delete("a", false, false, &no_users).unwrap();
    assert_empty_store(dir.path());
}

#[test]
fn gzip_zstd_changes_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let raw = rootfs_tar();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let zs = zstd::encode_all(&raw[..], 3).unwrap();
    let mut o = opts(Some("gz"));
    o.changes = vec!["CMD [\"/bin/sh\"]".into(), "ENV A=b".into()];
    o.message = Some("hello".into());
    let g = store.import(&mut &gz[..], &o).unwrap();
    let z = store.import(&mut &zs[..], &opts(Some("zs"))).unwrap();
    assert_eq!(g.diff_ids, z.diff_ids, "the layer is stored uncompressed");
    assert_eq!(g.diff_ids[0], berth_base::Digest::of(&raw));
    let cfg = g.config.config().clone().unwrap();
    assert_eq!(cfg.cmd().clone().unwrap(), vec!["/bin/sh"]);
    assert_eq!(cfg.env().clone().unwrap(), vec!["A=b"]);
    assert_eq!(store.history("gz").unwrap()[0].comment, "hello");
    store.delete("gz", false, false, &no_users).unwrap();
    store.delete("zs", false, false, &no_users).unwrap();
    assert_empty_store(dir.path());

    for cut in [gz.len() / 2, gz.len() - 4] {
        let e = store.import(&mut &gz[..cut], &opts(Some("bad"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert_empty_store(dir.path());
    }
    let e = store.import(&mut &raw[..700], &opts(Some("bad"))).unwrap_err();
    assert_eq!(e.to_string(), "unexpected EOF in layer tar");
    let mut garbage = raw.clone();
    garbage[100..108].copy_from_slice(b"zzzzzzzz");
    let e = store.import(&mut &garbage[..], &opts(Some("bad"))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(store.resolve("bad").is_err());
    assert_empty_store(dir.path());
}

#[test]
fn whiteouts_become_overlay_form() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let t = entries(&[
        ("etc/", tar::EntryType::Directory, ""),
        ("etc/.wh.passwd", tar::EntryType::Regular, ""),
        ("var/", tar::EntryType::Directory, ""),
        ("var/.wh..wh..opq", tar::EntryType::Regular, ""),
    ]);
    let l = store.add_layer(&mut &t[..]).unwrap();
    let snap = store.snapshot_dir(&l.diff_id);
    let md = fs::symlink_metadata(snap.join("etc/passwd")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    assert!(!snap.join("etc/.wh.passwd").exists());
    let mut v = [0u8; 4];
    let n = rustix::fs::lgetxattr(snap.join("var"), "trusted.overlay.opaque", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"y");
    assert!(!snap.join("var/.wh..wh..opq").exists());
}

#[test]
fn escapes_are_rejected_and_leave_nothing() {
    use tar::EntryType::{Block, Char, Directory, Link, Regular, Symlink};
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"safe").unwrap();
    let abs_dir = outside.path().to_str().unwrap().trim_start_matches('/').to_owned();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (entries(&[("../../etc/passwd", Regular, "")]), "path escapes the layer root: ../../etc/passwd"),
        (entries(&[("a/../../x", Regular, "")]), "path escapes the layer root"),
        (entries(&[("x", Link, "../../etc/passwd")]), "path escapes the layer root"),
        (entries(&[("x", Link, "nothere")]), "hardlink target not found"),
        (entries(&[("dev/sda", Block, "")]), "device nodes are not allowed"),
        (entries(&[("dev/mem", Char, "")]), ""),
        (entries(&[("dev/.wh...", Regular, "")]), "path escapes"),
    ];
    for (t, msg) in cases {
        // Char 0/0 is a whiteout: allowed. Give dev/mem a real device number.
        let t = if msg.is_empty() {
            let mut h = hdr(Char, 0o600, 0);
            h.set_device_major(1).unwrap();
            h.set_device_minor(1).unwrap();
            let mut b = tar::Builder::new(Vec::new());
            b.append_data(&mut h, "dev/mem", std::io::empty()).unwrap();
            b.into_inner().unwrap()
        } else {
            t
        };
        let e = store.import(&mut &t[..], &opts(Some("evil"))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        if !msg.is_empty() {
            assert!(e.to_string().contains(msg), "{e} should contain {msg}");
        } else {
            assert!(e.to_string().contains("device nodes are not allowed"), "{e}");
        }
        assert_empty_store(dir.path());
    }
    // Symlinks pointing out are resolved inside the root: writes land in the layer.
    let out_abs = format!("/{abs_dir}");
    let layered = entries(&[
        ("tmp/", Directory, ""),
        ("abs", Symlink, "/"),
        ("abs/x", Regular, ""),
        ("up", Symlink, "../../../../.."),
        ("up/tmp/y", Regular, ""),
        ("hl", Link, "up/x"),
    ]);
    let l = store.add_layer(&mut &layered[..]).unwrap();
    let snap = store.snapshot_dir(&l.diff_id);
    assert!(snap.join("x").is_file() && snap.join("tmp/y").is_file() && snap.join("hl").is_file());
    assert!(!Path::new("/x").exists() && !Path::new("/tmp/y").exists());
    // A dangling symlink to a host directory is refused, and the host is untouched.
    let dangling = entries(&[("link", Symlink, &out_abs), ("link/victim", Regular, "")]);
    let e = store.add_layer(&mut &dangling[..]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(fs::read(&victim).unwrap(), b"safe", "the host file is untouched");
}

/// With roots attached under the containers directory's own mount (running containers),
/// a root's upper and work dirs reach overlay through the detached, child-less clone of
/// that mount, and what the container writes lands in its upper dir as before.
#[test]
fn roots_take_upper_dirs_through_a_child_less_clone_of_the_containers_mount() {
    let dir = tempfile::tempdir().unwrap();
    let containers = dir.path().join("containers");
    berth_image::ensure_parent_mount(&containers).unwrap();
    struct Detach(std::path::PathBuf);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
        }
    }
    let _parent = Detach(containers.clone());
    let store = ImageStore::open(dir.path()).unwrap().with_detached_parent(&containers);
    let img = store.import(&mut &rootfs_tar()[..], &opts(Some("base"))).unwrap();
    let mut roots = Vec::new();
    for name in ["c1", "c2", "c3"] {
        let cdir = containers.join(name);
        let rootfs = store.mount_rootfs(&img.id, &cdir).unwrap();
        roots.push(Detach(rootfs.clone()));
        fs::write(rootfs.join("tmp/mine"), name).unwrap();
        assert_eq!(fs::read(cdir.join("upper/tmp/mine")).unwrap(), name.as_bytes(), "the write is in the upper dir");
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = mountinfo.lines().find(|l| l.contains(&format!(" {} ", rootfs.display()))).unwrap();
        assert!(line.contains("upperdir=/proc/self/fd/"), "upper dir through the clone: {line}");
    }
    // The clone is nobody's mount: nothing was attached under it, and the parent mount
    // holds the three roots.
    let under = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert_eq!(under.lines().filter(|l| l.contains(&format!(" {}/", containers.display()))).count(), 3);
    for (i, name) in ["c1", "c2", "c3"].into_iter().enumerate() {
        store.unmount_rootfs(&containers.join(name)).unwrap();
        assert!(fs::read_dir(&roots[i].0).unwrap().next().is_none(), "unmounted");
    }
}

#[test]
fn mount_write_diff_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store.import(&mut &rootfs_tar()[..], &opts(Some("base"))).unwrap();
    let cdir = dir.path().join("containers/c1");
    let rootfs = store.mount_rootfs(&img.id, &cdir).unwrap();
    struct Unmount<'a>(&'a ImageStore, &'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = self.0.unmount_rootfs(self.1);
        }
    }
    let _guard = Unmount(&store, &cdir);
    assert_eq!(store.mount_rootfs(&img.id, &cdir).unwrap(), rootfs, "idempotent");
    assert_eq!(fs::read(rootfs.join("etc/hostname")).unwrap(), b"host\n");
    fs::write(rootfs.join("tmp/new.txt"), b"new").unwrap();
    fs::remove_file(rootfs.join("etc/hostname")).unwrap();
    fs::create_dir(rootfs.join("data")).unwrap();
    let layer = store.diff_layer(&cdir).unwrap();
    store.unmount_rootfs(&cdir).unwrap();
    store.unmount_rootfs(&cdir).unwrap();
    assert!(fs::read_dir(&rootfs).unwrap().next().is_none(), "unmounted");

    let blob = fs::read(store.content().path(&layer.blob)).unwrap();
    let mut names = Vec::new();
    for e in tar::Archive::new(&blob[..]).entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.contains(&"tmp/new.txt".to_string()), "{names:?}");
    assert!(names.contains(&"etc/.wh.hostname".to_string()), "{names:?}");

    let mut cfg = img.config.clone();
    cfg.rootfs_mut().set_diff_ids(Vec::new());
    let base_layer = berth_image::Layer {
        diff_id: img.diff_ids[0].clone(),
        blob: img.diff_ids[0].clone(),
        size: fs::metadata(store.content().path(&img.diff_ids[0])).unwrap().len(),
        media_type: berth_image::MEDIA_TYPE_LAYER_TAR.into(),
    };
    let committed = store
        .create_image(cfg, &Default::default(), &[base_layer, layer], &[Reference::parse("committed").unwrap()])
        .unwrap();
    let c2 = dir.path().join("containers/c2");
    let r2 = store.mount_rootfs(&committed.id, &c2).unwrap();
    let _g2 = Unmount(&store, &c2);
    assert_eq!(fs::read(r2.join("tmp/new.txt")).unwrap(), b"new");
    assert!(!r2.join("etc/hostname").exists(), "whiteout hides the lower file");
    assert!(r2.join("bin/busybox").exists());
    store.unmount_rootfs(&c2).unwrap();

    // Zero-layer image.
    let mut empty_cfg = oci_spec::image::ImageConfiguration::default();
    empty_cfg.set_created(Some("2024-01-01T00:00:00Z".into()));
    let empty = store.create_image(empty_cfg, &Default::default(), &[], &[]).unwrap();
    let c3 = dir.path().join("containers/c3");
    let r3 = store.mount_rootfs(&empty.id, &c3).unwrap();
    let _g3 = Unmount(&store, &c3);
    assert!(fs::read_dir(&r3).unwrap().next().is_none());
    store.unmount_rootfs(&c3).unwrap();
}
