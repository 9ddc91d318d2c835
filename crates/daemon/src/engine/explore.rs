//! `GET /berth/images/{name}/explore`: where an image's size comes from. The image store
//! reads the layers (on the blocking pool: a big image is gigabytes of tar); this turns its
//! report into the wire types the CLI and the dashboard read.

use berth_api::client::explore::{ExploreBiggest, ExploreFile, ExploreLayer, ExploreWaste, ImageExplore};
use berth_image::explore::Report;

use super::{Engine, blocking};
use crate::error::Result;

impl Engine {
    /// Analyses the image `name` (reference or id); Docker's `No such image: name` (404)
    /// when there is none.
    pub async fn explore_image(&self, name: &str) -> Result<ImageExplore> {
        let images = self.images.clone();
        let n = name.to_owned();
        let report = blocking(move || Ok(images.explore(&n)?)).await?;
        Ok(wire(report))
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
