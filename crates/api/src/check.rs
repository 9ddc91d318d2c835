//! berth's own endpoint `GET /berth/system/check` (no Docker counterpart): the problems
//! the daemon finds in its data root, which `berth system check` lists.

use serde::{Deserialize, Serialize};

/// The endpoint's path (after the optional `/v1.NN` prefix).
pub const SYSTEM_CHECK_PATH: &str = "/berth/system/check";

/// The answer: every finding, in path order; empty when all is well.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SystemCheck {
    /// The data root that was checked.
    pub data_root: String,
    /// What was found.
    pub findings: Vec<CheckFinding>,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CheckFinding {
    /// `permissions`, `digest` or `unowned`.
    pub kind: String,
    /// The absolute path on the daemon's machine.
    pub path: String,
    /// What is wrong.
    pub detail: String,
}
