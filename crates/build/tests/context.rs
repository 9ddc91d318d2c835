//! Build context, `.dockerignore` and COPY/ADD against real directories (run as root so
//! owners can be set): the directory and tar forms of a context agree, Docker's COPY rules
//! hold, and nothing is read or written outside its root.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::Path;

use berth_build::Error;
use berth_build::context::{Context, RootKind, tar_context};
use berth_build::copy::{
    CopyOpts, copy_into, extract_archive, hash_sources, resolve_owner, resolve_sources, resolve_sources_excluding,
    write_file,
};
use berth_build::dockerignore::IgnoreMatcher;

fn write(path: &Path, data: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A context with a bit of everything.
fn sample(dir: &Path) {
    write(&dir.join("Dockerfile"), "FROM scratch\nCOPY . /app\n");
    write(
        &dir.join(".dockerignore"),
        "# build junk\n**/*.pyc\nnode_modules\ndocs\n!docs/keep.md\nsecret*\n!secret-ok\nsecret-ok\nDockerfile\n",
    );
    write(&dir.join("app.py"), "print('hi')\n");
    write(&dir.join("pkg/mod.py"), "x = 1\n");
    write(&dir.join("pkg/mod.pyc"), "junk");
    write(&dir.join("pkg/deep/er/c.pyc"), "junk");
    write(&dir.join("node_modules/a/index.js"), "junk");
    write(&dir.join("docs/keep.md"), "keep");
    write(&dir.join("docs/drop.md"), "drop");
    write(&dir.join("secret.txt"), "no");
    write(&dir.join("secret-ok"), "later line wins: excluded again");
    write(&dir.join("bin/run.sh"), "#!/bin/sh\n");
    chmod(&dir.join("bin/run.sh"), 0o755);
    chmod(&dir.join("bin"), 0o750);
    symlink("/etc/passwd", dir.join("passwd-link")).unwrap();
    symlink("app.py", dir.join("rel-link")).unwrap();
    fs::hard_link(dir.join("app.py"), dir.join("app-hard.py")).unwrap();
}

fn tar_names(tar: &[u8]) -> BTreeSet<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_owned())
        .collect()
}

fn copy_all(ctx: &Context) -> Vec<berth_build::copy::Source> {
    resolve_sources(ctx, &[".".to_owned()]).unwrap()
}

fn entry_set(sources: &[berth_build::copy::Source]) -> BTreeSet<String> {
    sources.iter().flat_map(|s| s.entries.iter().map(|e| e.rel.clone())).filter(|r| !r.is_empty()).collect()
}

#[test]
fn dockerignore_rules_in_the_tar() {
    let t = tempfile::tempdir().unwrap();
    sample(t.path());
    let ignore = IgnoreMatcher::load(t.path(), Path::new("Dockerfile")).unwrap();
    let mut out = Vec::new();
    let name = tar_context(t.path(), Path::new("Dockerfile"), &ignore, &mut out).unwrap();
    assert_eq!(name, "Dockerfile");
    let names = tar_names(&out);
    let want: BTreeSet<String> = [
        ".dockerignore",
        "Dockerfile",
        "app-hard.py",
        "app.py",
        "bin",
        "bin/run.sh",
        "docs/keep.md",
        "passwd-link",
        "pkg",
        "pkg/deep",
        "pkg/deep/er",
        "pkg/mod.py",
        "rel-link",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(names, want, "** patterns, re-include inside an excluded dir, later lines win, Dockerfile kept");
    // Deterministic, owned by root, links kept as links, hard links as links.
    let mut out2 = Vec::new();
    tar_context(t.path(), Path::new("Dockerfile"), &ignore, &mut out2).unwrap();
    assert_eq!(out, out2);
    let mut a = tar::Archive::new(out.as_slice());
    for e in a.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0));
        let p = e.path().unwrap().to_string_lossy().into_owned();
        if p == "passwd-link" {
            assert_eq!(h.entry_type(), tar::EntryType::Symlink);
            assert_eq!(e.link_name().unwrap().unwrap().to_str(), Some("/etc/passwd"));
        }
        if p == "app.py" {
            // Walk order puts app-hard.py first; the second name becomes the link.
            assert_eq!(h.entry_type(), tar::EntryType::Link);
            assert_eq!(e.link_name().unwrap().unwrap().to_str(), Some("app-hard.py"));
        }
        if p == "bin/" {
            assert_eq!(h.mode().unwrap() & 0o7777, 0o750);
        }
    }
}

#[test]
fn named_dockerfile_ignore_file_wins_and_outside_dockerfile_is_added() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("ctx/.dockerignore"), "a\n");
    write(&t.path().join("ctx/train.dockerfile.dockerignore"), "b\n");
    write(&t.path().join("ctx/train.dockerfile"), "FROM scratch\n");
    write(&t.path().join("ctx/a"), "a");
    write(&t.path().join("ctx/b"), "b");
    let ctx = t.path().join("ctx");
    let ign = IgnoreMatcher::load(&ctx, Path::new("train.dockerfile")).unwrap();
    assert!(ign.matches("b", false) && !ign.matches("a", false));
    let plain = IgnoreMatcher::load(&ctx, Path::new("Dockerfile")).unwrap();
    assert!(plain.matches("a", false));

    write(&t.path().join("elsewhere/Dockerfile"), "FROM scratch\n");
    let mut out = Vec::new();
    let name = tar_context(&ctx, &t.path().join("elsewhere/Dockerfile"), &plain, &mut out).unwrap();
    assert!(name.starts_with(".dockerfile."), "{name}");
    let names = tar_names(&out);
    assert!(names.contains(&name) && names.contains("b") && !names.contains("a"));
}

#[test]
fn tar_and_directory_contexts_agree() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    sample(&src);
    let dir_ctx = Context::from_dir(&src, Path::new("Dockerfile")).unwrap();

    let mut tarball = Vec::new();
    tar_context(&src, Path::new("Dockerfile"), &dir_ctx.ignore, &mut tarball).unwrap();
    let work = t.path().join("work");
    let tar_ctx = Context::from_tar(tarball.as_slice(), &work, "Dockerfile").unwrap();
    let extracted = tar_ctx.root.clone();
    assert!(extracted.starts_with(fs::canonicalize(&work).unwrap()));

    let a = copy_all(&dir_ctx);
    let b = copy_all(&tar_ctx);
    let set = entry_set(&a);
    assert_eq!(set, entry_set(&b));
    assert!(set.contains("docs/keep.md") && !set.contains("docs/drop.md"));
    assert!(!set.contains("Dockerfile"), "an ignored Dockerfile is sent but invisible to COPY");
    assert!(!set.contains("secret-ok") && !set.contains("pkg/mod.pyc"));
    assert_eq!(hash_sources(&a).unwrap(), hash_sources(&b).unwrap());

    // The same for a single file and a wildcard.
    for pats in [vec!["app.py".to_owned()], vec!["pkg/*.py".to_owned(), "bin".to_owned()]] {
        let a = resolve_sources(&dir_ctx, &pats).unwrap();
        let b = resolve_sources(&tar_ctx, &pats).unwrap();
        assert_eq!(hash_sources(&a).unwrap(), hash_sources(&b).unwrap(), "{pats:?}");
    }

    // A gzip-compressed upload is the same context.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tarball).unwrap();
    let gz_ctx = Context::from_tar(gz.finish().unwrap().as_slice(), &work, "Dockerfile").unwrap();
    assert_eq!(hash_sources(&copy_all(&gz_ctx)).unwrap(), hash_sources(&a).unwrap());

    drop(tar_ctx);
    assert!(!extracted.exists(), "the extracted context is removed with the Context");
}

#[test]
fn hash_ignores_mtime_but_not_content_or_mode() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join("d/f"), "one");
    let ctx = Context::from_dir(t.path(), Path::new("Dockerfile")).unwrap();
    let h = |ctx: &Context| hash_sources(&resolve_sources(ctx, &["d".to_owned()]).unwrap()).unwrap();
    let h0 = h(&ctx);
    let f = fs::File::options().write(true).open(t.path().join("d/f")).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(12345)).unwrap();
    drop(f);
    assert_eq!(h(&ctx), h0, "mtime is not in the key");
    chmod(&t.path().join("d/f"), 0o600);
    let h1 = h(&ctx);
    assert_ne!(h1, h0, "mode is in the key");
    fs::write(t.path().join("d/f"), "two").unwrap();
    chmod(&t.path().join("d/f"), 0o600);
    assert_ne!(h(&ctx), h1, "content is in the key");
    symlink("f", t.path().join("d/l")).unwrap();
    let h2 = h(&ctx);
    fs::remove_file(t.path().join("d/l")).unwrap();
    symlink("g", t.path().join("d/l")).unwrap();
    assert_ne!(h(&ctx), h2, "symlink targets are in the key");
}

fn stat(p: &Path) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn copy_semantics() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("ctx");
    write(&c.join("a.txt"), "A");
    write(&c.join("b.txt"), "B");
    write(&c.join("dir/x"), "X");
    write(&c.join("dir/sub/y"), "Y");
    chmod(&c.join("dir/sub"), 0o700);
    chmod(&c.join("a.txt"), 0o640);
    fs::File::options()
        .write(true)
        .open(c.join("a.txt"))
        .unwrap()
        .set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    std::os::unix::fs::chown(c.join("b.txt"), Some(1234), Some(1234)).unwrap();
    let ctx = Context::from_dir(&c, Path::new("Dockerfile")).unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("existing")).unwrap();
    let cp = |pats: &[&str], dest: &str, workdir: &str, opts: CopyOpts| {
        let pats: Vec<String> = pats.iter().map(|s| s.to_string()).collect();
        let s = resolve_sources(&ctx, &pats)?;
        copy_into(&s, dest, workdir, &root, opts)
    };
    let def = CopyOpts::default();

    // file -> file
    cp(&["a.txt"], "/f/renamed", "/", def).unwrap();
    assert_eq!(fs::read_to_string(root.join("f/renamed")).unwrap(), "A");
    assert_eq!(stat(&root.join("f/renamed")), (0o640, 0, 0), "mode kept, owner root");
    assert_eq!(stat(&root.join("f")).0, 0o755, "missing parents are 0755");
    assert_eq!(fs::metadata(root.join("f/renamed")).unwrap().mtime(), 1_000_000, "mtime kept");
    // b.txt belongs to 1234 in the context; COPY makes it root's.
    cp(&["b.txt"], "/owned/", "/", def).unwrap();
    assert_eq!(stat(&root.join("owned/b.txt")).1, 0);
    // file -> dir/
    cp(&["a.txt"], "/d/", "/", def).unwrap();
    assert_eq!(fs::read_to_string(root.join("d/a.txt")).unwrap(), "A");
    // file -> existing dir without a slash
    cp(&["a.txt"], "/existing", "/", def).unwrap();
    assert!(root.join("existing/a.txt").is_file());
    // dir -> dir copies the contents
    cp(&["dir"], "/dst", "/", def).unwrap();
    assert_eq!(fs::read_to_string(root.join("dst/x")).unwrap(), "X");
    assert_eq!(fs::read_to_string(root.join("dst/sub/y")).unwrap(), "Y");
    assert!(!root.join("dst/dir").exists());
    assert_eq!(stat(&root.join("dst/sub")).0, 0o700);
    // wildcard, several matches -> directory
    cp(&["*.txt"], "/w", "/", def).unwrap();
    assert!(root.join("w/a.txt").is_file() && root.join("w/b.txt").is_file());
    // relative dest with WORKDIR
    cp(&["a.txt"], "rel.txt", "/work/dir", def).unwrap();
    assert!(root.join("work/dir/rel.txt").is_file());
    cp(&["b.txt"], ".", "/work/dir", def).unwrap();
    assert!(root.join("work/dir/b.txt").is_file());
    // --chown / --chmod on files, directories and created directories
    cp(&["dir"], "/own", "/", CopyOpts { chown: Some((1000, 1001)), chmod: Some(0o751), ..def }).unwrap();
    assert_eq!(stat(&root.join("own/x")), (0o751, 1000, 1001));
    assert_eq!(stat(&root.join("own/sub")), (0o751, 1000, 1001));
    assert_eq!(stat(&root.join("own")).1, 1000);
    // several sources need a directory destination
    let e = cp(&["a.txt", "b.txt"], "/nodir", "/", def).unwrap_err();
    assert!(matches!(e, Error::DestNotDir), "{e}");
    cp(&["a.txt", "b.txt"], "/two/", "/", def).unwrap();
    assert!(root.join("two/b.txt").is_file());
    // a missing source, a wildcard that matches nothing
    let e = cp(&["nope"], "/x", "/", def).unwrap_err();
    assert_eq!(
        e.to_string(),
        "COPY failed: file not found in build context or excluded by .dockerignore: stat nope: file does not exist"
    );
    assert_eq!(e.kind(), berth_base::ErrorKind::NotFound);
    assert!(matches!(cp(&["*.none"], "/x", "/", def).unwrap_err(), Error::NoSourceFiles));
    // --parents keeps the matched path, or what follows a /./ pivot
    let parents = CopyOpts { parents: true, ..def };
    cp(&["dir/sub/y", "*.txt"], "/p/", "/", parents).unwrap();
    assert!(root.join("p/dir/sub/y").is_file() && root.join("p/a.txt").is_file());
    cp(&["dir/./sub"], "/q/", "/", parents).unwrap();
    assert!(root.join("q/sub/y").is_file() && !root.join("q/dir").exists());
    // overwriting a file replaces it
    fs::write(c.join("a.txt"), "A2").unwrap();
    cp(&["a.txt"], "/f/renamed", "/", def).unwrap();
    assert_eq!(fs::read_to_string(root.join("f/renamed")).unwrap(), "A2");
}

#[test]
fn ignored_files_and_excludes_are_invisible() {
    let t = tempfile::tempdir().unwrap();
    write(&t.path().join(".dockerignore"), "*.log\n");
    write(&t.path().join("x.log"), "l");
    write(&t.path().join("d/keep"), "k");
    write(&t.path().join("d/skip.tmp"), "s");
    let ctx = Context::from_dir(t.path(), Path::new("Dockerfile")).unwrap();
    let e = resolve_sources(&ctx, &["x.log".to_owned()]).unwrap_err();
    assert!(matches!(e, Error::SourceNotFound { .. }));
    let s = resolve_sources_excluding(&ctx, &["d".to_owned()], &["*.tmp".to_owned()]).unwrap();
    assert_eq!(entry_set(&s), ["keep".to_owned()].into_iter().collect());
}

#[test]
fn escapes_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("ctx");
    write(&c.join("ok"), "ok");
    write(&t.path().join("outside"), "secret");
    symlink("/etc/passwd", c.join("passwd")).unwrap();
    symlink("../outside", c.join("up")).unwrap();
    fs::create_dir(c.join("sub")).unwrap();
    symlink("/etc/passwd", c.join("sub/passwd")).unwrap();
    let ctx = Context::from_dir(&c, Path::new("Dockerfile")).unwrap();

    let e = resolve_sources(&ctx, &["../x".to_owned()]).unwrap_err();
    assert_eq!(e.to_string(), "COPY failed: forbidden path outside the build context: ../x");
    assert!(resolve_sources(&ctx, &["sub/../../outside".to_owned()]).is_err());
    assert!(matches!(resolve_sources(&ctx, &["up".to_owned()]).unwrap_err(), Error::OutsideContext { .. }));
    assert!(matches!(resolve_sources(&ctx, &["passwd".to_owned()]).unwrap_err(), Error::OutsideContext { .. }));

    // Inside a copied directory the link is copied as a link, never read through.
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let s = resolve_sources(&ctx, &["sub".to_owned()]).unwrap();
    copy_into(&s, "/app/", "/", &root, CopyOpts::default()).unwrap();
    let l = root.join("app/passwd");
    assert!(fs::symlink_metadata(&l).unwrap().file_type().is_symlink());
    assert_eq!(fs::read_link(&l).unwrap(), Path::new("/etc/passwd"));

    // A symlink in the destination root pointing to / (or to a host dir) does not redirect
    // writes out of the root.
    let host = t.path().join("host-target");
    fs::create_dir(&host).unwrap();
    symlink("/", root.join("evil")).unwrap();
    symlink(&host, root.join("hostdir")).unwrap();
    let s = resolve_sources(&ctx, &["ok".to_owned()]).unwrap();
    copy_into(&s, "/evil/planted", "/", &root, CopyOpts::default()).unwrap();
    assert!(root.join("planted").is_file());
    assert!(!Path::new("/planted").exists());
    copy_into(&s, "/hostdir/planted", "/", &root, CopyOpts::default()).unwrap();
    assert!(!host.join("planted").exists(), "write followed a link out of the root");
    let inside = root.join(host.strip_prefix("/").unwrap()).join("planted");
    assert!(inside.is_file(), "the link resolves as if root were /");
    // A destination that is itself a symlink to a host file is replaced, not written through.
    write(&t.path().join("victim"), "untouched");
    symlink(t.path().join("victim"), root.join("target")).unwrap();
    copy_into(&s, "/target", "/", &root, CopyOpts::default()).unwrap();
    assert_eq!(fs::read_to_string(t.path().join("victim")).unwrap(), "untouched");
    assert!(fs::symlink_metadata(root.join("target")).unwrap().is_file());
}

fn raw_tar_entry(out: &mut Vec<u8>, name: &[u8], kind: tar::EntryType, link: &[u8], data: &[u8]) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

#[test]
fn hostile_context_tar_stays_inside() {
    let t = tempfile::tempdir().unwrap();
    let marker = format!("berth-escape-{}", std::process::id());
    let mut tb = Vec::new();
    raw_tar_entry(&mut tb, format!("../../../../../../tmp/{marker}").as_bytes(), tar::EntryType::Regular, b"", b"x");
    raw_tar_entry(&mut tb, b"root-link", tar::EntryType::Symlink, b"/", b"");
    raw_tar_entry(&mut tb, format!("root-link/tmp/{marker}-2").as_bytes(), tar::EntryType::Regular, b"", b"x");
    raw_tar_entry(&mut tb, b"dev-null", tar::EntryType::Char, b"", b"");
    raw_tar_entry(&mut tb, b"hard", tar::EntryType::Link, b"../../../etc/passwd", b"");
    tb.extend_from_slice(&[0u8; 1024]);
    let ctx = Context::from_tar(tb.as_slice(), t.path(), "Dockerfile");
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!Path::new("/tmp").join(format!("{marker}-2")).exists());
    // The hard link to a path that does not exist inside the root fails the upload.
    let e = ctx.unwrap_err();
    assert!(matches!(e, Error::Archive { .. }), "{e}");
    let left: Vec<_> = fs::read_dir(t.path()).unwrap().collect();
    assert!(left.is_empty(), "a failed extraction leaves nothing behind");

    let mut tb = Vec::new();
    raw_tar_entry(&mut tb, format!("../../{marker}").as_bytes(), tar::EntryType::Regular, b"", b"x");
    raw_tar_entry(&mut tb, b"dev-null", tar::EntryType::Char, b"", b"");
    tb.extend_from_slice(&[0u8; 1024]);
    let ctx = Context::from_tar(tb.as_slice(), t.path(), "Dockerfile").unwrap();
    assert!(ctx.root.join(&marker).is_file(), "`..` is clamped at the context root");
    assert!(!ctx.root.join("dev-null").exists(), "device nodes are not extracted");
}

#[test]
fn add_extracts_local_archives() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("ctx");
    fs::create_dir(&c).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o600);
    h.set_uid(42);
    h.set_gid(43);
    b.append_data(&mut h, "top/file.txt", &b"hello"[..]).unwrap();
    let plain = b.into_inner().unwrap();
    fs::write(c.join("a.tar"), &plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    fs::write(c.join("a.tar.gz"), gz.finish().unwrap()).unwrap();
    fs::write(c.join("a.tar.zst"), zstd::encode_all(plain.as_slice(), 1).unwrap()).unwrap();
    let mut notar = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    notar.write_all(b"just text").unwrap();
    fs::write(c.join("note.gz"), notar.finish().unwrap()).unwrap();
    // bzip2 and xz go through the system's tools, as dockerd does for xz.
    for (tool, file) in [("bzip2", "a.tar.bz2"), ("xz", "a.tar.xz")] {
        let out = std::process::Command::new(tool).arg("-c").arg(c.join("a.tar")).output().unwrap();
        assert!(out.status.success());
        fs::write(c.join(file), out.stdout).unwrap();
    }
    let ctx = Context::from_dir(&c, Path::new("Dockerfile")).unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let add = CopyOpts { add: true, ..CopyOpts::default() };
    for (name, dest) in
        [("a.tar", "/plain"), ("a.tar.gz", "/gz"), ("a.tar.zst", "/zst"), ("a.tar.bz2", "/bz2"), ("a.tar.xz", "/xz")]
    {
        let s = resolve_sources(&ctx, &[name.to_owned()]).unwrap();
        copy_into(&s, dest, "/", &root, add).unwrap();
        let f = root.join(dest.trim_start_matches('/')).join("top/file.txt");
        assert_eq!(fs::read_to_string(&f).unwrap(), "hello", "{name}");
        assert_eq!(stat(&f), (0o600, 42, 43), "ADD keeps the archive's owners");
    }
    let s = resolve_sources(&ctx, &["a.tar".to_owned()]).unwrap();
    copy_into(&s, "/owned", "/", &root, CopyOpts { chown: Some((7, 8)), ..add }).unwrap();
    assert_eq!(stat(&root.join("owned/top/file.txt")).1, 7);
    // Not a tar: copied as it is. COPY never extracts.
    let s = resolve_sources(&ctx, &["note.gz".to_owned()]).unwrap();
    copy_into(&s, "/n/", "/", &root, add).unwrap();
    assert!(root.join("n/note.gz").is_file());
    let s = resolve_sources(&ctx, &["a.tar".to_owned()]).unwrap();
    copy_into(&s, "/c/", "/", &root, CopyOpts::default()).unwrap();
    assert!(root.join("c/a.tar").is_file());
    // URLs are the engine's business.
    let e = resolve_sources(&ctx, &["https://example.com/x.tar".to_owned()]).unwrap_err();
    assert!(matches!(e, Error::RemoteSource { .. }));
}

#[test]
fn stage_roots_keep_owners_and_resolve_links_inside() {
    let t = tempfile::tempdir().unwrap();
    let stage = t.path().join("stage");
    write(&stage.join("usr/bin/tool"), "bin");
    std::os::unix::fs::chown(stage.join("usr/bin/tool"), Some(5), Some(6)).unwrap();
    fs::create_dir_all(stage.join("bin")).unwrap();
    symlink("/usr/bin/tool", stage.join("bin/tool")).unwrap();
    let ctx = Context::stage(&stage);
    assert_eq!(ctx.kind, RootKind::Stage);
    let s = resolve_sources(&ctx, &["/bin/tool".to_owned()]).unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    copy_into(&s, "/opt/tool", "/", &root, CopyOpts::default()).unwrap();
    assert_eq!(fs::read_to_string(root.join("opt/tool")).unwrap(), "bin");
    assert_eq!(stat(&root.join("opt/tool")).1, 5);
    // `..` stops at the stage's root.
    let s = resolve_sources(&ctx, &["../../usr/bin/tool".to_owned()]).unwrap();
    assert_eq!(s[0].entries[0].path, "/usr/bin/tool");
}

#[test]
fn large_xz_context_upload() {
    // Big enough that the decompressor's pipes fill up in both directions.
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let mut data = Vec::new();
    let mut x: u64 = 1;
    for _ in 0..(3 << 20) {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        data.push((x >> 56) as u8);
    }
    fs::create_dir(&src).unwrap();
    fs::write(src.join("blob"), &data).unwrap();
    let mut tarball = Vec::new();
    // A Dockerfile that does not exist is an error.
    tar_context(&src, Path::new("Dockerfile"), &IgnoreMatcher::default(), &mut tarball).unwrap_err();
    write(&src.join("Dockerfile"), "FROM scratch\n");
    tar_context(&src, Path::new("Dockerfile"), &IgnoreMatcher::default(), &mut tarball).unwrap();
    let mut child = std::process::Command::new("xz")
        .args(["-c", "-0"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&tarball).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let ctx = Context::from_tar(out.stdout.as_slice(), &t.path().join("work"), "Dockerfile").unwrap();
    assert_eq!(fs::read(ctx.root.join("blob")).unwrap(), data);
    // Garbage is a clear error, not a hang.
    let e = Context::from_tar(&b"FROM scratch\nRUN true\n"[..], &t.path().join("work"), "Dockerfile").unwrap_err();
    assert_eq!(e.kind(), berth_base::ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn copy_keeps_metadata_of_existing_directories() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("ctx");
    write(&c.join("usr/local/bin/tool"), "t");
    chmod(&c.join("usr"), 0o700);
    let ctx = Context::from_dir(&c, Path::new("Dockerfile")).unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("usr/lib")).unwrap();
    chmod(&root.join("usr"), 0o755);
    symlink("usr/lib", root.join("lib")).unwrap();
    let s = resolve_sources(&ctx, &[".".to_owned()]).unwrap();
    copy_into(&s, "/", "/", &root, CopyOpts::default()).unwrap();
    assert_eq!(stat(&root.join("usr")).0, 0o755, "an existing directory keeps its mode");
    assert!(root.join("usr/local/bin/tool").is_file());
    // A directory entry meeting a symlink to a directory goes through it (/lib -> usr/lib).
    write(&c.join("lib/x.so"), "so");
    let s = resolve_sources(&ctx, &["lib".to_owned()]).unwrap();
    copy_into(&s, "/lib", "/", &root, CopyOpts::default()).unwrap();
    assert!(root.join("usr/lib/x.so").is_file());
    assert!(fs::symlink_metadata(root.join("lib")).unwrap().file_type().is_symlink());
}

#[test]
fn heredoc_files_archives_and_owner_lookup() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    write(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n");
    write(&root.join("etc/group"), "root:x:0:\nstaff:x:50:\n");
    assert_eq!(resolve_owner(&root, "app").unwrap(), (1000, 1001));
    assert_eq!(resolve_owner(&root, "app:staff").unwrap(), (1000, 50));
    assert_eq!(resolve_owner(&root, "7").unwrap(), (7, 7));
    assert!(resolve_owner(&root, "ghost").is_err());

    symlink("/", root.join("up")).unwrap();
    write_file(&root, "conf/app.ini", "/up/srv", b"x=1\n", 0o640, (1000, 1001)).unwrap();
    let f = root.join("srv/conf/app.ini");
    assert_eq!(fs::read(&f).unwrap(), b"x=1\n");
    assert_eq!(stat(&f), (0o640, 1000, 1001));
    assert_eq!(stat(&root.join("srv/conf")), (0o755, 1000, 1001));

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, "a/b", &b"hi"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_size(0);
    h.set_mode(0o600);
    b.append_data(&mut h, "a/fifo", std::io::empty()).unwrap();
    let data = b.into_inner().unwrap();
    extract_archive(data.as_slice(), &root, "/up/x", None).unwrap();
    assert_eq!(fs::read(root.join("x/a/b")).unwrap(), b"hi");
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&fs::symlink_metadata(root.join("x/a/fifo")).unwrap().file_type()));
}

/// A tar holding a symlink to `/tmp` and then a file through it, a character device, a
/// block device and a FIFO.
fn hostile_archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "x", "/tmp").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    b.append_data(&mut h, "x/evil", &b"evil"[..]).unwrap();
    for (name, kind) in [("mem", tar::EntryType::Char), ("disk", tar::EntryType::Block), ("pipe", tar::EntryType::Fifo)]
    {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o666);
        h.set_device_major(if kind == tar::EntryType::Fifo { 0 } else { 1 }).unwrap();
        h.set_device_minor(if kind == tar::EntryType::Fifo { 0 } else { 1 }).unwrap();
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    b.append_data(&mut h, "after", &b"ok"[..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn add_unpacks_rooted_at_its_destination_and_leaves_devices_out() {
    let t = tempfile::tempdir().unwrap();
    let c = t.path().join("ctx");
    fs::create_dir(&c).unwrap();
    fs::write(c.join("evil.tar"), hostile_archive()).unwrap();
    let ctx = Context::from_dir(&c, Path::new("Dockerfile")).unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("tmp")).unwrap();
    let s = resolve_sources(&ctx, &["evil.tar".to_owned()]).unwrap();
    copy_into(&s, "/dest", "/", &root, CopyOpts { add: true, ..CopyOpts::default() }).unwrap();
    assert!(!root.join("tmp/evil").exists(), "nothing lands in the image's /tmp");
    assert_eq!(fs::read_link(root.join("dest/x")).unwrap(), Path::new("/tmp"), "the link is kept as written");
    assert_eq!(fs::read_to_string(root.join("dest/tmp/evil")).unwrap(), "evil", "it resolves inside the destination");
    for dev in ["mem", "disk", "pipe"] {
        assert!(fs::symlink_metadata(root.join("dest").join(dev)).is_err(), "{dev} is left out, as Docker does");
    }
    assert_eq!(fs::read_to_string(root.join("dest/after")).unwrap(), "ok", "the rest of the archive lands");
}

#[test]
fn extract_archive_is_rooted_at_its_destination_and_refuses_devices() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("tmp")).unwrap();
    let e = extract_archive(hostile_archive().as_slice(), &root, "/dest", None).unwrap_err();
    assert!(e.to_string().contains("device nodes are not allowed in a tar archive: mem"), "{e}");
    assert!(!root.join("tmp/evil").exists(), "nothing lands in the root's /tmp");
    assert!(root.join("dest/tmp/evil").is_file());
}
