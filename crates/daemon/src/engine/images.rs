//! Image operations as the API exposes them: resolve (making the built-in hello-world on
//! demand), import, list, inspect, history, tag, remove. The image store does the work;
//! this adds Docker's request semantics and the container-usage checks.

use std::io::Read;
use std::sync::Arc;

use berth_api::query::{CreateImage, Filters};
use berth_base::Reference;
use berth_image::{DeleteItem, Image, ImportOptions};

use super::{Engine, blocking};
use crate::error::{Error, Result};
use crate::record::ContainerRecord;

const HELLO_WORLD: &str = "docker.io/library/hello-world:latest";

impl Engine {
    /// Resolves an image for `create`/`run`; `hello-world` is made on first use.
    pub async fn resolve_image_for_run(self: &Arc<Self>, name: &str) -> Result<Image> {
        let images = self.images.clone();
        let n = name.to_owned();
        match blocking(move || Ok(images.resolve(&n)?)).await {
            Ok(img) => Ok(img),
            Err(Error::Image(e)) if e.kind() == berth_base::ErrorKind::NotFound => {
                match self.builtin_image(name).await? {
                    Some(img) => Ok(img),
                    None => Err(Error::Image(e)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Makes a built-in image if `name` names one (only `hello-world` today).
    async fn builtin_image(&self, name: &str) -> Result<Option<Image>> {
        let Ok(r) = Reference::parse(name) else { return Ok(None) };
        let r = r.with_default_tag();
        if r.to_string() != HELLO_WORLD {
            return Ok(None);
        }
        let tar = crate::hello::rootfs_tar().ok_or_else(|| {
            Error::NotImplemented("the built-in hello-world image is not available on this CPU architecture".to_owned())
        })?;
        let images = self.images.clone();
        let img = blocking(move || {
            let opts = ImportOptions {
                reference: Some(r),
                changes: vec!["CMD [\"/hello\"]".to_owned()],
                message: Some("built into berth".to_owned()),
            };
            Ok(images.import(&mut tar.as_slice(), &opts)?)
        })
        .await?;
        Ok(Some(img))
    }

    /// `POST /images/create?fromImage=…`: berth has no registry client yet, so only
    /// built-in images can be "pulled"; anything else fails with a clear message.
    pub async fn pull_image(&self, from_image: &str, tag: Option<&str>) -> Result<Image> {
        let full = match tag.filter(|t| !t.is_empty()) {
            Some(t) if t.starts_with("sha256:") => format!("{from_image}@{t}"),
            Some(t) => format!("{from_image}:{t}"),
            None => from_image.to_owned(),
        };
        let r = Reference::parse(&full).map_err(|e| Error::InvalidArgument(e.to_string()))?.with_default_tag();
        if let Some(img) = self.builtin_image(&full).await? {
            return Ok(img);
        }
        Err(Error::NotImplemented(format!(
            "cannot pull {}: this berth build has no registry client yet; import a rootfs with `berth import` instead",
            r.familiar()
        )))
    }

    /// `POST /images/create?fromSrc=-`: imports a rootfs tarball from the request body.
    pub async fn import_image(&self, src: Box<dyn Read + Send>, q: CreateImage) -> Result<Image> {
        match q.from_src.as_deref() {
            Some("-") => {}
            Some(other) => {
                return Err(Error::NotImplemented(format!("importing from a URL ({other}) is not supported yet")));
            }
            None => return Err(Error::InvalidArgument("fromSrc is required for an import".to_owned())),
        }
        let reference = match q.repo.as_deref().filter(|r| !r.is_empty()) {
            None => None,
            Some(repo) => {
                let s = match q.tag.as_deref().filter(|t| !t.is_empty()) {
                    Some(t) => format!("{repo}:{t}"),
                    None => repo.to_owned(),
                };
                Some(Reference::parse(&s).map_err(|e| Error::InvalidArgument(e.to_string()))?.with_default_tag())
            }
        };
        let images = self.images.clone();
        let opts = ImportOptions { reference, changes: q.changes, message: q.message };
        let img = blocking(move || {
            let mut src = src;
            Ok(images.import(&mut src, &opts)?)
        })
        .await?;
        self.emit_image(&img.id.to_string(), &img.id.to_string(), "import");
        Ok(img)
    }

    /// `GET /images/json`, filtered.
    pub async fn list_images(&self, filters: &Filters) -> Result<Vec<Image>> {
        for k in filters.0.keys() {
            if !matches!(k.as_str(), "dangling" | "reference" | "label" | "before" | "since") {
                return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
            }
        }
        let images = self.images.clone();
        let mut all = blocking(move || Ok(images.list()?)).await?;
        all.sort_by_key(|b| std::cmp::Reverse(b.created));
        let dangling = filters.get("dangling").first().map(|d| d == "true" || d == "1");
        let refs = filters.get("reference");
        let labels = filters.get("label");
        let mut out = Vec::new();
        for img in all {
            if let Some(d) = dangling
                && d != img.repo_tags.is_empty()
            {
                continue;
            }
            if !refs.is_empty() && !img.repo_tags.iter().any(|t| refs.iter().any(|p| reference_matches(p, t))) {
                continue;
            }
            let img_labels = img.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
            if !labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => img_labels.get(k).is_some_and(|x| x == v),
                None => img_labels.contains_key(l.as_str()),
            }) {
                continue;
            }
            out.push(img);
        }
        Ok(out)
    }

    /// `GET /images/json`: the filtered images, each with how many containers use it.
    pub async fn image_usage(&self, filters: &Filters) -> Result<Vec<ImageUsage>> {
        let images = self.list_images(filters).await?;
        Ok(join_containers(images, &self.records()))
    }

    /// `GET /system/df`: images with their users, every container, and the build cache.
    pub async fn disk_usage(self: &Arc<Self>) -> Result<DiskUsage> {
        let images = self.list_images(&Filters::default()).await?;
        let containers = self.records();
        let layers_size = images.iter().map(|i| i.size).sum();
        let images = join_containers(images, &containers);
        let build_cache = self.build_cache_usage().await?;
        Ok(DiskUsage { layers_size, images, containers, build_cache })
    }

    /// Resolves an image by name or id.
    pub async fn image(&self, name: &str) -> Result<Image> {
        let images = self.images.clone();
        let n = name.to_owned();
        blocking(move || Ok(images.resolve(&n)?)).await
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<berth_image::HistoryEntry>> {
        let images = self.images.clone();
        let n = name.to_owned();
        blocking(move || Ok(images.history(&n)?)).await
    }

    /// `POST /images/{name}/tag`.
    pub async fn tag_image(&self, name: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_owned(),
        };
        let r = Reference::parse(&target).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        if r.digest().is_some() {
            return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".to_owned()));
        }
        let r = r.with_default_tag();
        let images = self.images.clone();
        let n = name.to_owned();
        let familiar = r.familiar();
        let id = blocking(move || {
            images.tag(&n, &r)?;
            Ok(images.resolve(&n).map(|i| i.id.to_string()).unwrap_or_default())
        })
        .await?;
        self.emit_image(&id, &familiar, "tag");
        Ok(())
    }

    /// `DELETE /images/{name}`: untag or delete, with Docker's conflict rules.
    pub async fn remove_image(self: &Arc<Self>, name: &str, force: bool, noprune: bool) -> Result<Vec<DeleteItem>> {
        let engine = self.clone();
        let n = name.to_owned();
        let id = self.image(name).await.map(|i| i.id.to_string()).unwrap_or_default();
        let items = blocking(move || {
            let users = |id: &berth_base::Digest| engine.image_users(id);
            Ok(engine.images.delete(&n, force, noprune, &users)?)
        })
        .await?;
        for item in &items {
            match item {
                DeleteItem::Untagged(_) => self.emit_image(&id, &id, "untag"),
                DeleteItem::Deleted(d) if *d == id => self.emit_image(&id, &id, "delete"),
                DeleteItem::Deleted(_) => {}
            }
        }
        Ok(items)
    }
}

/// An image and the number of containers created from it.
#[derive(Debug)]
pub struct ImageUsage {
    /// The image.
    pub image: Image,
    /// Containers (running or not) whose image it is.
    pub containers: usize,
}

/// What `GET /system/df` reports.
#[derive(Debug)]
pub struct DiskUsage {
    /// Bytes of all image layers.
    pub layers_size: u64,
    /// Every image with its container count.
    pub images: Vec<ImageUsage>,
    /// Every container.
    pub containers: Vec<ContainerRecord>,
    /// Build cache records, in the API's shape.
    pub build_cache: Vec<serde_json::Value>,
}

fn join_containers(images: Vec<Image>, containers: &[ContainerRecord]) -> Vec<ImageUsage> {
    images
        .into_iter()
        .map(|image| {
            let id = image.id.to_string();
            let containers = containers.iter().filter(|r| r.image_id == id).count();
            ImageUsage { image, containers }
        })
        .collect()
}

/// Docker's `reference=` filter: a pattern against the familiar name, with or without tag.
fn reference_matches(pattern: &str, tag: &str) -> bool {
    let name = tag.rsplit_once(':').map(|(n, _)| n).unwrap_or(tag);
    glob_match(pattern, tag) || glob_match(pattern, name)
}

/// `*` matches within a path component and `?` one character (Go's path.Match subset).
fn glob_match(p: &str, s: &str) -> bool {
    let (p, s) = (p.as_bytes(), s.as_bytes());
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' && s[si] != b'/' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star
            && s[mark] != b'/'
        {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_filter() {
        assert!(super::reference_matches("busybox", "busybox:latest"));
        assert!(super::reference_matches("busy*", "busybox:latest"));
        assert!(super::reference_matches("busybox:lat*", "busybox:latest"));
        assert!(!super::reference_matches("bus", "busybox:latest"));
        assert!(!super::reference_matches("*", "localhost:5000/app:1"));
    }
}
