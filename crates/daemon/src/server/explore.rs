//! berth's `GET /berth/images/{name}/explore`: where an image's size comes from (layers with
//! their instructions and changes, the biggest files and directories, wasted bytes with
//! hints). Image names may contain slashes, so one wildcard route takes the rest of the path
//! and [`explore_name`] takes the name off its `/explore` tail.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use berth_api::client::explore::BERTH_EXPLORE_PREFIX;

use super::reply::{ApiResult, Path, json};
use crate::engine::Engine;
use crate::error::{Error, Result};

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new().route(&format!("{BERTH_EXPLORE_PREFIX}{{*rest}}"), get(explore))
}

/// The image name in `{name}/explore`; any other tail is a path no route serves.
pub fn explore_name(rest: &str) -> Result<&str> {
    rest.strip_suffix("/explore").filter(|n| !n.is_empty()).ok_or(Error::PageNotFound)
}

/// `GET /berth/images/{name}/explore`.
async fn explore(State(e): State<Arc<Engine>>, Path(rest): Path<String>) -> ApiResult<Response> {
    let name = explore_name(&rest)?;
    Ok(json(StatusCode::OK, &e.explore_image(name).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_is_everything_before_explore() {
        assert_eq!(explore_name("busybox/explore").unwrap(), "busybox");
        assert_eq!(explore_name("localhost:5000/a/b:1/explore").unwrap(), "localhost:5000/a/b:1");
        assert!(matches!(explore_name("busybox"), Err(Error::PageNotFound)));
        assert!(matches!(explore_name("/explore"), Err(Error::PageNotFound)));
        assert!(matches!(explore_name("busybox/json"), Err(Error::PageNotFound)));
    }
}
