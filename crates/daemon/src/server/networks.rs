//! `/networks/…`: create, list, inspect, remove, connect, disconnect, prune. Each handler
//! decodes its request into a typed call on the engine.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use berth_api::query::Filters;
use serde::Deserialize;

use super::reply::{self, ApiResult, Path, Query, json};
use crate::engine::Engine;
use crate::engine::networks::NewNetwork;
use crate::error::{Error, Result};

pub fn routes() -> Router<Arc<Engine>> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect))
        .route("/networks/{id}", delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

/// `?filters=` of the list and prune calls.
#[derive(Debug, Default, Deserialize)]
pub struct FilterQuery {
    #[serde(default)]
    filters: Filters,
}

/// `POST /networks/create` body (the fields berth acts on).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateBody {
    name: String,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    internal: Option<bool>,
    #[serde(default, rename = "IPAM")]
    ipam: Option<IpamBody>,
    #[serde(default)]
    options: Option<HashMap<String, String>>,
    #[serde(default)]
    labels: Option<HashMap<String, String>>,
    #[serde(default, rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IpamBody {
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    config: Option<Vec<IpamConfigBody>>,
}

#[derive(Debug, Default, Deserialize)]
struct IpamConfigBody {
    #[serde(default, rename = "Subnet")]
    subnet: Option<String>,
    #[serde(default, rename = "IPRange")]
    ip_range: Option<String>,
    #[serde(default, rename = "Gateway")]
    gateway: Option<String>,
}

impl CreateBody {
    /// The typed request, refusing what berth cannot do (IPv6, other IPAM drivers, more
    /// than one IPv4 pool) rather than ignoring it.
    pub fn into_request(self) -> Result<NewNetwork> {
        if self.name.is_empty() {
            return Err(Error::InvalidArgument("network name must not be empty".into()));
        }
        if self.enable_ipv6 == Some(true) {
            return Err(Error::NotImplemented("IPv6 networks are not supported by berth yet".into()));
        }
        let mut req = NewNetwork {
            name: self.name,
            driver: self.driver.unwrap_or_default(),
            internal: self.internal.unwrap_or(false),
            labels: self.labels.unwrap_or_default(),
            options: self.options.unwrap_or_default(),
            ..Default::default()
        };
        if let Some(ipam) = self.ipam {
            if let Some(d) = ipam.driver.filter(|d| !d.is_empty() && d != "default") {
                return Err(Error::NotImplemented(format!("IPAM driver {d:?} is not supported")));
            }
            let configs = ipam.config.unwrap_or_default();
            if configs.len() > 1 {
                return Err(Error::NotImplemented("more than one IPAM pool per network is not supported".into()));
            }
            if let Some(c) = configs.into_iter().next() {
                let cidr = |v: &str| {
                    v.parse::<ipnet::Ipv4Net>()
                        .map_err(|_| Error::InvalidArgument(format!("invalid CIDR address: {v}")))
                };
                req.subnet = c.subnet.as_deref().filter(|s| !s.is_empty()).map(cidr).transpose()?;
                req.ip_range = c.ip_range.as_deref().filter(|s| !s.is_empty()).map(cidr).transpose()?;
                req.gateway = c
                    .gateway
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .map(|g| g.parse().map_err(|_| Error::InvalidArgument(format!("invalid gateway address: {g}"))))
                    .transpose()?;
                if req.subnet.is_none() && (req.ip_range.is_some() || req.gateway.is_some()) {
                    return Err(Error::InvalidArgument("ip-range and gateway need a subnet".into()));
                }
                if let (Some(s), Some(g)) = (req.subnet, req.gateway)
                    && !s.contains(&g)
                {
                    return Err(Error::InvalidArgument(format!("no matching subnet for gateway {g}")));
                }
                if let (Some(s), Some(r)) = (req.subnet, req.ip_range)
                    && !s.contains(&r)
                {
                    return Err(Error::InvalidArgument(format!("no matching subnet for range {r}")));
                }
            }
        }
        Ok(req)
    }
}

/// `POST /networks/{id}/connect` and `/disconnect` bodies.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectBody {
    container: String,
    #[serde(default)]
    endpoint_config: Option<berth_api::models::EndpointSettings>,
    #[serde(default)]
    force: Option<bool>,
}

async fn list(State(e): State<Arc<Engine>>, Query(q): Query<FilterQuery>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &e.list_networks(&q.filters)?))
}

async fn inspect(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &e.inspect_network(&id)?))
}

async fn create(State(e): State<Arc<Engine>>, req: Request) -> ApiResult<Response> {
    let body = reply::read_body(req.into_body()).await?;
    let b: CreateBody = reply::json_body(&body)?;
    let n = e.create_network(b.into_request()?).await?;
    Ok(json(StatusCode::CREATED, &serde_json::json!({"Id": n.id, "Warning": ""})))
}

async fn remove(State(e): State<Arc<Engine>>, Path(id): Path<String>) -> ApiResult<Response> {
    e.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(e): State<Arc<Engine>>, Query(q): Query<FilterQuery>) -> ApiResult<Response> {
    let removed = e.prune_networks(&q.filters).await?;
    Ok(json(StatusCode::OK, &serde_json::json!({"NetworksDeleted": removed})))
}

async fn connect(State(e): State<Arc<Engine>>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let body = reply::read_body(req.into_body()).await?;
    let b: ConnectBody = reply::json_body(&body)?;
    e.connect_network(&id, &b.container, b.endpoint_config.unwrap_or_default()).await?;
    Ok(StatusCode::OK.into_response())
}

async fn disconnect(State(e): State<Arc<Engine>>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let body = reply::read_body(req.into_body()).await?;
    let b: ConnectBody = reply::json_body(&body)?;
    e.disconnect_network(&id, &b.container, b.force.unwrap_or(false)).await?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies_decode_into_requests() {
        let b: CreateBody = serde_json::from_str(
            r#"{"Name":"n1","Driver":"bridge","Internal":true,"IPAM":{"Driver":"default","Config":[{"Subnet":"10.5.0.0/24","Gateway":"10.5.0.254","IPRange":"10.5.0.128/25"}]},"Options":{"com.docker.network.bridge.name":"brx"},"Labels":{"a":"b"}}"#,
        )
        .unwrap();
        let r = b.into_request().unwrap();
        assert_eq!(r.subnet.unwrap().to_string(), "10.5.0.0/24");
        assert_eq!(r.gateway.unwrap().to_string(), "10.5.0.254");
        assert!(r.internal);
        let bad = |s: &str| serde_json::from_str::<CreateBody>(s).unwrap().into_request().unwrap_err().to_string();
        assert_eq!(
            bad(r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.5.0.0/33"}]}}"#),
            "invalid CIDR address: 10.5.0.0/33"
        );
        assert_eq!(
            bad(r#"{"Name":"n","IPAM":{"Config":[{"Subnet":"10.5.0.0/24","Gateway":"10.6.0.1"}]}}"#),
            "no matching subnet for gateway 10.6.0.1"
        );
    }
}
