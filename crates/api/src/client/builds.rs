//! The daemon's build history, from the client side: berth's own `GET /berth/builds` (the
//! builds the daemon ran, newest first) and `GET /berth/builds/{id}` (one build with its
//! steps), and the wire types of their answers. Docker Desktop reads the same facts from
//! BuildKit's history API; berth's builder records them itself.

use hyper::Method;

use super::{Client, Result, decode, seg};

/// The berth-only route of the build history.
pub const BERTH_BUILDS_PATH: &str = "/berth/builds";

/// A build is running.
pub const BUILD_RUNNING: &str = "running";
/// Every step succeeded and the image was made.
pub const BUILD_COMPLETED: &str = "completed";
/// A step or the build itself failed; `Error` says why.
pub const BUILD_FAILED: &str = "failed";
/// The client went away or cancelled the build (or the daemon stopped during it).
pub const BUILD_CANCELED: &str = "canceled";

/// One build the daemon ran.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildRecord {
    /// The build's id (64 hex digits).
    #[serde(rename = "ID")]
    pub id: String,
    /// `running`, `completed`, `failed` or `canceled`.
    pub status: String,
    /// Why a failed or canceled build stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it began, RFC 3339.
    pub started_at: String,
    /// When it ended, RFC 3339; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
    /// Seconds from start to end; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// The tags asked for (`name:tag`), as given.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The Dockerfile's name in the context.
    pub dockerfile: String,
    /// Where the context came from: `dir`, `tar`, `remote` or `session` (a BuildKit client).
    pub context: String,
    /// The image made, `sha256:…`, for a completed build.
    #[serde(rename = "ImageID", default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    /// Steps the build had (of the stages it built).
    pub total_steps: usize,
    /// Steps that began.
    pub steps_run: usize,
    /// Steps whose result came from the cache.
    pub cached_steps: usize,
    /// The steps, in the order they began; the list answer leaves them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<BuildStepRecord>,
}

/// One step of a recorded build.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BuildStepRecord {
    /// 1-based, over the steps of the stages built, in file order.
    pub index: usize,
    /// The instruction, as written (`RUN pip install …`).
    pub text: String,
    /// The stage's name (`AS name`), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    /// The result came from the cache.
    pub cached: bool,
    /// `running`, `done`, `failed` or `canceled` (the build stopped while it ran).
    pub status: String,
    /// When it began, RFC 3339.
    pub started_at: String,
    /// Seconds it took; absent while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<f64>,
    /// The last few KiB of a failed step's output (stdout and stderr as they came).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
}

impl Client {
    /// `GET /berth/builds`: the builds the daemon recorded, newest first, without steps.
    pub async fn builds(&self) -> Result<Vec<BuildRecord>> {
        let b = self.call_raw(Method::GET, BERTH_BUILDS_PATH, None).await?;
        decode(&b, BERTH_BUILDS_PATH)
    }

    /// `GET /berth/builds/{id}`: one build with its steps.
    pub async fn build_record(&self, id: &str) -> Result<BuildRecord> {
        let path = format!("{BERTH_BUILDS_PATH}/{}", seg(id));
        let b = self.call_raw(Method::GET, &path, None).await?;
        decode(&b, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_names_are_docker_style() {
        let v = serde_json::to_value(BuildRecord {
            steps: vec![BuildStepRecord { output: "x".into(), ..Default::default() }],
            ..Default::default()
        })
        .unwrap();
        for k in ["ID", "Status", "StartedAt", "Tags", "Dockerfile", "Context", "TotalSteps", "CachedSteps", "Steps"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert!(v.get("Error").is_none() && v.get("Duration").is_none(), "unset fields are left out: {v}");
        let s = &v["Steps"][0];
        for k in ["Index", "Text", "Cached", "Status", "StartedAt", "Output"] {
            assert!(s.get(k).is_some(), "{k} missing in {s}");
        }
        let back: BuildRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back.steps.len(), 1);
    }
}
