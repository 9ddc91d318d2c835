//! The build-context tar the docker CLI uploads: a directory walked in Go's order with
//! `.dockerignore` applied, the Dockerfile and ignore file always included, owners 0:0 and
//! hard links kept as links, so that the daemon builds the same thing from it as from the
//! directory itself.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::dockerignore::IgnoreMatcher;

/// Writes the build context in `dir` as the tar the docker CLI sends: files `ignore`
/// excludes are left out (the walk still enters an excluded directory when an exception may
/// re-include something inside it), the Dockerfile and ignore file are always included,
/// entries come in sorted walk order with owner 0:0 and mtimes to the second, and hard links
/// stay links. A Dockerfile outside `dir` is added as `.dockerfile.<random>`. Returns the
/// Dockerfile's name inside the tar (the API's `dockerfile` parameter).
pub fn tar_context(dir: &Path, dockerfile: &Path, ignore: &IgnoreMatcher, out: impl Write) -> Result<String, Error> {
    let t = ContextTar::new(dir, dockerfile, ignore)?;
    t.write(out)?;
    Ok(t.dockerfile_name().to_owned())
}

/// A context tar planned before it is written, so that a client knows the Dockerfile's name
/// in the tar (the `dockerfile` query parameter) before it streams the body.
#[derive(Debug, Clone)]
pub struct ContextTar {
    root: PathBuf,
    dockerfile: PathBuf,
    inside: bool,
    name: String,
    ignore: IgnoreMatcher,
}

impl ContextTar {
    /// Plans the tar of `dir` with `dockerfile` (relative paths are taken from `dir`) and the
    /// context's ignore rules.
    pub fn new(dir: &Path, dockerfile: &Path, ignore: &IgnoreMatcher) -> Result<ContextTar, Error> {
        let root = std::fs::canonicalize(dir).map_err(|e| Error::io("open build context", dir, e))?;
        let df_abs = if dockerfile.is_absolute() { dockerfile.to_path_buf() } else { dir.join(dockerfile) };
        let df_abs = std::fs::canonicalize(&df_abs).map_err(|e| Error::io("open Dockerfile", &df_abs, e))?;
        let inside = df_abs.strip_prefix(&root).ok().map(|p| p.to_string_lossy().into_owned());
        let mut ignore = ignore.clone();
        ignore.keep_build_files(inside.as_deref().unwrap_or(""));
        let (inside, name) = match inside {
            Some(rel) => (true, rel),
            None => (false, format!(".dockerfile.{}", &berth_base::new_id()[..20])),
        };
        Ok(ContextTar { root, dockerfile: df_abs, inside, name, ignore })
    }

    /// The Dockerfile's path inside the tar.
    pub fn dockerfile_name(&self) -> &str {
        &self.name
    }

    /// Writes the tar to `out`.
    pub fn write(&self, out: impl Write) -> Result<(), Error> {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        let mut links: HashMap<(u64, u64), PathBuf> = HashMap::new();
        walk_tar(&mut builder, &self.root, Path::new(""), &self.ignore, &mut links)?;
        if !self.inside {
            let df = &self.dockerfile;
            let data = std::fs::read(df).map_err(|e| Error::io("read", df, e))?;
            let md = std::fs::metadata(df).map_err(|e| Error::io("stat", df, e))?;
            let mut h = base_header(&md, tar::EntryType::Regular);
            h.set_size(data.len() as u64);
            builder
                .append_data(&mut h, &self.name, data.as_slice())
                .map_err(|e| Error::io("write tar entry", &self.name, e))?;
        }
        builder.into_inner().and_then(|mut w| w.flush()).map_err(|e| Error::io("write", "build context tar", e))?;
        Ok(())
    }
}

fn base_header(md: &std::fs::Metadata, t: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(t);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(md.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn walk_tar<W: Write>(
    b: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
    ignore: &IgnoreMatcher,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), Error> {
    let dir = root.join(rel);
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    for ent in std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))? {
        let ent = ent.map_err(|e| Error::io("read directory", &dir, e))?;
        names.push(ent.file_name());
    }
    // Go's filepath.Walk order: names compared as bytes.
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let child = rel.join(&name);
        // Patterns see the name as text; the tar keeps the exact bytes.
        let text = child.to_string_lossy().into_owned();
        let path = root.join(&child);
        let md = std::fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        let ft = md.file_type();
        let skip = ignore.matches(&text, ft.is_dir());
        let werr = |e| Error::io("write tar entry", &path, e);
        if ft.is_dir() {
            if !skip {
                let mut h = base_header(&md, tar::EntryType::Directory);
                let mut with_slash = child.clone().into_os_string();
                with_slash.push("/");
                b.append_data(&mut h, with_slash, io::empty()).map_err(werr)?;
            }
            if !skip || ignore.may_include_inside(&text) {
                walk_tar(b, root, &child, ignore, links)?;
            }
            continue;
        }
        if skip {
            continue;
        }
        if ft.is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| Error::io("read link", &path, e))?;
            let mut h = base_header(&md, tar::EntryType::Symlink);
            b.append_link(&mut h, &child, &target).map_err(werr)?;
        } else if ft.is_file() {
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = links.get(&key) {
                    let mut h = base_header(&md, tar::EntryType::Link);
                    b.append_link(&mut h, &child, first).map_err(werr)?;
                    continue;
                }
                links.insert(key, child.clone());
            }
            let f = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
            let mut h = base_header(&md, tar::EntryType::Regular);
            h.set_size(md.len());
            // A file that changes size while we read it must not corrupt the stream: send
            // exactly the size announced, zero-padded if it shrank.
            let body = f.take(md.len()).chain(io::repeat(0)).take(md.len());
            b.append_data(&mut h, &child, body).map_err(werr)?;
        }
        // Sockets, FIFOs and device nodes are not sent, as the docker CLI skips sockets and
        // our daemon refuses the rest anyway.
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names(tar: &[u8]) -> BTreeSet<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_owned())
            .collect()
    }

    fn write(p: &Path, text: &str) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn ignored_files_are_absent_and_build_files_always_sent() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        write(&d.join("Dockerfile"), "FROM scratch\nCOPY . /ctx\n");
        // Excludes everything, the Dockerfile and the ignore file too: docker sends both anyway.
        write(&d.join(".dockerignore"), "*\n!keep\n!src/*.rs\n");
        write(&d.join("big.bin"), "ignored");
        write(&d.join("keep"), "kept");
        write(&d.join("src/main.rs"), "fn main() {}");
        write(&d.join("src/notes.txt"), "ignored");
        let ignore = IgnoreMatcher::load(d, Path::new("Dockerfile")).unwrap();
        let mut out = Vec::new();
        let name = tar_context(d, Path::new("Dockerfile"), &ignore, &mut out).unwrap();
        assert_eq!(name, "Dockerfile");
        let got = names(&out);
        let want: BTreeSet<String> =
            [".dockerignore", "Dockerfile", "keep", "src/main.rs"].iter().map(|s| s.to_string()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dockerfile_outside_the_context_is_added_under_a_private_name() {
        let t = tempfile::tempdir().unwrap();
        write(&t.path().join("ctx/a"), "a");
        write(&t.path().join("elsewhere/Dockerfile"), "FROM scratch\n");
        let mut out = Vec::new();
        let ctx = t.path().join("ctx");
        let name =
            tar_context(&ctx, &t.path().join("elsewhere/Dockerfile"), &IgnoreMatcher::default(), &mut out).unwrap();
        assert!(name.starts_with(".dockerfile."), "{name}");
        let got = names(&out);
        assert!(got.contains("a") && got.contains(&name), "{got:?}");
        let mut a = tar::Archive::new(out.as_slice());
        let mut df =
            a.entries().unwrap().map(Result::unwrap).find(|e| e.path().unwrap().to_str() == Some(&name)).unwrap();
        let mut text = String::new();
        df.read_to_string(&mut text).unwrap();
        assert_eq!(text, "FROM scratch\n");
    }
}
