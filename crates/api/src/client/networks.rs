//! Network endpoints: create, list, inspect, remove, connect, disconnect, prune. Answers
//! are kept as JSON values: the CLI prints them as the daemon sent them.

use hyper::Method;
use serde_json::Value;

use super::{Client, Result, encode_query, full_body, seg};
use crate::query::Filters;

#[derive(serde::Serialize)]
struct FilterQuery<'a> {
    #[serde(skip_serializing_if = "Filters::is_empty")]
    filters: &'a Filters,
}

impl Client {
    /// `POST /networks/create` with Docker's body; returns the answer (`Id`, `Warning`).
    pub async fn create_network(&self, body: &Value) -> Result<Value> {
        let b = full_body(serde_json::to_vec(body).unwrap_or_default());
        self.call_json(Method::POST, "/networks/create", None, Some(b)).await
    }

    /// `GET /networks`.
    pub async fn list_networks(&self, filters: &Filters) -> Result<Vec<Value>> {
        self.call_json(Method::GET, "/networks", Some(&encode_query(&FilterQuery { filters })?), None).await
    }

    /// `GET /networks/{id}`.
    pub async fn inspect_network(&self, id: &str) -> Result<Value> {
        self.call_json(Method::GET, &format!("/networks/{}", seg(id)), None, None).await
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, id: &str) -> Result<()> {
        self.call_raw(Method::DELETE, &format!("/networks/{}", seg(id)), None).await.map(|_| ())
    }

    /// `POST /networks/prune`; returns the names removed.
    pub async fn prune_networks(&self, filters: &Filters) -> Result<Vec<String>> {
        let v: Value = self
            .call_json(Method::POST, "/networks/prune", Some(&encode_query(&FilterQuery { filters })?), None)
            .await?;
        Ok(v["NetworksDeleted"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    /// `POST /networks/{id}/connect` (`disconnect` when `connect` is false) with Docker's body.
    pub async fn network_connect(&self, id: &str, connect: bool, body: &Value) -> Result<()> {
        let verb = if connect { "connect" } else { "disconnect" };
        let b = full_body(serde_json::to_vec(body).unwrap_or_default());
        self.call(Method::POST, &format!("/networks/{}/{verb}", seg(id)), None, Some(b)).await.map(|_| ())
    }
}
