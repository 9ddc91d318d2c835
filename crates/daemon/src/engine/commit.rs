//! `commit`: a new image from a container, as moby's `CreateImageFromContainer` makes it —
//! the image's layers plus one new layer holding the container's changes (its overlay
//! upper dir, copied so the container keeps running), the container's configuration as the
//! image config with `--change` instructions applied as `import` applies them, and the
//! image's history with one more entry (author, comment, the container's command). A
//! running container is frozen while its changes are read, unless `pause` is false.

use std::sync::Arc;

use berth_api::models::ContainerConfig;
use berth_base::Reference;
use oci_spec::image::{Config, HistoryBuilder};

use super::{Engine, blocking};
use crate::error::{Error, Result};
use crate::record::Status;

/// What `POST /commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The container (name or id).
    pub container: String,
    /// `repo[:tag]` for the new image, if any.
    pub reference: Option<String>,
    /// History comment (`-m`).
    pub comment: Option<String>,
    /// Author (`-a`).
    pub author: Option<String>,
    /// Freeze a running container while reading its changes.
    pub pause: bool,
    /// `--change` instructions.
    pub changes: Vec<String>,
    /// A config the client sent in the body; its set fields replace the container's.
    pub config: Option<ContainerConfig>,
}

/// The container's configuration as an image config, with `user`'s fields (a config the
/// client sent) laid over it as moby merges them: a field the client set wins.
fn image_config_of(c: &ContainerConfig, user: Option<&ContainerConfig>) -> Config {
    let u = user.cloned().unwrap_or_default();
    let pick_vec = |a: &Option<Vec<String>>, b: &Option<Vec<String>>| a.clone().filter(|v| !v.is_empty()).or(b.clone());
    let mut cfg = Config::default();
    let user_name = u.user.clone().filter(|s| !s.is_empty()).or(c.user.clone()).filter(|s| !s.is_empty());
    cfg.set_user(user_name);
    cfg.set_env(pick_vec(&u.env, &c.env));
    cfg.set_cmd(pick_vec(&u.cmd, &c.cmd));
    cfg.set_entrypoint(pick_vec(&u.entrypoint, &c.entrypoint));
    cfg.set_exposed_ports(pick_vec(&u.exposed_ports, &c.exposed_ports));
    cfg.set_volumes(pick_vec(&u.volumes, &c.volumes));
    cfg.set_working_dir(
        u.working_dir.clone().filter(|s| !s.is_empty()).or(c.working_dir.clone()).filter(|s| !s.is_empty() && s != "/"),
    );
    let mut labels = c.labels.clone().unwrap_or_default();
    labels.extend(u.labels.clone().unwrap_or_default());
    cfg.set_labels((!labels.is_empty()).then(|| labels.into_iter().collect()));
    cfg.set_stop_signal(u.stop_signal.clone().or(c.stop_signal.clone()));
    cfg
}

/// The `ContainerConfig.Cmd` moby writes as the history entry's `created_by`.
fn created_by(c: &ContainerConfig) -> String {
    c.cmd.clone().unwrap_or_default().join(" ")
}

/// Freezes a running container for the duration of a commit, through the cgroup its init
/// process is in (v1's freezer or v2's cgroup.freeze, waiting until the kernel reports it
/// frozen: a v2 freeze completes after the write returns); thaws it when dropped. A
/// container that is already frozen (paused by its user) is left as it is.
struct Frozen(Option<super::cgroups::Cgroup>);

impl Frozen {
    fn freeze(id: &str, pid: u32) -> Result<Frozen> {
        let pause = |e| Error::io(format!("pause container {id}"), e);
        let cg = super::cgroups::Cgroup::of_pid(pid).map_err(pause)?;
        if cg.frozen() {
            return Ok(Frozen(None));
        }
        cg.freeze(true).map_err(pause)?;
        Ok(Frozen(Some(cg)))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(cg) = &self.0
            && let Err(e) = cg.freeze(false)
        {
            tracing::error!(error = %e, "could not unpause a container after commit");
        }
    }
}

impl Engine {
    /// `POST /commit`: returns the new image's id.
    pub async fn commit_container(self: &Arc<Self>, req: CommitRequest) -> Result<berth_base::Digest> {
        let c = self.get(&req.container)?;
        let rec = c.snapshot();
        let reference = match req.reference.as_deref().filter(|r| !r.is_empty()) {
            None => None,
            Some(r) => {
                let r = Reference::parse(r).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                if r.digest().is_some() {
                    return Err(Error::InvalidArgument("refusing to create a tag with a digest reference".to_owned()));
                }
                Some(r.with_default_tag())
            }
        };
        let mut cfg = image_config_of(&rec.config, req.config.as_ref());
        berth_image::changes::apply_changes(&mut cfg, &req.changes)?;
        let engine = self.clone();
        let dir = self.container_dir(&rec.id);
        let _op = c.op.lock().await;
        let now_rec = c.snapshot();
        let (running, pid) = (now_rec.state.status == Status::Running, now_rec.state.pid);
        let (ev_rec, comment, image_ref) =
            (rec.clone(), req.comment.clone().unwrap_or_default(), req.reference.clone().unwrap_or_default());
        let id = blocking(move || {
            let image = engine.images.resolve(&rec.image_id)?;
            let layers_before = engine.images.image_layers(&image.id)?;
            let layer = {
                let _frozen = if running && req.pause { Some(Frozen::freeze(&rec.id, pid)?) } else { None };
                engine.images.copy_diff_layer(&dir)?
            };
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let mut config = image.config.clone();
            config.set_created(Some(now.clone()));
            config.set_author(req.author.clone().filter(|a| !a.is_empty()));
            config.set_config(Some(cfg));
            let mut history = config.history().clone().unwrap_or_default();
            let mut h = HistoryBuilder::default().created(now).created_by(created_by(&rec.config));
            if let Some(a) = req.author.clone().filter(|a| !a.is_empty()) {
                h = h.author(a);
            }
            if let Some(m) = req.comment.clone().filter(|m| !m.is_empty()) {
                h = h.comment(m);
            }
            if layer.is_none() {
                h = h.empty_layer(true);
            }
            history.push(h.build().map_err(|e| Error::Internal(format!("image history: {e}")))?);
            config.set_history(Some(history));
            let mut layers = layers_before;
            layers.extend(layer);
            config.rootfs_mut().set_diff_ids(Vec::new());
            let mut extras = image.extras.clone();
            extras.on_build = None;
            if let Some(hc) = &rec.config.healthcheck {
                extras.healthcheck = Some(berth_image::HealthConfig {
                    test: hc.test.clone().unwrap_or_default(),
                    interval: hc.interval.unwrap_or(0),
                    timeout: hc.timeout.unwrap_or(0),
                    start_period: hc.start_period.unwrap_or(0),
                    start_interval: hc.start_interval.unwrap_or(0),
                    retries: hc.retries.unwrap_or(0),
                });
            }
            let tags: Vec<Reference> = reference.into_iter().collect();
            let img = engine.images.create_image(config, &extras, &layers, &tags)?;
            Ok(img.id)
        })
        .await?;
        self.emit_container(
            &ev_rec,
            "commit",
            &[("comment", comment), ("imageID", id.to_string()), ("imageRef", image_ref)],
        );
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_containers_config_becomes_the_images_with_the_clients_over_it() {
        let c = ContainerConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            cmd: Some(vec!["sh".into(), "-c".into(), "echo hi > /f".into()]),
            working_dir: Some("/".into()),
            user: Some(String::new()),
            labels: Some([("a".to_owned(), "1".to_owned())].into_iter().collect()),
            ..Default::default()
        };
        let cfg = image_config_of(&c, None);
        assert_eq!(cfg.cmd().clone().unwrap(), ["sh", "-c", "echo hi > /f"]);
        assert_eq!(cfg.working_dir(), &None, "the default working dir is not written");
        assert_eq!(cfg.user(), &None);
        assert_eq!(created_by(&c), "sh -c echo hi > /f");
        let u = ContainerConfig {
            cmd: Some(vec!["cat".into(), "/f".into()]),
            labels: Some([("b".to_owned(), "2".to_owned())].into_iter().collect()),
            ..Default::default()
        };
        let cfg = image_config_of(&c, Some(&u));
        assert_eq!(cfg.cmd().clone().unwrap(), ["cat", "/f"]);
        assert_eq!(cfg.env().clone().unwrap(), ["PATH=/bin", "A=1"]);
        assert_eq!(cfg.labels().clone().unwrap().len(), 2);
    }
}
