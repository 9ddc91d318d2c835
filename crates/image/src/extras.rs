//! The parts of Docker's image config that the OCI image spec leaves out (`Healthcheck`,
//! `Shell`, `OnBuild`), kept beside the typed OCI config and merged into the same
//! `config` object of the blob, where Docker and BuildKit write them.

use serde::{Deserialize, Serialize};

/// `HEALTHCHECK` as stored in an image config; durations in nanoseconds, zero or absent
/// meaning "the default", as in Docker.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `[]` inherit, `["NONE"]` disabled, `["CMD", args…]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between checks.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    /// Time one check may take.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    /// Start-up time during which failures do not count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    /// Time between checks during the start period.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Docker's config fields that `oci_spec::image::Config` has no place for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ConfigExtras {
    /// `HEALTHCHECK`.
    #[serde(rename = "Healthcheck", default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    /// `SHELL`: the shell for shell-form instructions of builds based on this image.
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `ONBUILD` triggers, run by the builds that use this image as their base.
    #[serde(rename = "OnBuild", default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
}

impl ConfigExtras {
    /// The extras stored in a config blob's `config` object (none when absent or malformed).
    pub fn from_config_json(blob: &serde_json::Value) -> ConfigExtras {
        blob.get("config").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default()
    }

    /// Writes the extras into `blob["config"]`, creating it when needed.
    pub fn merge_into(&self, blob: &mut serde_json::Value) {
        let Ok(serde_json::Value::Object(extra)) = serde_json::to_value(self) else {
            return;
        };
        if extra.is_empty() {
            return;
        }
        let Some(root) = blob.as_object_mut() else {
            return;
        };
        let cfg = root.entry("config").or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !cfg.is_object() {
            *cfg = serde_json::Value::Object(Default::default());
        }
        if let Some(c) = cfg.as_object_mut() {
            c.extend(extra);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_config_object() {
        let extras = ConfigExtras {
            healthcheck: Some(HealthConfig {
                test: vec!["CMD-SHELL".into(), "true".into()],
                interval: 5_000_000_000,
                ..Default::default()
            }),
            shell: Some(vec!["/bin/bash".into(), "-c".into()]),
            on_build: Some(vec!["RUN echo hi".into()]),
        };
        let mut blob = serde_json::json!({"architecture": "amd64", "config": {"Env": ["A=1"]}});
        extras.merge_into(&mut blob);
        assert_eq!(blob["config"]["Env"][0], "A=1");
        assert_eq!(
            blob["config"]["Healthcheck"],
            serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000i64})
        );
        assert_eq!(ConfigExtras::from_config_json(&blob), extras);
        let mut bare = serde_json::json!({"architecture": "amd64"});
        ConfigExtras::default().merge_into(&mut bare);
        assert!(bare.get("config").is_none());
    }
}
