//! Container creation: merge the request with the image's config the way Docker does,
//! validate names, binds and options, and record the container.

use std::path::PathBuf;
use std::sync::Arc;

use berth_api::models::{ContainerConfig, ContainerCreateBody, HostConfig, MountType};

use super::{Container, Engine, blocking, now};
use crate::error::{Error, Result};
use crate::names;
use crate::record::{BindSpec, ContainerRecord, RunState};

/// Docker's smallest memory limit (linuxMinMemory), 6 MiB.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// How many generated names a create draws before it reports the conflict.
const NAME_DRAWS: u32 = 10;

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The answer to a create: the id and any warnings.
pub struct Created {
    /// Full id.
    pub id: String,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

impl Engine {
    /// `POST /containers/create`.
    pub async fn create_container(
        self: &Arc<Self>,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<Created> {
        berth_runtime::trace::mark("-", "daemon.create_request");
        // A start usually follows at once: its cgroup migration's grace period runs from now.
        berth_runtime::attach_lock::prime();
        self.warm_launcher();
        self.warm_spare_netns(body.host_config.as_ref().and_then(|h| h.network_mode.as_deref()));
        let image_name = body.image.clone().filter(|s| !s.is_empty()).ok_or_else(|| {
            Error::InvalidArgument("config cannot be empty in order to create a container".to_owned())
        })?;
        let name = match name.as_deref().map(|n| n.strip_prefix('/').unwrap_or(n)) {
            Some(n) if !n.is_empty() => {
                if !names::valid(n) {
                    return Err(Error::InvalidArgument(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                Some(n.to_owned())
            }
            _ => None,
        };
        let mut host_config = body.host_config.clone().unwrap_or_default();
        check_host_config(&host_config)?;
        // Limits this host's cgroups cannot enforce are dropped with dockerd's warnings.
        let warnings = super::sysinfo::discard_unsupported(
            super::sysinfo::SysInfo::host(),
            super::sysinfo::resources_mut!(host_config),
        )?;
        // Devices, CDI/GPU requests and ulimits are refused here rather than at start (a few
        // stats and small spec files, read only when asked for).
        super::devices::resolve(&host_config, &self.cfg)?;
        let volume_plan = super::volumes::plan(&host_config)?;
        let binds = parse_binds(&super::volumes::without_volumes(&host_config))?;
        let image = self.resolve_image_for_run(&image_name).await?;

        let id = berth_base::new_id();
        let (config, path, args) = merge_config(&id, &body, &image.config, &image.extras)?;
        let networks = self.check_networking(&body, &host_config, &config)?;
        let name_generated = name.is_none();
        let name = match name {
            Some(n) => {
                if let Some(other) = self.name_owner(&n) {
                    return Err(crate::store::name_conflict(&n, &other));
                }
                n
            }
            None => self.unique_name(0),
        };
        let mut rec = ContainerRecord {
            id: id.clone(),
            name,
            created: now(),
            image: image_name,
            image_id: image.id.to_string(),
            path,
            args,
            config,
            host_config,
            binds,
            state: RunState::default(),
            restart_count: 0,
            volumes: Vec::new(),
            networks,
            ports: Vec::new(),
            health: None,
        };
        let config_volumes = rec.config.volumes.clone().unwrap_or_default();
        let (volumes, inherited) =
            self.attach_volumes(&id, volume_plan, &rec.binds, &rec.host_config, &config_volumes).await?;
        rec.volumes = volumes;
        rec.binds.extend(inherited);
        // A generated name is checked against the containers known when it is drawn, but a
        // concurrent create can record the same one first: the store refuses the second,
        // which then draws again (Docker retries its generator the same way).
        let engine = self.clone();
        let recorded = record_drawing_names(
            &mut rec,
            name_generated,
            |draw| self.unique_name(draw),
            |rec2| {
                let dir = engine.container_dir(&rec2.id);
                let engine = engine.clone();
                blocking(move || {
                    // 0710 root:root as Docker's: other host users never reach the container's
                    // upper dir (setuid files) nor its config and logs.
                    berth_base::fsutil::create_dir_mode(&dir, berth_base::fsutil::GUARD_DIR)
                        .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
                    if let Err(e) = engine.store.insert(&rec2) {
                        let _ = std::fs::remove_dir_all(&dir);
                        return Err(e);
                    }
                    Ok(())
                })
            },
        )
        .await;
        if let Err(e) = recorded {
            self.detach_volumes(&id, &rec.volumes).await;
            return Err(e);
        }
        if let Err(e) = self.populate_volumes(&rec).await {
            tracing::warn!(container = %id, error = %e, "filling volumes from the image");
            let _ = self.store.delete(&id);
            let _ = std::fs::remove_dir_all(self.container_dir(&id));
            self.detach_volumes(&id, &rec.volumes).await;
            return Err(e);
        }
        for v in &mut rec.volumes {
            v.copy_data = false;
        }
        let _ = self.store.update(&rec);
        self.emit_container(&rec, "create", &[]);
        self.insert(Container::new(rec));
        berth_runtime::trace::mark(&id, "daemon.created");
        Ok(Created { id, warnings })
    }

    /// A generated name no known container has, drawn with Docker's retry counter from
    /// `draw` on (later draws carry a digit).
    fn unique_name(&self, draw: u32) -> String {
        let table = self.table();
        for retry in draw..draw + 20 {
            let n = names::generate(retry);
            if table.name_owner(&n).is_none() {
                return n;
            }
        }
        berth_base::new_id()[..16].to_owned()
    }
}

/// Records `rec` with `insert`; when its name was generated and the store answers that the
/// name is taken (a concurrent create recorded it first), draws another with `draw(n)` and
/// tries again, up to [`NAME_DRAWS`] times in all. A name the user gave is never changed.
async fn record_drawing_names<D, I, F>(
    rec: &mut ContainerRecord,
    generated: bool,
    mut draw: D,
    mut insert: I,
) -> Result<()>
where
    D: FnMut(u32) -> String,
    I: FnMut(ContainerRecord) -> F,
    F: std::future::Future<Output = Result<()>>,
{
    let mut draws = 1;
    loop {
        match insert(rec.clone()).await {
            Err(Error::Conflict(_)) if generated && draws < NAME_DRAWS => {
                rec.name = draw(draws);
                draws += 1;
            }
            other => return other,
        }
    }
}

/// Options berth does not implement yet are refused rather than silently ignored, so a
/// user never believes a port is published or a GPU attached when it is not.
fn check_host_config(hc: &HostConfig) -> Result<()> {
    // moby's verifyPlatformContainerResources: its floor, and its wording, for any non-zero
    // limit below it (a negative one included).
    if let Some(m) = hc.memory
        && m != 0
        && m < MIN_MEMORY
    {
        return Err(Error::InvalidArgument("Minimum memory limit allowed is 6MB".to_owned()));
    }
    super::sandbox::security_opts(hc.security_opt.as_deref().unwrap_or(&[]))?;
    super::cgroups::check_resources(
        hc.blkio_weight,
        hc.cpuset_cpus.as_deref(),
        hc.cpuset_mems.as_deref(),
        hc.memory,
        hc.memory_reservation,
    )?;
    if let Some(rp) = &hc.restart_policy {
        super::restart::validate(rp)?;
        if hc.auto_remove == Some(true) && super::restart::Policy::of(hc) != super::restart::Policy::No {
            return Err(Error::InvalidArgument("can't create 'AutoRemove' container with restart policy".to_owned()));
        }
    }
    match hc.ipc_mode.as_deref() {
        None | Some("") | Some("private") | Some("shareable") | Some("host") | Some("none") => {}
        Some(other) => return Err(Error::InvalidArgument(format!("invalid IPC mode: {other}"))),
    }
    match hc.pid_mode.as_deref() {
        None | Some("") | Some("host") => {}
        Some(other) => return Err(Error::NotImplemented(format!("pid mode {other:?} is not supported yet"))),
    }
    if let Some(lc) = &hc.log_config
        && let Some(t) = lc.typ.as_deref()
        && !matches!(t, "" | "json-file" | "none")
    {
        // dockerd's built-in drivers; berth writes json-file or nothing.
        const KNOWN: &[&str] = &[
            "local",
            "syslog",
            "journald",
            "gelf",
            "fluentd",
            "awslogs",
            "splunk",
            "etwlogs",
            "gcplogs",
            "logentries",
        ];
        if !KNOWN.contains(&t) {
            // Docker 20.10's words: an unknown driver is looked up as a plugin.
            return Err(Error::InvalidArgument(format!(
                "error looking up logging plugin {t}: plugin \"{t}\" not found"
            )));
        }
        return Err(Error::NotImplemented(format!(
            "logging driver {t:?} is not supported: berth logs with json-file (or none)"
        )));
    }
    Ok(())
}

/// Parses `-v` binds (`/src:/dst[:opts]`) and `--mount type=bind` into bind specs.
fn parse_binds(hc: &HostConfig) -> Result<Vec<BindSpec>> {
    let mut out: Vec<BindSpec> = Vec::new();
    for b in hc.binds.iter().flatten() {
        let invalid = || Error::InvalidArgument(format!("invalid volume specification: '{b}'"));
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => return Err(invalid()),
        };
        if src.is_empty() || dst.is_empty() {
            return Err(invalid());
        }
        if !dst.starts_with('/') {
            return Err(Error::InvalidArgument(format!(
                "invalid volume specification: '{b}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
            )));
        }
        if !src.starts_with('/') {
            return Err(Error::NotImplemented(format!(
                "named volumes are not supported yet: '{src}' (use an absolute or ./relative host path to bind-mount a directory)"
            )));
        }
        let mut readonly = false;
        for opt in mode.split(',').filter(|o| !o.is_empty()) {
            match opt {
                "ro" => readonly = true,
                "rw" => readonly = false,
                "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated" | "shared" | "rshared" | "slave"
                | "rslave" | "private" | "rprivate" => {}
                _ => return Err(invalid()),
            }
        }
        push_unique(
            &mut out,
            BindSpec {
                source: PathBuf::from(src),
                destination: clean_dest(dst),
                readonly,
                mode: mode.to_owned(),
                from_mount_flag: false,
            },
        )?;
    }
    for m in hc.mounts.iter().flatten() {
        let target = m.target.clone().unwrap_or_default();
        match m.typ {
            Some(MountType::BIND) => {
                let src = m.source.clone().unwrap_or_default();
                if src.is_empty() {
                    return Err(Error::InvalidArgument(
                        "invalid mount config for type \"bind\": field Source must not be empty".to_owned(),
                    ));
                }
                if target.is_empty() {
                    return Err(Error::InvalidArgument(
                        "invalid mount config for type \"bind\": field Target must not be empty".to_owned(),
                    ));
                }
                if !src.starts_with('/') || !target.starts_with('/') {
                    return Err(Error::InvalidArgument(format!(
                        "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                        if src.starts_with('/') { &target } else { &src }
                    )));
                }
                if !std::path::Path::new(&src).exists() {
                    return Err(Error::InvalidArgument(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                    )));
                }
                let readonly = m.read_only.unwrap_or(false);
                push_unique(
                    &mut out,
                    BindSpec {
                        source: PathBuf::from(src),
                        destination: clean_dest(&target),
                        readonly,
                        mode: String::new(),
                        from_mount_flag: true,
                    },
                )?;
            }
            Some(MountType::TMPFS) => {
                if !target.starts_with('/') {
                    return Err(Error::InvalidArgument(format!(
                        "invalid mount config for type \"tmpfs\": invalid mount path: '{target}' mount path must be absolute"
                    )));
                }
            }
            None => {
                return Err(Error::InvalidArgument(
                    "invalid mount config for type \"\": mount type unknown".to_owned(),
                ));
            }
            Some(other) => {
                return Err(Error::NotImplemented(format!(
                    "mount type \"{other}\" is not supported yet (only bind and tmpfs)"
                )));
            }
        }
    }
    Ok(out)
}

fn push_unique(out: &mut Vec<BindSpec>, b: BindSpec) -> Result<()> {
    if out.iter().any(|o| o.destination == b.destination) {
        return Err(Error::InvalidArgument(format!("Duplicate mount point: {}", b.destination)));
    }
    out.push(b);
    Ok(())
}

fn clean_dest(d: &str) -> String {
    let mut parts = Vec::new();
    for p in d.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The image's healthcheck with the request's fields laid over it, field by field, as
/// Docker merges them (`--health-cmd` alone keeps the image's interval).
fn merge_healthcheck(
    user: Option<&berth_api::models::HealthConfig>,
    image: Option<&berth_image::HealthConfig>,
) -> Option<berth_api::models::HealthConfig> {
    let from_image = image.map(crate::views::health_config);
    let Some(u) = user else { return from_image };
    let Some(i) = from_image else { return Some(u.clone()) };
    let pick = |a: Option<i64>, b: Option<i64>| a.filter(|v| *v != 0).or(b);
    Some(berth_api::models::HealthConfig {
        test: u.test.clone().filter(|t| !t.is_empty()).or(i.test),
        interval: pick(u.interval, i.interval),
        timeout: pick(u.timeout, i.timeout),
        retries: pick(u.retries, i.retries),
        start_period: pick(u.start_period, i.start_period),
        start_interval: pick(u.start_interval, i.start_interval),
    })
}

/// Docker's merge of the create request with the image config, and the command to run.
fn merge_config(
    id: &str,
    body: &ContainerCreateBody,
    image: &oci_spec::image::ImageConfiguration,
    extras: &berth_image::ConfigExtras,
) -> Result<(ContainerConfig, String, Vec<String>)> {
    let ic = image.config().clone().unwrap_or_default();
    let mut env: Vec<String> = ic.env().clone().unwrap_or_default();
    for e in body.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    // `--entrypoint ""` arrives as [""]: it clears the image's entrypoint.
    let user_ep: Option<Vec<String>> =
        body.entrypoint.clone().map(|v| v.into_iter().filter(|s| !s.is_empty()).collect());
    let user_cmd = body.cmd.clone().filter(|c| !c.is_empty());
    let entrypoint: Vec<String> = match &user_ep {
        Some(ep) => ep.clone(),
        None => ic.entrypoint().clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = match user_cmd {
        Some(c) => c,
        None if user_ep.as_ref().is_some_and(|e| !e.is_empty()) => Vec::new(),
        None => ic.cmd().clone().unwrap_or_default(),
    };
    let mut full = entrypoint.clone();
    full.extend(cmd.iter().cloned());
    if full.is_empty() {
        return Err(Error::InvalidArgument("no command specified".to_owned()));
    }
    let working_dir = body
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| ic.working_dir().clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".to_owned());
    if !working_dir.starts_with('/') {
        return Err(Error::InvalidArgument(format!(
            "the working directory '{working_dir}' is invalid, it needs to be an absolute path"
        )));
    }
    let mut labels = ic.labels().clone().unwrap_or_default().into_iter().collect::<std::collections::HashMap<_, _>>();
    for (k, v) in body.labels.iter().flatten() {
        labels.insert(k.clone(), v.clone());
    }
    let mut exposed: Vec<String> = ic.exposed_ports().clone().unwrap_or_default();
    for p in body.exposed_ports.iter().flatten() {
        if !exposed.contains(p) {
            exposed.push(p.clone());
        }
    }
    let mut volumes: Vec<String> = ic.volumes().clone().unwrap_or_default();
    for v in body.volumes.iter().flatten() {
        if !volumes.contains(v) {
            volumes.push(v.clone());
        }
    }
    let user = body.user.clone().filter(|u| !u.is_empty()).or_else(|| ic.user().clone()).unwrap_or_default();
    let config = ContainerConfig {
        hostname: Some(body.hostname.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| id[..12].to_owned())),
        domainname: Some(body.domainname.clone().unwrap_or_default()),
        user: Some(user),
        attach_stdin: Some(body.attach_stdin.unwrap_or(false)),
        attach_stdout: Some(body.attach_stdout.unwrap_or(false)),
        attach_stderr: Some(body.attach_stderr.unwrap_or(false)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(body.tty.unwrap_or(false)),
        open_stdin: Some(body.open_stdin.unwrap_or(false)),
        stdin_once: Some(body.stdin_once.unwrap_or(false)),
        env: Some(env),
        cmd: (!cmd.is_empty()).then_some(cmd),
        healthcheck: merge_healthcheck(body.healthcheck.as_ref(), extras.healthcheck.as_ref()),
        args_escaped: None,
        image: body.image.clone(),
        volumes: (!volumes.is_empty()).then_some(volumes),
        working_dir: Some(working_dir),
        entrypoint: (!entrypoint.is_empty()).then_some(entrypoint),
        network_disabled: body.network_disabled,
        on_build: None,
        labels: Some(labels),
        stop_signal: body.stop_signal.clone().or_else(|| ic.stop_signal().clone()),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone(),
    };
    let path = full[0].clone();
    let args = full[1..].to_vec();
    Ok((config, path, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(cmd: &[&str], ep: &[&str]) -> oci_spec::image::ImageConfiguration {
        let mut c = oci_spec::image::Config::default();
        if !cmd.is_empty() {
            c.set_cmd(Some(cmd.iter().map(|s| s.to_string()).collect()));
        }
        if !ep.is_empty() {
            c.set_entrypoint(Some(ep.iter().map(|s| s.to_string()).collect()));
        }
        c.set_env(Some(vec!["PATH=/bin".into(), "A=1".into()]));
        let mut i = oci_spec::image::ImageConfiguration::default();
        i.set_config(Some(c));
        i
    }

    fn body(cmd: Option<&[&str]>, ep: Option<&[&str]>) -> ContainerCreateBody {
        ContainerCreateBody {
            image: Some("x".into()),
            cmd: cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
            entrypoint: ep.map(|c| c.iter().map(|s| s.to_string()).collect()),
            env: Some(vec!["A=2".into(), "B=3".into()]),
            ..Default::default()
        }
    }

    fn record(name: &str) -> ContainerRecord {
        ContainerRecord {
            id: berth_base::new_id(),
            name: name.to_owned(),
            created: now(),
            image: "busybox".to_owned(),
            image_id: String::new(),
            path: "true".to_owned(),
            args: Vec::new(),
            config: Default::default(),
            host_config: Default::default(),
            binds: Vec::new(),
            state: RunState::default(),
            restart_count: 0,
            volumes: Vec::new(),
            networks: Default::default(),
            ports: Vec::new(),
            health: None,
        }
    }

    /// A store that already holds the first `taken` names drawn (as a concurrent create
    /// would have recorded them) and refuses them as Docker's name conflict.
    async fn record_against(generated: bool, taken: u32) -> (Result<()>, String, u32) {
        let mut rec = record("draw0");
        let mut calls = 0;
        let r = record_drawing_names(
            &mut rec,
            generated,
            |n| format!("draw{n}"),
            |r: ContainerRecord| {
                calls += 1;
                let drawn: u32 = r.name.trim_start_matches("draw").parse().unwrap();
                async move { if drawn < taken { Err(crate::store::name_conflict(&r.name, "other")) } else { Ok(()) } }
            },
        )
        .await;
        (r, rec.name, calls)
    }

    #[tokio::test]
    async fn generated_names_are_redrawn_on_conflict() {
        let (r, name, calls) = record_against(true, 3).await;
        assert!(r.is_ok());
        assert_eq!((name.as_str(), calls), ("draw3", 4));
        // A name the user chose is never replaced: the conflict is the answer.
        let (r, name, calls) = record_against(false, 1).await;
        assert!(matches!(r, Err(Error::Conflict(_))));
        assert_eq!((name.as_str(), calls), ("draw0", 1));
        // The draws are bounded.
        let (r, _, calls) = record_against(true, u32::MAX).await;
        assert!(matches!(r, Err(Error::Conflict(_))));
        assert_eq!(calls, NAME_DRAWS);
    }

    #[test]
    fn merges_like_docker() {
        let id = berth_base::new_id();
        let (c, p, a) = merge_config(&id, &body(None, None), &image(&["sh"], &[]), &Default::default()).unwrap();
        assert_eq!((p.as_str(), a.len()), ("sh", 0));
        assert_eq!(c.env.unwrap(), vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.hostname.unwrap(), &id[..12]);
        let (_, p, a) =
            merge_config(&id, &body(Some(&["echo", "hi"]), None), &image(&["sh"], &["/ep"]), &Default::default())
                .unwrap();
        assert_eq!((p.as_str(), a), ("/ep", vec!["echo".to_string(), "hi".into()]));
        let (_, p, a) =
            merge_config(&id, &body(None, Some(&["sh"])), &image(&["x"], &["/ep"]), &Default::default()).unwrap();
        assert_eq!((p.as_str(), a.len()), ("sh", 0), "a new entrypoint drops the image's cmd");
        let (_, p, _) =
            merge_config(&id, &body(Some(&["ls"]), Some(&[""])), &image(&["x"], &["/ep"]), &Default::default())
                .unwrap();
        assert_eq!(p, "ls", "--entrypoint \"\" clears it");
        assert!(merge_config(&id, &body(None, None), &image(&[], &[]), &Default::default()).is_err());
    }

    #[test]
    fn parses_binds() {
        let hc =
            |b: &[&str]| HostConfig { binds: Some(b.iter().map(|s| s.to_string()).collect()), ..Default::default() };
        let v = parse_binds(&hc(&["/a:/b", "/c:/d/../e:ro"])).unwrap();
        assert_eq!(v[1].destination, "/e");
        assert!(v[1].readonly && !v[0].readonly);
        for bad in ["/a", "/a:/b:c:d", ":/b", "/a:b", "/a:/b:bogus"] {
            assert!(parse_binds(&hc(&[bad])).is_err(), "{bad}");
        }
        assert!(parse_binds(&hc(&["/a:/b", "/c:/b"])).is_err());
        assert!(parse_binds(&super::super::volumes::without_volumes(&hc(&["vol:/b"]))).unwrap().is_empty());
    }
}
