//! `GET /events`: the recorded events within `since`/`until`, then (unless `until` has
//! passed) every new one as it happens, one JSON document per line, filtered as dockerd
//! filters them. The request decodes into [`EventsRequest`] by a pure function.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use berth_api::query;
use bytes::Bytes;
use tokio::sync::broadcast;

use super::reply::{self, ApiResult, Query};
use crate::engine::Engine;
use crate::engine::events::{EventFilter, Message, parse_time};
use crate::error::{Error, Result};

/// The routes of this resource.
pub fn routes() -> Router<Arc<Engine>> {
    Router::new().route("/events", get(events))
}

/// `GET /events`, decoded.
#[derive(Debug)]
pub struct EventsRequest {
    /// Replay from (unix ns).
    pub since: Option<i64>,
    /// Stop at (unix ns).
    pub until: Option<i64>,
    /// The filters.
    pub filter: EventFilter,
}

impl EventsRequest {
    /// Decodes and checks the query (dockerd's wording for a `since` after `until`).
    pub fn decode(q: &query::Events) -> Result<EventsRequest> {
        let t = |v: &Option<String>| v.as_deref().filter(|s| !s.is_empty()).map(parse_time).transpose();
        let (since, until) = (t(&q.since)?, t(&q.until)?);
        if let (Some(s), Some(u)) = (since, until)
            && u < s
        {
            let fmt = |n: i64| format!("{}.{:09}", n.div_euclid(1_000_000_000), n.rem_euclid(1_000_000_000));
            return Err(Error::InvalidArgument(format!(
                "`since` time ({}) cannot be after `until` time ({})",
                fmt(s),
                fmt(u)
            )));
        }
        Ok(EventsRequest { since, until, filter: EventFilter::new(q.filters.clone())? })
    }
}

fn line(m: &Message) -> Bytes {
    let mut v = serde_json::to_vec(m).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

struct Follow {
    past: std::vec::IntoIter<Message>,
    rx: Option<broadcast::Receiver<Message>>,
    filter: EventFilter,
    until: Option<i64>,
}

async fn events(State(e): State<Arc<Engine>>, Query(q): Query<query::Events>) -> ApiResult<Response> {
    let r = EventsRequest::decode(&q)?;
    let (past, rx) = e.subscribe_events(r.since, r.until);
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
    let past: Vec<Message> = past.into_iter().filter(|m| r.filter.matches(m)).collect();
    // A bound already passed: only the replay.
    let rx = if r.until.is_some_and(|u| u <= now) { None } else { Some(rx) };
    let state = Follow { past: past.into_iter(), rx, filter: r.filter, until: r.until };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if let Some(m) = st.past.next() {
            return Some((Ok::<_, Infallible>(line(&m)), st));
        }
        loop {
            let rx = st.rx.as_mut()?;
            let next = match st.until {
                Some(u) => {
                    let left = u - chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
                    if left <= 0 {
                        return None;
                    }
                    match tokio::time::timeout(Duration::from_nanos(left as u64), rx.recv()).await {
                        Ok(r) => r,
                        Err(_) => return None,
                    }
                }
                None => rx.recv().await,
            };
            match next {
                Ok(m) if st.until.is_none_or(|u| m.time_nano <= u) => {
                    if st.filter.matches(&m) {
                        return Some((Ok(line(&m)), st));
                    }
                }
                Ok(_) => return None,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "an events follower fell behind and missed events");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Ok(reply::streaming("application/json", stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_times_and_filters() {
        let q: query::Events =
            reply::query(Some("since=1700000000&until=1700000001.5&filters=%7B%22type%22%3A%5B%22container%22%5D%7D"))
                .unwrap();
        let r = EventsRequest::decode(&q).unwrap();
        assert_eq!(r.since, Some(1_700_000_000_000_000_000));
        assert_eq!(r.until, Some(1_700_000_001_500_000_000));
        let q: query::Events = reply::query(Some("since=20&until=10")).unwrap();
        assert_eq!(
            EventsRequest::decode(&q).unwrap_err().to_string(),
            "`since` time (20.000000000) cannot be after `until` time (10.000000000)"
        );
        let q: query::Events = reply::query(Some("filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D")).unwrap();
        assert_eq!(EventsRequest::decode(&q).unwrap_err().to_string(), "invalid filter 'bogus'");
        let q: query::Events = reply::query(Some("since=soon")).unwrap();
        assert!(EventsRequest::decode(&q).is_err());
    }
}
