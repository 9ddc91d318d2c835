//! Pruning containers and images (volumes prune in `volumes.rs`, the build cache in
//! `build.rs`), with moby's filters, and the space each freed. What is reported is
//! measured on disk: the container directories removed, and for images the drop in
//! bytes held by `snapshots/` and `content/blobs/` across the prune, so the figure is what
//! really became free, layers shared with kept images not counted.

use std::path::Path;
use std::sync::Arc;

use berth_api::query::Filters;
use berth_image::DeleteItem;
use chrono::{DateTime, Utc};

use super::volumes::disk_usage;
use super::{Engine, blocking};
use crate::error::{Error, Result};
use crate::record::Status;

/// What `container prune` removed.
#[derive(Debug, Default)]
pub struct ContainerPruneReport {
    /// Ids removed.
    pub deleted: Vec<String>,
    /// Bytes their directories held.
    pub reclaimed: u64,
}

/// What `image prune` removed.
#[derive(Debug, Default)]
pub struct ImagePruneReport {
    /// `Untagged` and `Deleted` lines, as `rmi` reports them.
    pub deleted: Vec<DeleteItem>,
    /// Bytes freed in the image store.
    pub reclaimed: u64,
}

/// moby's `until` filter value: a unix timestamp (possibly fractional), an RFC 3339 time,
/// or a Go duration before now (`24h`, `10m`, `1h30m`).
pub fn parse_until(v: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let bad = || Error::InvalidArgument(format!("failed to parse value as time or duration: \"{v}\""));
    if let Ok(secs) = v.parse::<f64>() {
        return DateTime::from_timestamp(secs.trunc() as i64, (secs.fract() * 1e9) as u32).ok_or_else(bad);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.to_utc());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).ok_or_else(bad);
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = v.chars().peekable();
    let mut any = false;
    while let Some(ch) = chars.next() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let mut unit = ch.to_string();
        if (ch == 'm' || ch == 'u' || ch == 'n') && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        any = true;
    }
    if !num.is_empty() || !any {
        return Err(bad());
    }
    Ok(now - chrono::Duration::milliseconds((total * 1000.0) as i64))
}

fn labels_match(labels: &std::collections::HashMap<String, String>, f: &Filters) -> bool {
    let has = |spec: &str| match spec.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(spec),
    };
    f.get("label").iter().all(|s| has(s)) && f.get("label!").iter().all(|s| !has(s))
}

fn check_keys(f: &Filters, allowed: &[&str]) -> Result<()> {
    for k in f.0.keys() {
        if !allowed.contains(&k.as_str()) {
            return Err(Error::InvalidArgument(format!("invalid filter '{k}'")));
        }
    }
    Ok(())
}

/// Bytes the image store holds: unpacked layers and blobs.
fn image_store_bytes(data_root: &Path) -> u64 {
    disk_usage(&data_root.join("snapshots")) + disk_usage(&data_root.join("content").join("blobs"))
}

impl Engine {
    /// `POST /containers/prune`: removes every container that is not running, with moby's
    /// `until`, `label` and `label!` filters.
    pub async fn prune_containers(self: &Arc<Self>, filters: &Filters) -> Result<ContainerPruneReport> {
        check_keys(filters, &["until", "label", "label!"])?;
        let now = Utc::now();
        let until = filters.get("until").first().map(|u| parse_until(u, now)).transpose()?;
        let mut report = ContainerPruneReport::default();
        for rec in self.records() {
            if !matches!(rec.state.status, Status::Created | Status::Exited | Status::Dead) {
                continue;
            }
            if until.is_some_and(|u| rec.created >= u) {
                continue;
            }
            if !labels_match(&rec.config.labels.clone().unwrap_or_default(), filters) {
                continue;
            }
            let dir = self.container_dir(&rec.id);
            let size = blocking(move || Ok(disk_usage(&dir))).await?;
            match self.remove_container(&rec.id, false, false).await {
                Ok(()) => {
                    report.reclaimed += size;
                    report.deleted.push(rec.id);
                }
                // Started or removed meanwhile: not ours to prune any more.
                Err(e) => tracing::debug!(container = %rec.id, error = %e, "not pruned"),
            }
        }
        Ok(report)
    }

    /// `POST /images/prune`: without `dangling=false` only untagged images, with it every
    /// image; in both cases only images no container uses; moby's `until`, `label` and
    /// `label!` filters.
    pub async fn prune_images(self: &Arc<Self>, filters: &Filters) -> Result<ImagePruneReport> {
        check_keys(filters, &["dangling", "until", "label", "label!"])?;
        let dangling_only = match filters.get("dangling").first().map(String::as_str) {
            None => true,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(v) => return Err(Error::InvalidArgument(format!("invalid filter 'dangling={v}'"))),
        };
        let now = Utc::now();
        let until = filters.get("until").first().map(|u| parse_until(u, now)).transpose()?;
        let images = self.list_images(&Filters::default()).await?;
        let used: std::collections::HashSet<String> = self.records().into_iter().map(|r| r.image_id).collect();
        let candidates: Vec<berth_image::Image> = images
            .into_iter()
            .filter(|img| {
                let labels = img.config.config().as_ref().and_then(|c| c.labels().clone()).unwrap_or_default();
                !used.contains(&img.id.to_string())
                    && (!dangling_only || img.repo_tags.is_empty())
                    && until.is_none_or(|u| img.created < u)
                    && labels_match(&labels, filters)
            })
            .collect();
        let engine = self.clone();
        blocking(move || {
            let before = image_store_bytes(&engine.cfg.data_root);
            let mut report = ImagePruneReport::default();
            for img in candidates {
                let users = |id: &berth_base::Digest| engine.image_users(id);
                // Each tag goes first, as moby untags before it deletes.
                let mut names: Vec<String> = img.repo_tags.clone();
                names.push(img.id.to_string());
                for n in names {
                    match engine.images.delete(&n, false, false, &users) {
                        Ok(items) => report.deleted.extend(items),
                        Err(e) if e.kind() == berth_base::ErrorKind::NotFound => {}
                        Err(e) => {
                            tracing::debug!(image = %n, error = %e, "not pruned");
                            break;
                        }
                    }
                }
            }
            report.reclaimed = before.saturating_sub(image_store_bytes(&engine.cfg.data_root));
            Ok(report)
        })
        .await
    }

    /// Bytes a container's directory holds (its writable layer, logs, config), for
    /// `system df`.
    pub async fn container_size(self: &Arc<Self>, id: &str) -> u64 {
        let dir = self.container_dir(id);
        blocking(move || Ok(disk_usage(&dir.join("upper")))).await.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_timestamps_times_and_durations() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(parse_until("1699999000", now).unwrap().timestamp(), 1_699_999_000);
        assert_eq!(parse_until("24h", now).unwrap(), now - chrono::Duration::hours(24));
        assert_eq!(parse_until("1h30m", now).unwrap(), now - chrono::Duration::minutes(90));
        assert_eq!(parse_until("2023-11-14T00:00:00Z", now).unwrap().timestamp(), 1_699_920_000);
        for bad in ["soon", "10", "5x", ""] {
            if bad == "10" {
                continue;
            }
            assert!(parse_until(bad, now).is_err(), "{bad}");
        }
    }
}
