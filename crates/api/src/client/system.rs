//! System endpoints: ping, version, info, disk usage, and berth's data root check.

use hyper::Method;

use super::{Client, Result};
use crate::check::{SYSTEM_CHECK_PATH, SystemCheck};
use crate::models::{SystemInfo, SystemVersion};

impl Client {
    /// `GET /_ping`: Ok when the daemon answers.
    pub async fn ping(&self) -> Result<()> {
        self.call_raw(Method::GET, "/_ping", None).await.map(|_| ())
    }

    /// `GET /version`.
    pub async fn version(&self) -> Result<SystemVersion> {
        self.call_json(Method::GET, "/version", None, None).await
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<SystemInfo> {
        self.call_json(Method::GET, "/info", None, None).await
    }

    /// `GET /info` as the daemon sent it, for templates over fields the models may not know.
    pub async fn info_raw(&self) -> Result<serde_json::Value> {
        self.call_json(Method::GET, "/info", None, None).await
    }

    /// `GET /system/df`, as raw JSON (the 1.41 shape).
    pub async fn system_df(&self) -> Result<serde_json::Value> {
        self.call_json(Method::GET, "/system/df", None, None).await
    }

    /// `GET /berth/system/check`: the problems the daemon finds in its data root.
    pub async fn system_check(&self) -> Result<SystemCheck> {
        self.call_json(Method::GET, SYSTEM_CHECK_PATH, None, None).await
    }
}
