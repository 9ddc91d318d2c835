//! Where an image's size comes from: its layer tars read once each, bottom first, with
//! whiteouts applied to a merged view of paths, giving per-layer sizes and changes, the
//! biggest files and directories of the final image, and the bytes wasted by files that a
//! later layer overwrote or deleted, each with a hint naming the instruction that caused it.
//!
//! Nothing is unpacked: each layer is one streaming pass over its tar (the stored blob,
//! decompressed as the store's other readers do), and memory grows with the number of paths
//! in the image (one compact node per path), not with its bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

use berth_base::Digest;

use crate::error::Error;
use crate::store::{Image, ImageStore};

/// At most this many entries of one layer are listed in [`LayerReport::files`].
pub const MAX_LAYER_FILES: usize = 500;
/// At most this many files, and as many directories, are listed in [`Report::biggest`].
pub const MAX_BIGGEST: usize = 50;
/// Wasted records of one kind in one directory (same adding and removing layer) beyond this
/// many are folded into one record for the directory, so a `chmod -R` over 50,000 files
/// yields a few hundred records, not 50,000.
const FOLD_OVER: usize = 10;

/// The whole analysis of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The image id (`sha256:…`).
    pub id: String,
    /// Its tags, familiar form.
    pub repo_tags: Vec<String>,
    /// Sum of the regular file sizes visible in the merged image.
    pub size: u64,
    /// Sum of the layers' sizes.
    pub layers_size: u64,
    /// Sum of [`Report::wasted`] sizes.
    pub wasted_bytes: u64,
    /// `size / layers_size` (1 for an image without bytes).
    pub efficiency: f64,
    /// One entry per history step, bottom first (config-only steps have `empty_layer`).
    pub layers: Vec<LayerReport>,
    /// The biggest files, then the biggest directories, of the final image.
    pub biggest: Vec<Biggest>,
    /// Bytes hidden by a later layer, largest first.
    pub wasted: Vec<Waste>,
}

/// One history step and, when it made one, its layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReport {
    /// Position in [`Report::layers`].
    pub index: usize,
    /// The layer's diff id; `None` for a step that made no layer.
    pub diff_id: Option<Digest>,
    /// The history's `created_by`, as stored.
    pub created_by: String,
    /// The instruction as `docker history` users read it (`RUN pip install …`).
    pub instruction: String,
    /// True when the step made no layer.
    pub empty_layer: bool,
    /// Sum of regular file sizes in the layer's tar.
    pub size: u64,
    /// Entries new to the image.
    pub added: u64,
    /// Entries that replaced a path of a lower layer.
    pub modified: u64,
    /// Paths of lower layers this layer removed (whiteouts, opaque directories).
    pub deleted: u64,
    /// The layer's entries, largest first, at most [`MAX_LAYER_FILES`].
    pub files: Vec<FileChange>,
}

/// One entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    /// Absolute path inside the image.
    pub path: String,
    /// The entry's size; for a deletion, the bytes of lower files it removed.
    pub size: u64,
    /// What the entry did.
    pub change: Change,
    /// What the entry is (for a deletion, what it removed).
    pub kind: Kind,
}

/// What a layer entry did to the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// A path no lower layer had.
    Added,
    /// A path a lower layer had.
    Modified,
    /// A lower path removed.
    Deleted,
}

impl Change {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Modified => "modified",
            Change::Deleted => "deleted",
        }
    }
}

/// The type of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to a file of the same layer.
    Hardlink,
    /// A device node or fifo.
    Other,
}

impl Kind {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Hardlink => "hardlink",
            Kind::Other => "other",
        }
    }

    fn of(t: tar::EntryType) -> Kind {
        use tar::EntryType as T;
        match t {
            T::Regular | T::Continuous | T::GNUSparse => Kind::File,
            T::Directory => Kind::Dir,
            T::Symlink => Kind::Symlink,
            T::Link => Kind::Hardlink,
            _ => Kind::Other,
        }
    }
}

/// A big file or directory of the final image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Biggest {
    /// Absolute path.
    pub path: String,
    /// A file's size, or the sum of the files under a directory.
    pub size: u64,
    /// [`Kind::File`] or [`Kind::Dir`].
    pub kind: Kind,
    /// The index (in [`Report::layers`]) of the last layer that wrote it (for a directory,
    /// it or anything under it).
    pub layer: usize,
}

/// How a later layer hid bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum How {
    /// Replaced by an entry of the same path (or a non-directory over a directory).
    Overwritten,
    /// Removed by a whiteout or an opaque directory.
    Deleted,
}

impl How {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            How::Overwritten => "overwritten",
            How::Deleted => "deleted",
        }
    }
}

/// Bytes that a layer stores but the final image does not show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waste {
    /// The file, or the directory whose files these are.
    pub path: String,
    /// Bytes hidden.
    pub size: u64,
    /// How many regular files those bytes are.
    pub files: u64,
    /// Index of the layer that added them.
    pub layer: usize,
    /// Index of the layer that overwrote or deleted them.
    pub by: usize,
    /// How.
    pub how: How,
    /// One sentence naming the instruction that caused it and what to do instead.
    pub hint: String,
}

/// One history step handed to the analysis: what made it and, when it made a layer, the
/// layer's diff id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The history's `created_by`.
    pub created_by: String,
    /// The layer, `None` for a config-only step.
    pub diff_id: Option<Digest>,
}

/// The steps of an image: its history entries, with its diff ids given in order to the
/// entries that made a layer. Layers the history does not account for (an imported image,
/// a config written by hand) get steps of their own with an empty `created_by`.
pub fn steps_of(image: &Image) -> Vec<Step> {
    let mut diffs = image.diff_ids.iter();
    let mut steps = Vec::new();
    for h in image.config.history().as_deref().unwrap_or_default() {
        let created_by = h.created_by().clone().unwrap_or_default();
        let diff_id = if h.empty_layer().unwrap_or(false) { None } else { diffs.next().cloned() };
        steps.push(Step { created_by, diff_id });
    }
    steps.extend(diffs.map(|d| Step { created_by: String::new(), diff_id: Some(d.clone()) }));
    steps
}

impl ImageStore {
    /// Analyses where the size of the image `name` (reference or id) comes from, reading each
    /// of its layer blobs once. `No such image: name` when there is none.
    pub fn explore(&self, name: &str) -> Result<Report, Error> {
        let image = self.resolve(name)?;
        let layers = self.image_layers(&image.id)?;
        let mut blobs: HashMap<&Digest, &Digest> = HashMap::new();
        for l in &layers {
            blobs.insert(&l.diff_id, &l.blob);
        }
        let steps = steps_of(&image);
        let mut a = Analysis::new(&steps);
        for (index, step) in steps.iter().enumerate() {
            let Some(diff) = &step.diff_id else { continue };
            let blob = blobs.get(diff).copied().ok_or_else(|| Error::LayerNotFound(diff.to_string()))?;
            let mut f = self.content().open_blob(blob)?;
            let mut tar = crate::apply::decompress(&mut f)?;
            a.add_layer(index, &mut tar).map_err(|source| Error::ReadLayer { diff_id: diff.to_string(), source })?;
        }
        Ok(a.finish(image.id.to_string(), image.repo_tags.clone()))
    }
}

/// A path of the merged image: 16 bytes beside its key.
#[derive(Debug, Clone, Copy)]
struct Node {
    /// Bytes of a regular file (0 for anything else, hard links included: their bytes are
    /// their target's).
    size: u64,
    /// The step index that last wrote it.
    layer: u32,
    kind: Kind,
}

/// A waste record being gathered, before folding.
#[derive(Debug, Clone)]
struct WasteSum {
    size: u64,
    files: u64,
    /// True while every overwrite in it kept the file's size (a chmod, chown or touch).
    same_size: bool,
    /// Its biggest file, which names the cause when the record is a whole tree
    /// (`/root/.cache` deleted, its bytes being pip's).
    sample: Box<str>,
    sample_size: u64,
}

impl WasteSum {
    fn new() -> WasteSum {
        WasteSum { size: 0, files: 0, same_size: true, sample: "".into(), sample_size: 0 }
    }

    fn add(&mut self, o: &WasteSum) {
        self.size += o.size;
        self.files += o.files;
        self.same_size &= o.same_size;
        if o.sample_size > self.sample_size || self.sample.is_empty() {
            self.sample = o.sample.clone();
            self.sample_size = o.sample_size;
        }
    }
}

type WasteKey = (Box<str>, u32, u32, How);
/// (path, layer, by, how) of a record being folded.
type RecordKey<'a> = (&'a str, u32, u32, How);

/// The analysis in progress: feed it each layer's tar in order with
/// [`Analysis::add_layer`], then [`Analysis::finish`].
pub struct Analysis {
    merged: BTreeMap<Box<str>, Node>,
    layers: Vec<LayerReport>,
    waste: HashMap<WasteKey, WasteSum>,
}

/// One entry read from a layer's tar.
struct Entry {
    path: Box<str>,
    size: u64,
    kind: Kind,
}

impl Analysis {
    /// Starts the analysis of an image made of `steps` (bottom first).
    pub fn new(steps: &[Step]) -> Analysis {
        let layers = steps
            .iter()
            .enumerate()
            .map(|(index, s)| LayerReport {
                index,
                diff_id: s.diff_id.clone(),
                created_by: s.created_by.clone(),
                instruction: instruction(&s.created_by),
                empty_layer: s.diff_id.is_none(),
                size: 0,
                added: 0,
                modified: 0,
                deleted: 0,
                files: Vec::new(),
            })
            .collect();
        Analysis { merged: BTreeMap::new(), layers, waste: HashMap::new() }
    }

    /// Reads the (uncompressed) tar of the layer made by step `index` and applies it on top
    /// of the layers before it. Layers must come bottom first.
    pub fn add_layer(&mut self, index: usize, tar: &mut dyn Read) -> io::Result<()> {
        let this = index as u32;
        let mut entries: Vec<Entry> = Vec::new();
        let mut whiteouts: Vec<Box<str>> = Vec::new();
        let mut opaque: Vec<Box<str>> = Vec::new();
        let mut layer_size = 0u64;
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries()? {
            let entry = entry?;
            let raw = entry.path_bytes();
            let Some(path) = clean(&raw) else { continue };
            let (parent, name) = split(&path);
            if name == berth_base::fsroot::WH_OPAQUE {
                opaque.push(parent.into());
                continue;
            }
            if let Some(target) = name.strip_prefix(berth_base::fsroot::WH_PREFIX) {
                // Other `.wh..wh.` names are aufs bookkeeping, not whiteouts.
                if !target.starts_with(".wh.") && !target.is_empty() {
                    whiteouts.push(join(parent, target).into());
                }
                continue;
            }
            let kind = Kind::of(entry.header().entry_type());
            let size = if kind == Kind::File { entry.size() } else { 0 };
            layer_size += size;
            entries.push(Entry { path: path.into(), size, kind });
        }

        let mut files: Vec<FileChange> = Vec::new();
        let (mut added, mut modified, mut deleted) = (0u64, 0u64, 0u64);
        // Entries first, against the lower view (a duplicate within the layer replaces its
        // earlier copy, as extraction does); whiteouts after, skipping this layer's paths,
        // since a layer's whiteouts hide only what is below it.
        for e in entries {
            let node = Node { size: e.size, layer: this, kind: e.kind };
            let change = match self.merged.get(&e.path).copied() {
                None => Change::Added,
                Some(old) => {
                    if old.kind == Kind::File && old.size > 0 {
                        let same = e.kind == Kind::File && e.size == old.size;
                        self.add_waste(&e.path, &e.path, old.layer, this, How::Overwritten, old.size, same);
                    }
                    if old.kind == Kind::Dir && e.kind != Kind::Dir {
                        self.remove_under(&e.path, this, How::Overwritten, Some(&e.path), None);
                    }
                    if old.layer == this { Change::Added } else { Change::Modified }
                }
            };
            if change == Change::Modified {
                modified += 1;
            } else {
                added += 1;
            }
            files.push(FileChange { path: e.path.to_string(), size: e.size, change, kind: e.kind });
            self.merged.insert(e.path, node);
        }
        for w in whiteouts {
            let own = self.merged.get(&w).copied();
            let mut removed = 0u64;
            let mut any = false;
            if let Some(old) = own
                && old.layer != this
            {
                self.merged.remove(&w);
                any = true;
                if old.kind == Kind::File && old.size > 0 {
                    self.add_waste(&w, &w, old.layer, this, How::Deleted, old.size, false);
                    removed += old.size;
                }
            }
            let (n, bytes) = self.remove_under(&w, this, How::Deleted, Some(&w), None);
            any |= n > 0;
            removed += bytes;
            if any {
                deleted += 1;
                let kind = match own {
                    Some(o) if o.layer != this => o.kind,
                    _ => Kind::Dir,
                };
                files.push(FileChange { path: w.to_string(), size: removed, change: Change::Deleted, kind });
            }
        }
        for dir in opaque {
            let mut children: BTreeMap<Box<str>, (u64, Kind)> = BTreeMap::new();
            self.remove_under(&dir, this, How::Deleted, None, Some(&mut children));
            for (path, (size, kind)) in children {
                // A child this layer wrote again is listed as modified already.
                if self.merged.get(&path).is_some_and(|n| n.layer == this) {
                    continue;
                }
                deleted += 1;
                files.push(FileChange { path: path.into(), size, change: Change::Deleted, kind });
            }
        }
        files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
        files.truncate(MAX_LAYER_FILES);
        if let Some(l) = self.layers.get_mut(index) {
            l.size = layer_size;
            l.added = added;
            l.modified = modified;
            l.deleted = deleted;
            l.files = files;
        }
        Ok(())
    }

    /// Removes every path strictly under `dir` that a lower layer wrote, recording its bytes
    /// as waste at `at` (a whiteout's or an overwritten directory's path), or else at the
    /// direct child of `dir` they are under (an opaque directory). With `children`, fills in
    /// each removed direct child's bytes and kind. Returns how many paths went and their bytes.
    fn remove_under(
        &mut self,
        dir: &str,
        this: u32,
        how: How,
        at: Option<&str>,
        mut children: Option<&mut BTreeMap<Box<str>, (u64, Kind)>>,
    ) -> (u64, u64) {
        let lo = format!("{}/", dir.trim_end_matches('/'));
        let gone: Vec<(Box<str>, Node)> = self
            .merged
            .range::<str, _>((std::ops::Bound::Included(lo.as_str()), std::ops::Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&lo))
            .filter(|(_, n)| n.layer != this)
            .map(|(k, n)| (k.clone(), *n))
            .collect();
        let mut bytes = 0;
        for (path, node) in &gone {
            self.merged.remove(path);
            let rest = &path[lo.len()..];
            let child = match rest.find('/') {
                Some(i) => &path[..lo.len() + i],
                None => &path[..],
            };
            if let Some(c) = children.as_deref_mut() {
                let slot = c.entry(child.into()).or_insert((0, Kind::Dir));
                slot.0 += node.size;
                if child.len() == path.len() {
                    slot.1 = node.kind;
                }
            }
            if node.kind == Kind::File && node.size > 0 {
                bytes += node.size;
                self.add_waste(at.unwrap_or(child), path, node.layer, this, how, node.size, false);
            }
        }
        (gone.len() as u64, bytes)
    }

    /// Records `size` bytes of the file `file`, added by step `layer` and hidden by step
    /// `by`, in the record of `at`.
    #[allow(clippy::too_many_arguments)]
    fn add_waste(&mut self, at: &str, file: &str, layer: u32, by: u32, how: How, size: u64, same_size: bool) {
        let one = WasteSum { size, files: 1, same_size, sample: file.into(), sample_size: size };
        self.waste.entry((at.into(), layer, by, how)).or_insert_with(WasteSum::new).add(&one);
    }

    /// Ends the analysis of the image `id` tagged `repo_tags`.
    pub fn finish(self, id: String, repo_tags: Vec<String>) -> Report {
        let size: u64 = self.merged.values().filter(|n| n.kind == Kind::File).map(|n| n.size).sum();
        let layers_size: u64 = self.layers.iter().map(|l| l.size).sum();
        let biggest = biggest(&self.merged);
        let wasted = self.wasted();
        let wasted_bytes = wasted.iter().map(|w| w.size).sum();
        let efficiency = if layers_size == 0 { 1.0 } else { size as f64 / layers_size as f64 };
        Report { id, repo_tags, size, layers_size, wasted_bytes, efficiency, layers: self.layers, biggest, wasted }
    }

    /// The waste records, folded by directory where one directory holds many, with hints.
    fn wasted(&self) -> Vec<Waste> {
        // Group by (parent directory, layer, by, how); big groups become one record.
        let mut groups: HashMap<RecordKey<'_>, Vec<(&str, &WasteSum)>> = HashMap::new();
        for ((path, layer, by, how), sum) in &self.waste {
            if sum.size == 0 {
                continue;
            }
            let (parent, _) = split(path);
            groups.entry((parent, *layer, *by, *how)).or_default().push((path, sum));
        }
        let mut records: HashMap<RecordKey<'_>, WasteSum> = HashMap::new();
        for ((parent, layer, by, how), members) in groups {
            if members.len() > FOLD_OVER {
                let at = if parent.is_empty() { "/" } else { parent };
                let r = records.entry((at, layer, by, how)).or_insert_with(WasteSum::new);
                for (_, m) in members {
                    r.add(m);
                }
            } else {
                for (path, m) in members {
                    records.entry((path, layer, by, how)).or_insert_with(WasteSum::new).add(m);
                }
            }
        }
        let mut out: Vec<Waste> = records
            .into_iter()
            .map(|((path, layer, by, how), s)| Waste {
                path: path.to_owned(),
                size: s.size,
                files: s.files,
                layer: layer as usize,
                by: by as usize,
                how,
                hint: self.hint(path, layer as usize, by as usize, how, &s),
            })
            .collect();
        out.sort_by(|a, b| {
            b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)).then_with(|| (a.layer, a.by).cmp(&(b.layer, b.by)))
        });
        out
    }

    fn named(&self, index: usize) -> String {
        match self.layers.get(index) {
            Some(l) if !l.instruction.is_empty() => format!("`{}`", shorten(&l.instruction, 60)),
            _ => format!("layer {index}"),
        }
    }

    fn hint(&self, path: &str, layer: usize, by: usize, how: How, s: &WasteSum) -> String {
        let added = self.named(layer);
        let later = self.named(by);
        let what = if s.files > 1 { format!("{path} ({} files)", s.files) } else { path.to_owned() };
        // The record's own path, or the biggest file in it, tells what the bytes were.
        let sample = &*s.sample;
        let has = |needle: &str| {
            let bare = needle.trim_end_matches('/');
            [path, sample].iter().any(|p| p.contains(needle) || p.ends_with(bare))
        };
        if has("/var/lib/apt/lists/") {
            return format!(
                "{added} left the apt package lists in {what}: delete them in the same RUN (rm -rf /var/lib/apt/lists/*)"
            );
        }
        if has("/var/cache/apt/") {
            return format!(
                "{added} left downloaded packages in {what}: run apt-get clean in the same RUN, or use RUN --mount=type=cache,target=/var/cache/apt"
            );
        }
        if has("/var/cache/apk/") {
            return format!("{added} left the apk cache in {what}: use apk add --no-cache");
        }
        if has("/var/lib/dpkg/") || has("/var/log/apt/") || sample.starts_with("/var/log/dpkg") {
            return format!(
                "{added} wrote package-manager records ({what}) that {later} rewrote: install all packages in one RUN"
            );
        }
        if has("/.cache/pip/") {
            return format!(
                "{added} left pip's cache in {what}: use pip install --no-cache-dir (or PIP_NO_CACHE_DIR=1)"
            );
        }
        if has("/.npm/") || has("/_cacache/") {
            return format!(
                "{added} left npm's cache in {what}: run npm cache clean --force in the same RUN, or use RUN --mount=type=cache,target=/root/.npm"
            );
        }
        if has("/.cargo/registry/") || has("/.cargo/git/") {
            return format!(
                "{added} left cargo's registry in {what}: use RUN --mount=type=cache for it, or build in a separate stage and COPY --from only the binary"
            );
        }
        if has("/__pycache__/") || path.ends_with(".pyc") || sample.ends_with(".pyc") {
            return format!(
                "{added} wrote Python bytecode ({what}) that {later} replaced or removed: set PYTHONDONTWRITEBYTECODE=1, or remove it in the same RUN"
            );
        }
        if has("/.git/") {
            return format!("{added} put a .git directory in the image ({what}): add .git to .dockerignore");
        }
        match how {
            How::Overwritten if s.same_size => format!(
                "{added} wrote {what} and {later} rewrote it whole, as a chmod, chown or touch does: set the mode and owner where it is created (COPY --chmod/--chown, or chmod in the same RUN)"
            ),
            How::Overwritten => format!(
                "{added} wrote {what} and {later} replaced it: write it once, in the step that makes its final version"
            ),
            How::Deleted => format!(
                "{added} created {what} and {later} deleted it, but its bytes stay in the earlier layer: delete it in the same RUN that creates it, or build it in another stage and COPY --from only what you need"
            ),
        }
    }
}

/// The top files and directories of the final view.
fn biggest(merged: &BTreeMap<Box<str>, Node>) -> Vec<Biggest> {
    let mut files: Vec<(&str, Node)> =
        merged.iter().filter(|(_, n)| n.kind == Kind::File).map(|(k, n)| (&**k, *n)).collect();
    files.sort_by(|a, b| b.1.size.cmp(&a.1.size).then_with(|| a.0.cmp(b.0)));
    // Directory sizes: each file's bytes added to each of its ancestors (slices of the
    // file's own key, so nothing is allocated per ancestor).
    let mut dirs: HashMap<&str, (u64, u32)> = HashMap::new();
    for (path, n) in merged.iter() {
        if n.kind == Kind::Dir {
            let d = dirs.entry(&**path).or_insert((0, n.layer));
            d.1 = d.1.max(n.layer);
        }
        let mut end = path.len();
        while let Some(i) = path[..end].rfind('/') {
            if i == 0 {
                break;
            }
            let d = dirs.entry(&path[..i]).or_insert((0, n.layer));
            if n.kind == Kind::File {
                d.0 += n.size;
            }
            d.1 = d.1.max(n.layer);
            end = i;
        }
    }
    let mut dirs: Vec<(&str, (u64, u32))> = dirs.into_iter().collect();
    dirs.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(b.0)));
    let mut out: Vec<Biggest> = files
        .into_iter()
        .take(MAX_BIGGEST)
        .map(|(p, n)| Biggest { path: p.to_owned(), size: n.size, kind: Kind::File, layer: n.layer as usize })
        .collect();
    out.extend(dirs.into_iter().take(MAX_BIGGEST).map(|(p, (size, layer))| Biggest {
        path: p.to_owned(),
        size,
        kind: Kind::Dir,
        layer: layer as usize,
    }));
    out
}

/// A tar entry name as an absolute, clean path (`./usr/bin/` → `/usr/bin`); `None` for the
/// root itself. `..` cannot climb above the root.
fn clean(raw: &[u8]) -> Option<String> {
    let s = String::from_utf8_lossy(raw);
    let mut parts: Vec<&str> = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len() + 1);
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    Some(out)
}

/// `/a/b/c` → (`/a/b`, `c`); `/a` → (``, `a`).
fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => ("", path),
    }
}

fn join(parent: &str, name: &str) -> String {
    format!("{parent}/{name}")
}

fn shorten(s: &str, max: usize) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() <= max {
        return s;
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// A history `created_by` as the Dockerfile instruction it came from: the classic builder's
/// `/bin/sh -c #(nop)  CMD …` is `CMD …`, its `/bin/sh -c apt-get update` (with or without a
/// `|N ARG=…` prefix) is `RUN apt-get update`, BuildKit's `RUN /bin/sh -c … # buildkit` is
/// `RUN …`; berth's builder already records the instruction's text, kept as it is.
pub fn instruction(created_by: &str) -> String {
    let s = created_by.trim();
    let s = s.strip_suffix("# buildkit").map(str::trim_end).unwrap_or(s);
    if let Some(rest) = s.strip_prefix("/bin/sh -c #(nop)") {
        return rest.trim().to_owned();
    }
    // `|2 A=1 B=2 /bin/sh -c cmd` (build args) and BuildKit's `RUN |2 A=1 B=2 /bin/sh -c cmd`.
    let (run, rest) = match s.strip_prefix("RUN ") {
        Some(r) => (true, r.trim_start()),
        None => (false, s),
    };
    let rest = if rest.starts_with('|')
        && let Some(i) = rest.find(" /bin/sh -c ")
    {
        &rest[i + 1..]
    } else {
        rest
    };
    if let Some(cmd) = rest.strip_prefix("/bin/sh -c ") {
        return format!("RUN {}", cmd.trim());
    }
    if run { format!("RUN {rest}") } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer tar built in the test: `(path, what)` entries in order.
    enum E<'a> {
        File(&'a str, usize),
        Dir(&'a str),
        Link(&'a str, &'a str),
        Sym(&'a str, &'a str),
    }

    fn tar_of(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            match e {
                E::File(p, n) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(*n as u64);
                    b.append_data(&mut h, p, &vec![b'x'; *n][..]).unwrap();
                }
                E::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    b.append_data(&mut h, p, &[][..]).unwrap();
                }
                E::Link(p, t) => {
                    h.set_entry_type(tar::EntryType::Link);
                    h.set_size(0);
                    b.append_link(&mut h, p, t).unwrap();
                }
                E::Sym(p, t) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    b.append_link(&mut h, p, t).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn run(layers: &[(&str, Vec<u8>)]) -> Report {
        let steps: Vec<Step> =
            layers.iter().map(|(by, t)| Step { created_by: by.to_string(), diff_id: Some(Digest::of(t)) }).collect();
        let mut a = Analysis::new(&steps);
        for (i, (_, t)) in layers.iter().enumerate() {
            a.add_layer(i, &mut &t[..]).unwrap();
        }
        let r = a.finish("sha256:x".into(), vec![]);
        // Every byte a layer stores is either visible or wasted.
        assert_eq!(r.size + r.wasted_bytes, r.layers_size, "{r:#?}");
        r
    }

    fn file<'a>(l: &'a LayerReport, path: &str) -> &'a FileChange {
        l.files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} not in {:#?}", l.files))
    }

    #[test]
    fn whiteout_deletes_a_file_and_its_bytes_are_wasted() {
        let r = run(&[
            ("RUN make", tar_of(&[E::Dir("tmp/"), E::File("tmp/big", 1000), E::File("keep", 10)])),
            ("RUN rm /tmp/big", tar_of(&[E::Dir("tmp/"), E::File("tmp/.wh.big", 0)])),
        ]);
        assert_eq!(r.size, 10);
        assert_eq!(r.layers_size, 1010);
        assert_eq!(r.layers[0].added, 3);
        assert_eq!((r.layers[1].added, r.layers[1].modified, r.layers[1].deleted), (0, 1, 1));
        let d = file(&r.layers[1], "/tmp/big");
        assert_eq!((d.size, d.change, d.kind), (1000, Change::Deleted, Kind::File));
        assert_eq!(r.wasted.len(), 1);
        let w = &r.wasted[0];
        assert_eq!((w.path.as_str(), w.size, w.layer, w.by, w.how), ("/tmp/big", 1000, 0, 1, How::Deleted));
        assert!(w.hint.contains("`RUN make`") && w.hint.contains("`RUN rm /tmp/big`"), "{}", w.hint);
        assert!((r.efficiency - 10.0 / 1010.0).abs() < 1e-12);
    }

    #[test]
    fn whiteout_of_a_directory_takes_its_tree_grouped_by_adding_layer() {
        let r = run(&[
            ("RUN apt-get update", tar_of(&[E::File("var/lib/apt/lists/a", 300), E::File("var/lib/apt/lists/b", 200)])),
            ("RUN touch c", tar_of(&[E::File("var/lib/apt/lists/c", 50)])),
            ("RUN rm -rf /var/lib/apt/lists", tar_of(&[E::File("var/lib/apt/.wh.lists", 0)])),
        ]);
        assert_eq!(r.size, 0);
        assert_eq!(r.wasted_bytes, 550);
        let d = file(&r.layers[2], "/var/lib/apt/lists");
        assert_eq!((d.size, d.change, d.kind), (550, Change::Deleted, Kind::Dir));
        assert_eq!(r.layers[2].deleted, 1);
        let w: Vec<_> = r.wasted.iter().map(|w| (w.path.as_str(), w.size, w.files, w.layer, w.by)).collect();
        assert_eq!(w, vec![("/var/lib/apt/lists", 500, 2, 0, 2), ("/var/lib/apt/lists", 50, 1, 1, 2)]);
        assert!(
            r.wasted[0].hint.starts_with("`RUN apt-get update` left the apt package lists"),
            "{}",
            r.wasted[0].hint
        );
        assert!(r.wasted[0].hint.contains("rm -rf /var/lib/apt/lists/*"));
    }

    #[test]
    fn opaque_directory_hides_lower_children_only() {
        let r = run(&[
            (
                "RUN a",
                tar_of(&[E::Dir("app/"), E::File("app/old", 100), E::File("app/same", 40), E::File("app/sub/x", 7)]),
            ),
            (
                "RUN b",
                tar_of(&[
                    E::Dir("app/"),
                    E::File("app/new", 5),
                    E::File("app/.wh..wh..opq", 0),
                    E::File("app/same", 1),
                ]),
            ),
        ]);
        // app/new and the rewritten app/same come from this layer and survive the opaque
        // marker, wherever it sits in the tar.
        assert_eq!(r.size, 6);
        let l = &r.layers[1];
        assert_eq!((l.added, l.modified, l.deleted), (1, 2, 2));
        assert_eq!(file(l, "/app/old").change, Change::Deleted);
        assert_eq!(file(l, "/app/sub").size, 7);
        assert_eq!(file(l, "/app/sub").kind, Kind::Dir);
        assert_eq!(file(l, "/app/same").change, Change::Modified);
        let w: Vec<_> = r.wasted.iter().map(|w| (w.path.as_str(), w.size, w.how)).collect();
        assert_eq!(
            w,
            vec![("/app/old", 100, How::Deleted), ("/app/same", 40, How::Overwritten), ("/app/sub", 7, How::Deleted)]
        );
    }

    #[test]
    fn overwrite_wastes_the_lower_copy_and_same_size_reads_as_chmod() {
        let r = run(&[
            ("COPY app.bin /app.bin", tar_of(&[E::File("app.bin", 500), E::File("conf", 20)])),
            ("RUN chmod +x /app.bin && echo >> /conf", tar_of(&[E::File("app.bin", 500), E::File("conf", 21)])),
        ]);
        assert_eq!(r.size, 521);
        assert_eq!(r.layers[1].modified, 2);
        let w = &r.wasted[0];
        assert_eq!((w.path.as_str(), w.size, w.how), ("/app.bin", 500, How::Overwritten));
        assert!(w.hint.contains("chmod"), "{}", w.hint);
        assert!(w.hint.starts_with("`COPY app.bin /app.bin`"), "{}", w.hint);
        assert!(r.wasted[1].hint.ends_with("replaced it: write it once, in the step that makes its final version"));
    }

    #[test]
    fn a_file_over_a_directory_hides_the_tree() {
        let r = run(&[
            ("RUN a", tar_of(&[E::Dir("d/"), E::File("d/x", 30), E::File("d/y/z", 3)])),
            ("RUN b", tar_of(&[E::Sym("d", "/elsewhere")])),
        ]);
        assert_eq!(r.size, 0);
        assert_eq!(r.wasted_bytes, 33);
        assert_eq!(file(&r.layers[1], "/d").kind, Kind::Symlink);
        assert!(r.wasted.iter().all(|w| w.how == How::Overwritten));
    }

    #[test]
    fn hardlinks_and_symlinks_carry_no_bytes_and_duplicates_in_one_layer_waste() {
        let r = run(&[(
            "RUN x",
            tar_of(&[
                E::File("bin/busybox", 900),
                E::Link("bin/sh", "bin/busybox"),
                E::Sym("bin/ls", "busybox"),
                E::File("f", 4),
                E::File("f", 6),
            ]),
        )]);
        assert_eq!(r.layers_size, 910);
        assert_eq!(r.size, 906);
        let l = &r.layers[0];
        assert_eq!(file(l, "/bin/sh").kind, Kind::Hardlink);
        assert_eq!(file(l, "/bin/ls").kind, Kind::Symlink);
        assert_eq!(l.added, 5, "a path written twice is still new to the image");
        assert_eq!((r.wasted[0].path.as_str(), r.wasted[0].size, r.wasted[0].by), ("/f", 4, 0));
    }

    #[test]
    fn biggest_lists_files_then_directories_with_their_last_writer() {
        let r = run(&[
            ("RUN a", tar_of(&[E::File("usr/lib/a", 100), E::File("usr/lib/b", 50), E::File("usr/bin/c", 10)])),
            ("RUN b", tar_of(&[E::File("usr/lib/b", 60), E::File("opt/d", 1)])),
        ]);
        let files: Vec<_> =
            r.biggest.iter().filter(|b| b.kind == Kind::File).map(|b| (b.path.as_str(), b.size, b.layer)).collect();
        assert_eq!(files, vec![("/usr/lib/a", 100, 0), ("/usr/lib/b", 60, 1), ("/usr/bin/c", 10, 0), ("/opt/d", 1, 1)]);
        let dirs: Vec<_> =
            r.biggest.iter().filter(|b| b.kind == Kind::Dir).map(|b| (b.path.as_str(), b.size, b.layer)).collect();
        assert_eq!(dirs, vec![("/usr", 170, 1), ("/usr/lib", 160, 1), ("/usr/bin", 10, 0), ("/opt", 1, 1)]);
    }

    #[test]
    fn many_overwrites_in_one_directory_fold_into_one_record() {
        let names: Vec<String> = (0..50).map(|i| format!("lib/f{i:02}")).collect();
        let first: Vec<E<'_>> = names.iter().map(|n| E::File(n, 10)).collect();
        let r = run(&[("COPY lib /lib", tar_of(&first)), ("RUN chown -R app /lib", tar_of(&first))]);
        assert_eq!(r.wasted.len(), 1);
        let w = &r.wasted[0];
        assert_eq!((w.path.as_str(), w.size, w.files), ("/lib", 500, 50));
        assert!(w.hint.contains("(50 files)") && w.hint.contains("chown"), "{}", w.hint);
    }

    #[test]
    fn caches_get_their_own_hints() {
        let r = run(&[
            (
                "RUN pip install numpy",
                tar_of(&[E::File("root/.cache/pip/http/ab", 70), E::File("app/__pycache__/m.pyc", 3)]),
            ),
            (
                "RUN rm -rf /root/.cache /app/__pycache__",
                tar_of(&[E::File("root/.wh..cache", 0), E::File("app/.wh.__pycache__", 0)]),
            ),
        ]);
        assert!(r.wasted[0].hint.contains("--no-cache-dir"), "{}", r.wasted[0].hint);
        assert!(r.wasted[1].hint.contains("PYTHONDONTWRITEBYTECODE"), "{}", r.wasted[1].hint);
    }

    #[test]
    fn empty_steps_keep_their_place_and_imported_layers_get_steps() {
        let t = tar_of(&[E::File("a", 1)]);
        let steps = vec![
            Step { created_by: "/bin/sh -c #(nop) ADD file:123 in / ".into(), diff_id: Some(Digest::of(&t)) },
            Step { created_by: "/bin/sh -c #(nop)  CMD [\"sh\"]".into(), diff_id: None },
        ];
        let mut a = Analysis::new(&steps);
        a.add_layer(0, &mut &t[..]).unwrap();
        let r = a.finish("sha256:x".into(), vec!["x:latest".into()]);
        assert_eq!(r.layers.len(), 2);
        assert!(r.layers[1].empty_layer && r.layers[1].diff_id.is_none());
        assert_eq!(r.layers[0].instruction, "ADD file:123 in /");
        assert_eq!(r.layers[1].instruction, "CMD [\"sh\"]");
    }

    #[test]
    fn instructions_read_as_docker_history_shows_them() {
        assert_eq!(instruction("/bin/sh -c apt-get update"), "RUN apt-get update");
        assert_eq!(instruction("|2 A=1 B=x y /bin/sh -c make"), "RUN make");
        assert_eq!(instruction("RUN /bin/sh -c pip install x # buildkit"), "RUN pip install x");
        assert_eq!(instruction("RUN |1 V=3 /bin/sh -c echo $V # buildkit"), "RUN echo $V");
        assert_eq!(instruction("COPY . /app # buildkit"), "COPY . /app");
        assert_eq!(instruction("RUN apt-get update"), "RUN apt-get update");
        assert_eq!(instruction("WORKDIR /app"), "WORKDIR /app");
        assert_eq!(instruction(""), "");
    }

    #[test]
    fn paths_are_cleaned() {
        assert_eq!(clean(b"./usr/bin/"), Some("/usr/bin".into()));
        assert_eq!(clean(b"/a//b/./c"), Some("/a/b/c".into()));
        assert_eq!(clean(b"../../x"), Some("/x".into()));
        assert_eq!(clean(b"./"), None);
    }

    #[test]
    fn a_truncated_tar_is_an_error() {
        let t = tar_of(&[E::File("a", 5000)]);
        let steps = vec![Step { created_by: String::new(), diff_id: Some(Digest::of(&t)) }];
        let mut a = Analysis::new(&steps);
        assert!(a.add_layer(0, &mut &t[..1024]).is_err());
    }
}
