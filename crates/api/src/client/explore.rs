//! Where an image's size comes from, from the client side: berth's own
//! `GET /berth/images/{name}/explore` (the daemon reads the image's layers; the CLI and the
//! dashboard only show what it found), and the wire types of its answer.

use bytes::Bytes;
use hyper::Method;

use super::{Client, Result, decode, seg};

/// The berth-only route prefix: `{BERTH_EXPLORE_PREFIX}{name}/explore`.
pub const BERTH_EXPLORE_PREFIX: &str = "/berth/images/";

/// The path of the explore call for `name`.
pub fn explore_path(name: &str) -> String {
    format!("{BERTH_EXPLORE_PREFIX}{}/explore", seg(name))
}

/// The analysis of one image. Sizes are bytes; paths are absolute inside the image.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageExplore {
    /// The image id, `sha256:…`.
    pub id: String,
    /// Its tags, familiar form (`name:tag`).
    #[serde(default)]
    pub repo_tags: Vec<String>,
    /// Sum of the regular file sizes visible in the merged image.
    pub size: u64,
    /// Sum of `Layers[].Size`.
    pub layers_size: u64,
    /// Sum of `Wasted[].Size`.
    pub wasted_bytes: u64,
    /// `Size / LayersSize`, 0..1 (1 for an image without bytes).
    pub efficiency: f64,
    /// One entry per history step, bottom first.
    #[serde(default)]
    pub layers: Vec<ExploreLayer>,
    /// The top 50 files, then the top 50 directories, of the final image.
    #[serde(default)]
    pub biggest: Vec<ExploreBiggest>,
    /// Bytes stored in a layer but hidden by a later one, largest first.
    #[serde(default)]
    pub wasted: Vec<ExploreWaste>,
}

/// One history step and what its layer holds.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExploreLayer {
    /// Position in `Layers`; `Biggest[].Layer`, `Wasted[].Layer` and `Wasted[].By` name it.
    pub index: usize,
    /// The layer's diff id; empty for a step that made no layer.
    #[serde(rename = "DiffID")]
    pub diff_id: String,
    /// The history's `created_by`.
    pub created_by: String,
    /// The Dockerfile instruction, as `docker history` users read it.
    pub instruction: String,
    /// True for a step that made no layer (ENV, CMD, …).
    pub empty_layer: bool,
    /// Sum of regular file sizes in the layer's tar.
    pub size: u64,
    /// Entries new to the image.
    pub added: u64,
    /// Entries replacing a path of a lower layer.
    pub modified: u64,
    /// Lower paths removed (whiteouts, opaque directories).
    pub deleted: u64,
    /// The layer's entries, largest first, at most 500.
    #[serde(default)]
    pub files: Vec<ExploreFile>,
}

/// One entry of a layer.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExploreFile {
    /// Absolute path.
    pub path: String,
    /// The entry's size; for a deletion, the bytes it removed.
    pub size: u64,
    /// `added`, `modified` or `deleted`.
    pub change: String,
    /// `file`, `dir`, `symlink`, `hardlink` or `other`.
    #[serde(rename = "Type")]
    pub kind: String,
}

/// A big file or directory of the final image.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExploreBiggest {
    /// Absolute path.
    pub path: String,
    /// A file's size, or the sum of the files under a directory.
    pub size: u64,
    /// `file` or `dir`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Index of the last layer that wrote it (for a directory, it or anything under it).
    pub layer: usize,
}

/// Bytes a layer stores that the final image does not show.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExploreWaste {
    /// The file, or the directory whose files these are.
    pub path: String,
    /// Bytes hidden.
    pub size: u64,
    /// How many regular files they are (berth's addition to the shape: a record may stand
    /// for a deleted tree or a folded directory).
    #[serde(default)]
    pub files: u64,
    /// Index of the layer that added them.
    pub layer: usize,
    /// Index of the layer that overwrote or deleted them.
    pub by: usize,
    /// `overwritten` or `deleted`.
    pub how: String,
    /// One sentence naming the instruction that caused it and what to do instead.
    pub hint: String,
}

impl Client {
    /// `GET /berth/images/{name}/explore`: where the size of `name` comes from.
    pub async fn image_explore(&self, name: &str) -> Result<ImageExplore> {
        let path = explore_path(name);
        let b = self.call_raw(Method::GET, &path, None).await?;
        decode(&b, &path)
    }

    /// The same answer, as the daemon's bytes (what `image explore --json` prints).
    pub async fn image_explore_raw(&self, name: &str) -> Result<Bytes> {
        self.call_raw(Method::GET, &explore_path(name), None).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_slashes_and_tags_stay_in_one_path() {
        assert_eq!(explore_path("localhost:5000/a/b:1"), "/berth/images/localhost:5000/a/b:1/explore");
    }

    #[test]
    fn the_wire_names_are_docker_style() {
        let v = serde_json::to_value(ImageExplore {
            layers: vec![ExploreLayer { diff_id: "sha256:a".into(), ..Default::default() }],
            ..Default::default()
        })
        .unwrap();
        for k in ["Id", "RepoTags", "Size", "LayersSize", "WastedBytes", "Efficiency", "Layers", "Biggest", "Wasted"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        let l = &v["Layers"][0];
        for k in [
            "Index",
            "DiffID",
            "CreatedBy",
            "Instruction",
            "EmptyLayer",
            "Size",
            "Added",
            "Modified",
            "Deleted",
            "Files",
        ] {
            assert!(l.get(k).is_some(), "{k} missing in {l}");
        }
        let f = serde_json::to_value(ExploreFile::default()).unwrap();
        assert!(f.get("Type").is_some() && f.get("Change").is_some());
    }
}
