//! Every way a tar can try to leave the root it is unpacked into — `..`, absolute names,
//! symlinks out (absolute, relative, chained, dangling), hard links out, device nodes — under
//! both sets of rules of `fsroot::unpack_tar`. Run as root (owners, device nodes, trusted
//! xattrs), as CI does.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_base::Error;
use berth_base::fsroot::{Devices, Overwrite, TarOptions, Unpacked, open_root, unpack_tar};
use tar::EntryType::{self, Block, Char, Directory, Fifo, Link, Regular, Symlink};

/// A scratch directory with `root/` to unpack into and `outside/victim`, which must never
/// change.
struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("victim"), b"safe").unwrap();
        Scene { _dir: dir, root, outside }
    }

    fn unpack(&self, tar: &[u8], dest: &str, opts: &TarOptions) -> Result<Unpacked, Error> {
        let fd = open_root(&self.root).unwrap();
        unpack_tar(&mut &tar[..], &fd, dest, opts)
    }

    /// The outside is as it was: the victim unchanged and nothing new beside it.
    fn assert_outside_untouched(&self) {
        assert_eq!(fs::read(self.outside.join("victim")).unwrap(), b"safe");
        let names: Vec<_> = fs::read_dir(&self.outside).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["victim"], "nothing was created outside the root");
        let parent = self.root.parent().unwrap();
        let names: Vec<_> = fs::read_dir(parent).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "nothing was created beside the root: {names:?}");
    }

    /// The outside directory as an absolute path without its leading `/`.
    fn outside_abs(&self) -> String {
        self.outside.to_str().unwrap().to_owned()
    }
}

/// A tar built from raw headers (the tar crate's builder refuses `..`).
#[derive(Default)]
struct Tar(Vec<u8>);

impl Tar {
    fn add(mut self, name: &str, kind: EntryType, link: &str, data: &[u8]) -> Tar {
        self.push(name, kind, link, data, (0, 0));
        self
    }

    fn dev(mut self, name: &str, kind: EntryType, dev: (u32, u32)) -> Tar {
        self.push(name, kind, "", b"", dev);
        self
    }

    fn push(&mut self, name: &str, kind: EntryType, link: &str, data: &[u8], dev: (u32, u32)) {
        let mut h = tar::Header::new_ustar();
        let u = h.as_ustar_mut().unwrap();
        u.name[..name.len()].copy_from_slice(name.as_bytes());
        u.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind == Directory { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000_000);
        h.set_size(data.len() as u64);
        h.set_device_major(dev.0).unwrap();
        h.set_device_minor(dev.1).unwrap();
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len().div_ceil(512) * 512, 0);
    }

    fn done(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&[0u8; 1024]);
        self.0
    }
}

fn layer() -> TarOptions {
    TarOptions::layer()
}

fn copy() -> TarOptions {
    TarOptions::copy("archive", None, Devices::Create)
}

fn both() -> [TarOptions; 2] {
    [layer(), copy()]
}

#[test]
fn dotdot_is_refused_in_layers_and_clamped_in_copies() {
    for name in ["../../x", "a/../../x", "/../x", "./../x"] {
        let s = Scene::new();
        let t = Tar::default().add(name, Regular, "", b"pwned").done();
        let e = s.unpack(&t, "/", &layer()).unwrap_err();
        assert!(matches!(e, Error::Escape { .. }), "{name}: {e}");
        assert_eq!(e.to_string(), format!("path escapes the layer root: {name}"));
        assert_eq!(e.kind(), berth_base::ErrorKind::InvalidArgument);
        s.assert_outside_untouched();

        let s = Scene::new();
        s.unpack(&t, "/", &copy()).unwrap();
        assert_eq!(fs::read(s.root.join("x")).unwrap(), b"pwned", "{name}: `..` stops at the root");
        s.assert_outside_untouched();
    }
    // Climbing out of a destination below the root stops at the destination.
    let s = Scene::new();
    let t = Tar::default().add("../../../x", Regular, "", b"d").done();
    s.unpack(&t, "/sub/../../dest", &copy()).unwrap();
    assert_eq!(fs::read(s.root.join("dest/x")).unwrap(), b"d");
    s.assert_outside_untouched();
}

#[test]
fn absolute_names_are_below_the_root() {
    for opts in both() {
        let s = Scene::new();
        let victim = format!("{}/victim", s.outside_abs());
        let t = Tar::default().add(&victim, Regular, "", b"pwned").add("/etc/passwd", Regular, "", b"root").done();
        s.unpack(&t, "/", &opts).unwrap();
        assert_eq!(fs::read(s.root.join(victim.trim_start_matches('/'))).unwrap(), b"pwned");
        assert_eq!(fs::read(s.root.join("etc/passwd")).unwrap(), b"root");
        s.assert_outside_untouched();
    }
}

#[test]
fn writes_through_symlinks_pointing_out_land_inside() {
    for opts in both() {
        let s = Scene::new();
        let out = s.outside_abs();
        let t = Tar::default()
            .add("abs", Symlink, "/", b"")
            .add("abs/x", Regular, "", b"1")
            .add("host", Symlink, &out, b"")
            .add("host/", Directory, "", b"")
            .add("up", Symlink, "../../../../../..", b"")
            .add("up/tmp/y", Regular, "", b"2")
            .add("outside/", Directory, "", b"")
            .add("deep/", Directory, "", b"")
            .add("deep/rel", Symlink, "../../outside", b"")
            .add("deep/rel/victim", Regular, "", b"3")
            .done();
        s.unpack(&t, "/", &opts).unwrap();
        assert_eq!(fs::read(s.root.join("x")).unwrap(), b"1");
        assert_eq!(fs::read(s.root.join("tmp/y")).unwrap(), b"2");
        assert_eq!(fs::read(s.root.join("outside/victim")).unwrap(), b"3");
        assert!(!Path::new("/x").exists());
        s.assert_outside_untouched();
    }
}

#[test]
fn an_entry_replaces_a_symlink_rather_than_writing_through_it() {
    for opts in both() {
        let s = Scene::new();
        let victim = format!("{}/victim", s.outside_abs());
        let t = Tar::default().add("evil", Symlink, &victim, b"").add("evil", Regular, "", b"inside").done();
        s.unpack(&t, "/", &opts).unwrap();
        let md = fs::symlink_metadata(s.root.join("evil")).unwrap();
        assert!(md.is_file());
        assert_eq!(fs::read(s.root.join("evil")).unwrap(), b"inside");
        s.assert_outside_untouched();
    }
}

#[test]
fn long_symlink_chains_stay_inside_or_fail() {
    for opts in both() {
        let s = Scene::new();
        // l0 -> l1 -> ... -> l29 -> ../../../.. (the root), then a file through the chain.
        let mut t = Tar::default();
        for i in 0..29 {
            t = t.add(&format!("l{i}"), Symlink, &format!("l{}", i + 1), b"");
        }
        t = t.add("l29", Symlink, "../../../..", b"").add("l0/through", Regular, "", b"c");
        s.unpack(&t.done(), "/", &opts).unwrap();
        assert_eq!(fs::read(s.root.join("through")).unwrap(), b"c");
        s.assert_outside_untouched();

        // A chain longer than the kernel follows is an error, never a way out.
        let s = Scene::new();
        let mut t = Tar::default();
        for i in 0..60 {
            t = t.add(&format!("m{i}"), Symlink, &format!("m{}", i + 1), b"");
        }
        t = t.add("m60", Symlink, "/", b"").add("m0/x", Regular, "", b"x");
        assert!(s.unpack(&t.done(), "/", &opts).is_err());
        s.assert_outside_untouched();

        // A loop.
        let s = Scene::new();
        let t = Tar::default().add("a", Symlink, "b", b"").add("b", Symlink, "a", b"").add("a/x", Regular, "", b"");
        assert!(s.unpack(&t.done(), "/", &opts).is_err());
        s.assert_outside_untouched();

        // A very deep path of `..` and names.
        let s = Scene::new();
        let deep = "d/".repeat(15) + &"../".repeat(16) + "z";
        let t = Tar::default().add(&deep, Regular, "", b"z").done();
        let r = s.unpack(&t, "/", &opts);
        if opts.overwrite == Overwrite::Replace {
            assert!(matches!(r, Err(Error::Escape { .. })), "{r:?}");
        } else {
            r.unwrap();
        }
        s.assert_outside_untouched();
    }
}

#[test]
fn hard_links_cannot_reach_outside() {
    let s = Scene::new();
    let t = Tar::default().add("hl", Link, "../../outside/victim", b"").done();
    let e = s.unpack(&t, "/", &layer()).unwrap_err();
    assert!(matches!(e, Error::Escape { .. }), "{e}");
    // Clamped, the target is looked for inside the root, where it is not.
    let e = s.unpack(&t, "/", &copy()).unwrap_err();
    assert!(matches!(e, Error::LinkTarget { .. }), "{e}");
    s.assert_outside_untouched();

    for opts in both() {
        let s = Scene::new();
        let out = s.outside_abs();
        let victim = format!("{out}/victim");
        let absolute = Tar::default().add("hl", Link, &victim, b"").done();
        let e = s.unpack(&absolute, "/", &opts).unwrap_err();
        assert!(matches!(e, Error::LinkTarget { .. }), "{e}");
        assert_eq!(e.to_string(), format!("hardlink target not found in {}: {victim}", opts.label));
        // Through a symlink pointing out: resolved inside the root.
        let through = Tar::default().add("up", Symlink, "/", b"").add("hl", Link, &format!("up{victim}"), b"").done();
        assert!(matches!(s.unpack(&through, "/", &opts), Err(Error::LinkTarget { .. })));
        // To a symlink pointing out: a second name for the symlink, not for its target.
        let s = Scene::new();
        let to_link = Tar::default().add("s", Symlink, &victim, b"").add("hl", Link, "s", b"").done();
        s.unpack(&to_link, "/", &opts).unwrap();
        assert!(fs::symlink_metadata(s.root.join("hl")).unwrap().file_type().is_symlink());
        assert_eq!(fs::metadata(s.outside.join("victim")).unwrap().nlink(), 1);
        s.assert_outside_untouched();
        // Inside, links work and count once.
        let s = Scene::new();
        let ok = Tar::default().add("a/f", Regular, "", b"12345").add("a/g", Link, "a/f", b"").done();
        let u = s.unpack(&ok, "/", &opts).unwrap();
        assert_eq!(u.files_size, 5);
        assert_eq!(fs::metadata(s.root.join("a/g")).unwrap().ino(), fs::metadata(s.root.join("a/f")).unwrap().ino());
    }
    // Below a destination, link targets are names in the tar, so below the destination.
    let s = Scene::new();
    let t = Tar::default().add("f", Regular, "", b"x").add("g", Link, "/f", b"").done();
    s.unpack(&t, "/dest", &copy()).unwrap();
    assert_eq!(fs::metadata(s.root.join("dest/g")).unwrap().ino(), fs::metadata(s.root.join("dest/f")).unwrap().ino());
}

#[test]
fn device_nodes_follow_the_rules() {
    // Refused from layers, except FIFOs and the 0/0 whiteout.
    for (t, refused) in [
        (Tar::default().dev("dev/sda", Block, (8, 0)), true),
        (Tar::default().dev("dev/zero", Block, (0, 0)), true),
        (Tar::default().dev("dev/mem", Char, (1, 1)), true),
        (Tar::default().dev("dev/wh", Char, (0, 0)), false),
        (Tar::default().dev("dev/fifo", Fifo, (0, 0)), false),
    ] {
        let s = Scene::new();
        let r = s.unpack(&t.done(), "/", &layer());
        if refused {
            let e = r.unwrap_err();
            assert!(matches!(e, Error::Device { .. }), "{e}");
            assert!(e.to_string().starts_with("device nodes are not allowed"), "{e}");
        } else {
            r.unwrap();
        }
    }
    let t = Tar::default()
        .dev("dev/null", Char, (1, 3))
        .dev("dev/loop0", Block, (7, 0))
        .dev("p", Fifo, (0, 0))
        .add("f", Regular, "", b"")
        .done();
    // Skipped from build contexts.
    let s = Scene::new();
    s.unpack(&t, "/", &TarOptions::copy("build context", Some((0, 0)), Devices::Skip)).unwrap();
    assert!(!s.root.join("dev/null").exists() && !s.root.join("dev/loop0").exists() && !s.root.join("p").exists());
    assert!(s.root.join("f").is_file());
    // Created from ADD's archives.
    let s = Scene::new();
    s.unpack(&t, "/", &copy()).unwrap();
    let md = fs::symlink_metadata(s.root.join("dev/null")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
    assert!(fs::symlink_metadata(s.root.join("dev/loop0")).unwrap().file_type().is_block_device());
    assert!(fs::symlink_metadata(s.root.join("p")).unwrap().file_type().is_fifo());
}

#[test]
fn dangling_symlink_parents() {
    for opts in both() {
        let s = Scene::new();
        let missing = format!("{}/newdir", s.outside_abs());
        let t = Tar::default().add("link", Symlink, &missing, b"").add("link/f", Regular, "", b"x").done();
        let r = s.unpack(&t, "/", &opts);
        match opts.overwrite {
            Overwrite::Replace => {
                let e = r.unwrap_err();
                assert!(matches!(e, Error::DanglingParent { .. }), "{e}");
                assert_eq!(e.kind(), berth_base::ErrorKind::InvalidArgument);
            }
            Overwrite::Merge => {
                r.unwrap();
                let inside = s.root.join(missing.trim_start_matches('/')).join("f");
                assert_eq!(fs::read(inside).unwrap(), b"x", "created where the link points, inside the root");
            }
        }
        s.assert_outside_untouched();
    }
    // A file in the way of a parent.
    let s = Scene::new();
    let t = Tar::default().add("f", Regular, "", b"").add("f/g", Regular, "", b"").done();
    assert!(matches!(s.unpack(&t, "/", &layer()), Err(Error::ParentNotDir { .. })));
}

#[test]
fn whiteouts_become_overlay_form_only_in_layers() {
    let t = Tar::default()
        .add("etc/passwd", Regular, "", b"x")
        .add("etc/.wh.passwd", Regular, "", b"")
        .add("var/", Directory, "", b"")
        .add("var/.wh..wh..opq", Regular, "", b"")
        .add("var/.wh..wh.plnk", Regular, "", b"")
        .done();
    let s = Scene::new();
    s.unpack(&t, "/", &layer()).unwrap();
    let md = fs::symlink_metadata(s.root.join("etc/passwd")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), 0);
    assert!(!s.root.join("etc/.wh.passwd").exists() && !s.root.join("var/.wh..wh..opq").exists());
    let mut v = [0u8; 4];
    let n = rustix::fs::lgetxattr(s.root.join("var"), "trusted.overlay.opaque", &mut v[..]).unwrap();
    assert_eq!(&v[..n], b"y");
    // Outside layers they are ordinary names.
    let s = Scene::new();
    s.unpack(&t, "/", &copy()).unwrap();
    assert!(s.root.join("etc/passwd").is_file() && s.root.join("etc/.wh.passwd").is_file());
    // A whiteout cannot name `..`.
    let s = Scene::new();
    let t = Tar::default().add("dev/.wh...", Regular, "", b"").done();
    let e = s.unpack(&t, "/", &layer()).unwrap_err();
    assert!(e.to_string().contains("path escapes"), "{e}");
    // Nor can a tar forge overlay xattrs.
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.trusted.overlay.opaque", &b"y"[..]), ("SCHILY.xattr.user.k", b"v")])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(Directory);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(0);
    b.append_data(&mut h, "forged/", std::io::empty()).unwrap();
    let s = Scene::new();
    s.unpack(&b.into_inner().unwrap(), "/", &layer()).unwrap();
    assert!(rustix::fs::lgetxattr(s.root.join("forged"), "trusted.overlay.opaque", &mut v[..]).is_err());
}

#[test]
fn existing_entries_under_each_rule() {
    // A directory entry meeting a symlink to a directory: merged through in copies,
    // replaced in layers.
    let t = Tar::default()
        .add("usr/lib/", Directory, "", b"")
        .add("lib", Symlink, "usr/lib", b"")
        .add("lib/", Directory, "", b"")
        .add("lib/x.so", Regular, "", b"so")
        .done();
    let s = Scene::new();
    s.unpack(&t, "/", &copy()).unwrap();
    assert!(fs::symlink_metadata(s.root.join("lib")).unwrap().file_type().is_symlink());
    assert!(s.root.join("usr/lib/x.so").is_file());
    let s = Scene::new();
    s.unpack(&t, "/", &layer()).unwrap();
    assert!(fs::symlink_metadata(s.root.join("lib")).unwrap().is_dir());
    assert!(s.root.join("lib/x.so").is_file() && !s.root.join("usr/lib/x.so").exists());
    // A file meeting a directory: replaces it in layers, an error in copies.
    let t =
        Tar::default().add("d/", Directory, "", b"").add("d/f", Regular, "", b"").add("d", Regular, "", b"f").done();
    let s = Scene::new();
    s.unpack(&t, "/", &layer()).unwrap();
    assert!(s.root.join("d").is_file());
    let s = Scene::new();
    assert!(matches!(s.unpack(&t, "/", &copy()), Err(Error::ReplaceDir { .. })));
    // The root entry gives the layer root its mode; a copy's destination keeps its own.
    let t = Tar::default().add("./", Directory, "", b"").done();
    let s = Scene::new();
    fs::set_permissions(&s.root, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    s.unpack(&t, "/", &copy()).unwrap();
    assert_eq!(fs::metadata(&s.root).unwrap().mode() & 0o7777, 0o700);
    s.unpack(&t, "/", &layer()).unwrap();
    assert_eq!(fs::metadata(&s.root).unwrap().mode() & 0o7777, 0o755);
    let t = Tar::default().add("./", Regular, "", b"").done();
    assert!(matches!(s.unpack(&t, "/", &layer()), Err(Error::RootEntry { .. })));
}

#[test]
fn owners_modes_and_times() {
    let mut t = Tar::default().add("d/f", Regular, "", b"x");
    // uid/gid 1000 on a second file.
    let mut h = tar::Header::new_ustar();
    h.set_path("d/g").unwrap();
    h.set_mode(0o4755);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_234_567);
    h.set_size(0);
    h.set_cksum();
    t.0.extend_from_slice(h.as_bytes());
    let t = t.done();
    let s = Scene::new();
    s.unpack(&t, "/", &layer()).unwrap();
    let md = fs::metadata(s.root.join("d/g")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777, md.mtime()), (1000, 1001, 0o4755, 1_234_567));
    assert_eq!(fs::metadata(s.root.join("d")).unwrap().mode() & 0o7777, 0o755, "created parents are 0755");
    let s = Scene::new();
    s.unpack(&t, "/", &TarOptions::copy("archive", Some((7, 8)), Devices::Create)).unwrap();
    for p in ["d", "d/f", "d/g"] {
        let md = fs::metadata(s.root.join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (7, 8), "{p}");
    }
}

#[test]
fn broken_streams() {
    let t = Tar::default().add("f", Regular, "", &[7u8; 2000]).done();
    let s = Scene::new();
    let e = s.unpack(&t[..1000], "/", &layer()).unwrap_err();
    assert_eq!(e.to_string(), "unexpected EOF in layer tar");
    assert!(std::error::Error::source(&e).is_some(), "the read error is kept as the cause");
    let mut bad = t.clone();
    bad[148..156].copy_from_slice(b"zzzzzzzz");
    let e = s.unpack(&bad, "/", &copy()).unwrap_err();
    assert!(matches!(e, Error::TarHeader { .. }), "{e}");
    let t = Tar::default().add("v", EntryType::new(b'V'), "", b"").add("after", Regular, "", b"").done();
    assert!(matches!(s.unpack(&t, "/", &layer()), Err(Error::EntryType { .. })));
    s.unpack(&t, "/", &copy()).unwrap();
    assert!(!s.root.join("v").exists() && s.root.join("after").is_file(), "copies leave unknown types out");
    // Blank numeric fields: an error in layers, defaults in copies.
    let mut blank = tar::Header::new_old();
    blank.as_old_mut().name[..1].copy_from_slice(b"b");
    blank.set_entry_type(Regular);
    blank.set_size(0);
    blank.set_cksum();
    let mut t = blank.as_bytes().to_vec();
    t.extend_from_slice(&[0u8; 1024]);
    let s = Scene::new();
    assert!(matches!(s.unpack(&t, "/", &layer()), Err(Error::TarHeader { .. })));
    s.unpack(&t, "/", &copy()).unwrap();
    let md = fs::metadata(s.root.join("b")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid(), md.mtime()), (0o644, 0, 0));
}

#[test]
fn create_dirs_stays_inside() {
    use berth_base::fsroot::create_dirs;
    let s = Scene::new();
    let fd = open_root(&s.root).unwrap();
    let out = s.outside_abs();
    std::os::unix::fs::symlink("/", s.root.join("up")).unwrap();
    std::os::unix::fs::symlink(format!("{out}/new"), s.root.join("dangling")).unwrap();
    create_dirs(&fd, "/up/../../a/b", Some((5, 6)), false).unwrap();
    let md = fs::metadata(s.root.join("a/b")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (5, 6, 0o755));
    let e = create_dirs(&fd, "dangling/x", None, false).unwrap_err();
    assert!(matches!(e, Error::DanglingParent { .. }), "{e}");
    create_dirs(&fd, "dangling/x", None, true).unwrap();
    assert!(s.root.join(out.trim_start_matches('/')).join("new/x").is_dir());
    fs::write(s.root.join("file"), b"").unwrap();
    assert!(matches!(create_dirs(&fd, "file/x", None, true), Err(Error::ParentNotDir { .. })));
    s.assert_outside_untouched();
}
