//! `GET /berth/images/{name}/explore`: where an image's size comes from. The image store
//! reads the layers (on the blocking pool: a big image is gigabytes of tar); this turns its
//! report into the wire types the CLI and the dashboard read, and remembers the last few.
//!
//! An analysis depends on nothing but the image id (the config digest fixes the history and
//! the diff ids, which fix every layer's bytes), so a report is kept by id and served again
//! with only the tags brought up to date: a dashboard reopening an image view does not read
//! its gigabytes again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use berth_api::client::explore::{ExploreBiggest, ExploreFile, ExploreLayer, ExploreWaste, ImageExplore};
use berth_image::explore::Report;

use super::{Engine, blocking};
use crate::error::Result;

/// How many reports are kept (each is bounded: 500 entries a layer, 100 biggest, the
/// folded waste records).
const KEPT: usize = 8;

/// The last reports, most recent last, by image id.
static RECENT: Mutex<VecDeque<(String, Arc<ImageExplore>)>> = Mutex::new(VecDeque::new());

fn recent() -> std::sync::MutexGuard<'static, VecDeque<(String, Arc<ImageExplore>)>> {
    // A panic while holding the lock leaves at worst a stale list of complete reports.
    RECENT.lock().unwrap_or_else(|p| p.into_inner())
}

fn remembered(id: &str) -> Option<Arc<ImageExplore>> {
    let mut r = recent();
    let i = r.iter().position(|(k, _)| k == id)?;
    let hit = r.remove(i)?;
    let report = hit.1.clone();
    r.push_back(hit);
    Some(report)
}

fn remember(id: String, report: Arc<ImageExplore>) {
    let mut r = recent();
    r.retain(|(k, _)| *k != id);
    r.push_back((id, report));
    while r.len() > KEPT {
        r.pop_front();
    }
}

impl Engine {
    /// Analyses the image `name` (reference or id); Docker's `No such image: name` (404)
    /// when there is none.
    pub async fn explore_image(&self, name: &str) -> Result<ImageExplore> {
        let image = self.image(name).await?;
        let id = image.id.to_string();
        let report = match remembered(&id) {
            Some(r) => r,
            None => {
                let images = self.images.clone();
                let by_id = id.clone();
                let report = Arc::new(wire(blocking(move || Ok(images.explore(&by_id)?)).await?));
                remember(id, report.clone());
                report
            }
        };
        let mut out = ImageExplore::clone(&report);
        out.repo_tags = image.repo_tags;
        Ok(out)
    }
}

/// The report in the API's shape.
pub fn wire(r: Report) -> ImageExplore {
    ImageExplore {
        id: r.id,
        repo_tags: r.repo_tags,
        size: r.size,
        layers_size: r.layers_size,
        wasted_bytes: r.wasted_bytes,
        efficiency: r.efficiency,
        layers: r
            .layers
            .into_iter()
            .map(|l| ExploreLayer {
                index: l.index,
                diff_id: l.diff_id.map(|d| d.to_string()).unwrap_or_default(),
                created_by: l.created_by,
                instruction: l.instruction,
                empty_layer: l.empty_layer,
                size: l.size,
                added: l.added,
                modified: l.modified,
                deleted: l.deleted,
                files: l
                    .files
                    .into_iter()
                    .map(|f| ExploreFile {
                        path: f.path,
                        size: f.size,
                        change: f.change.as_str().to_owned(),
                        kind: f.kind.as_str().to_owned(),
                    })
                    .collect(),
            })
            .collect(),
        biggest: r
            .biggest
            .into_iter()
            .map(|b| ExploreBiggest { path: b.path, size: b.size, kind: b.kind.as_str().to_owned(), layer: b.layer })
            .collect(),
        wasted: r
            .wasted
            .into_iter()
            .map(|w| ExploreWaste {
                path: w.path,
                size: w.size,
                files: w.files,
                layer: w.layer,
                by: w.by,
                how: w.how.as_str().to_owned(),
                hint: w.hint,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str) -> Arc<ImageExplore> {
        Arc::new(ImageExplore { id: id.to_owned(), ..Default::default() })
    }

    #[test]
    fn the_last_reports_are_kept_by_id() {
        // Ids of this test only: the list is shared by the process.
        let ids: Vec<String> = (0..=KEPT).map(|i| format!("sha256:explore-cache-test-{i}")).collect();
        for id in &ids {
            remember(id.clone(), report(id));
        }
        assert!(remembered(&ids[0]).is_none(), "the oldest went");
        assert_eq!(remembered(&ids[1]).unwrap().id, ids[1]);
        remember(ids[KEPT].clone(), report("replaced"));
        assert_eq!(remembered(&ids[KEPT]).unwrap().id, "replaced");
        assert!(recent().len() <= KEPT);
    }
}
