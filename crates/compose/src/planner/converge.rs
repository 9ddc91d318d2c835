//! Convergence: `up` makes what runs match the project (networks, volumes, images, then each
//! service's containers in dependency order, waiting on `depends_on` conditions), recreating
//! only containers whose config hash changed; `down` takes the project away. A failed `up`
//! removes what it created before it reports the error, so nothing is left half-up.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use berth_api::Client;
use berth_api::models::{ContainerInspectResponse, HealthStatusEnum};
use berth_api::query::{InspectContainer, RemoveContainer, StopContainer};
use serde_json::json;

use super::create::{self, Instance, config_hash, create_body, image_of, network_name, service_networks};
use super::images::{self, BuildOptions, Credentials};
use super::names;
use super::progress::{Progress, Resource};
use super::state::{self, Existing, Oneoff};
use crate::ComposeError;
use crate::model::{Condition, Project, Service};

/// When to recreate existing containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Recreate {
    /// When the configuration or the image changed (the default).
    #[default]
    Diverged,
    /// Always (`--force-recreate`).
    Force,
    /// Never (`--no-recreate`).
    Never,
}

/// When to build images of services with `build:`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildPolicy {
    /// When the image is missing (the default).
    #[default]
    Missing,
    /// Always (`--build`).
    Always,
    /// Never (`--no-build`): a missing image is an error.
    Never,
}

/// What `up` (and `create`) should do.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// The services named on the command line (empty: every active service).
    pub services: Vec<String>,
    /// Do not bring up their dependencies (`--no-deps`).
    pub no_deps: bool,
    /// When to build.
    pub build: BuildPolicy,
    /// How to build.
    pub build_options: BuildOptions,
    /// When to recreate.
    pub recreate: Recreate,
    /// `--scale svc=N`.
    pub scale: BTreeMap<String, u32>,
    /// Start the containers (false for `create` and `up --no-start`).
    pub start: bool,
    /// Remove containers of services no longer in the project.
    pub remove_orphans: bool,
    /// `--pull`: `always`, `missing`, `never`, or `policy` (each service's `pull_policy`).
    pub pull: String,
    /// Stop timeout when recreating, in seconds.
    pub timeout: Option<i64>,
    /// Wait for every service to be running (healthy, when it has a healthcheck).
    pub wait: bool,
    /// Give up `--wait` (and dependency waits) after this long.
    pub wait_timeout: Option<Duration>,
}

/// What `down` should do.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// Remove the project's named volumes and containers' anonymous volumes (`-v`).
    pub volumes: bool,
    /// Remove images: `local` (those built without an `image:` name) or `all`.
    pub rmi: Option<String>,
    /// Remove containers of services no longer in the project.
    pub remove_orphans: bool,
    /// Stop timeout in seconds.
    pub timeout: Option<i64>,
    /// Only these services (empty: all).
    pub services: Vec<String>,
}

/// What one `up` created, so a failure can take it away again.
#[derive(Debug, Default)]
struct Created {
    containers: Vec<(String, String)>,
    networks: Vec<String>,
    volumes: Vec<String>,
}

/// The planner: a project, the client to the daemon, and where to report.
pub struct Planner<'a> {
    /// The daemon.
    pub client: &'a Client,
    /// The loaded project.
    pub project: &'a Project,
    /// Progress events go here.
    pub progress: &'a dyn Progress,
    /// Registry credentials for pulls and pushes.
    pub creds: &'a dyn Credentials,
}

impl<'a> Planner<'a> {
    fn svc(&self, name: &str) -> Result<&'a Service, ComposeError> {
        self.project.services.get(name).ok_or_else(|| ComposeError::NoSuchService { name: name.to_owned() })
    }

    /// The services named (checked to exist), or every active service.
    pub fn selected(&self, names: &[String]) -> Result<Vec<String>, ComposeError> {
        if names.is_empty() {
            return Ok(self.project.active_services().iter().map(|s| s.name.clone()).collect());
        }
        for n in names {
            self.svc(n)?;
        }
        Ok(names.to_vec())
    }

    /// The services to act on with their dependencies first.
    pub fn ordered(&self, names: &[String], with_deps: bool) -> Result<Vec<String>, ComposeError> {
        let sel = self.selected(names)?;
        Ok(self.project.dependency_order(&sel, with_deps)?.into_iter().map(str::to_owned).collect())
    }

    /// `up` / `create`: converges the selected services (and their dependencies). On failure,
    /// whatever this call created is removed again before the error is returned.
    pub async fn up(&self, o: &UpOptions) -> Result<Vec<Existing>, ComposeError> {
        let order = self.ordered(&o.services, !o.no_deps)?;
        self.orphans(o.remove_orphans).await?;
        let mut created = Created::default();
        match self.converge(&order, o, &mut created).await {
            Ok(()) => {}
            Err(e) => {
                self.rollback(created).await;
                return Err(e);
            }
        }
        if o.wait {
            self.wait_ready(&order, o.wait_timeout).await?;
        }
        let sel: BTreeSet<String> = self.selected(&o.services)?.into_iter().collect();
        let all = state::containers(self.client, &self.project.name, Oneoff::Exclude, true).await?;
        Ok(all.into_iter().filter(|c| sel.contains(&c.service)).collect())
    }

    /// Containers of services the project no longer has: removed, or a warning.
    async fn orphans(&self, remove: bool) -> Result<(), ComposeError> {
        let all = state::containers(self.client, &self.project.name, Oneoff::Exclude, true).await?;
        let orphans: Vec<&Existing> = all.iter().filter(|c| !self.project.services.contains_key(&c.service)).collect();
        if orphans.is_empty() {
            return Ok(());
        }
        if remove {
            for c in orphans {
                self.remove_one(c, None, false).await?;
            }
        } else {
            let names: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
            self.progress.warn(&format!(
                "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                names.join(" ")
            ));
        }
        Ok(())
    }

    async fn converge(&self, order: &[String], o: &UpOptions, created: &mut Created) -> Result<(), ComposeError> {
        let svcs: Vec<&Service> = order.iter().map(|n| self.svc(n)).collect::<Result<_, _>>()?;
        self.ensure_networks(&svcs, created).await?;
        self.ensure_volumes(created).await?;
        let image_ids = self.ensure_images(&svcs, o).await?;
        let mut recreated: BTreeSet<String> = BTreeSet::new();
        for svc in &svcs {
            self.wait_dependencies(svc, order, o.wait_timeout).await?;
            let changed = self.converge_service(svc, o, image_ids.get(&svc.name).cloned(), &recreated, created).await?;
            if changed {
                recreated.insert(svc.name.clone());
            }
        }
        Ok(())
    }

    /// Creates the project networks the services use (checking external ones exist).
    pub async fn ensure_networks_for(&self, svcs: &[&Service]) -> Result<(), ComposeError> {
        let mut created = Created::default();
        let r = self.ensure_networks(svcs, &mut created).await;
        if r.is_err() {
            self.rollback(created).await;
        }
        r
    }

    async fn ensure_networks(&self, svcs: &[&Service], created: &mut Created) -> Result<(), ComposeError> {
        let mut keys = BTreeSet::new();
        for s in svcs {
            for (k, _) in service_networks(s) {
                keys.insert(k);
            }
        }
        for key in keys {
            let name = network_name(self.project, &key);
            let def = self.project.networks.get(&key).cloned().unwrap_or_default();
            match self.client.inspect_network(&name).await {
                Ok(_) => continue,
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
            if def.external {
                return Err(ComposeError::Refused(format!(
                    "network {name} declared as external, but could not be found"
                )));
            }
            let mut labels = def.labels.clone();
            labels.extend(names::project_labels(&self.project.name));
            labels.insert(names::NETWORK.to_owned(), key.clone());
            let mut body = json!({
                "Name": name,
                "Driver": def.driver.clone().unwrap_or_else(|| "bridge".into()),
                "Labels": labels,
                "Internal": def.internal,
                "Attachable": def.attachable,
                "Options": def.driver_opts,
                "CheckDuplicate": true,
            });
            if let Some(v6) = def.enable_ipv6 {
                body["EnableIPv6"] = json!(v6);
            }
            if !def.ipam.is_empty() {
                let cfg: Vec<serde_json::Value> = def
                    .ipam
                    .config
                    .iter()
                    .map(|p| {
                        json!({"Subnet": p.subnet, "Gateway": p.gateway, "IPRange": p.ip_range, "AuxiliaryAddresses": p.aux_addresses})
                    })
                    .collect();
                body["IPAM"] = json!({"Driver": def.ipam.driver.clone().unwrap_or_else(|| "default".into()), "Config": cfg, "Options": def.ipam.options});
            }
            self.tracked(Resource::Network, &name, ("Creating", "Created"), self.client.create_network(&body)).await?;
            created.networks.push(name.clone());
        }
        Ok(())
    }

    async fn ensure_volumes(&self, created: &mut Created) -> Result<(), ComposeError> {
        for (key, v) in &self.project.volumes {
            let name = if v.name.is_empty() { names::scoped_name(&self.project.name, key) } else { v.name.clone() };
            match self.client.inspect_volume(&name).await {
                Ok(_) => continue,
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
            if v.external {
                return Err(ComposeError::Refused(format!("external volume \"{name}\" not found")));
            }
            let mut labels = v.labels.clone();
            labels.extend(names::project_labels(&self.project.name));
            labels.insert(names::VOLUME.to_owned(), key.clone());
            let req = berth_api::models::VolumeCreateRequest {
                name: Some(name.clone()),
                driver: Some(v.driver.clone().unwrap_or_else(|| "local".into())),
                driver_opts: Some(v.driver_opts.clone().into_iter().collect()),
                labels: Some(labels.into_iter().collect()),
                ..Default::default()
            };
            let shown = format!("\"{name}\"");
            self.tracked(Resource::Volume, &shown, ("Creating", "Created"), self.client.create_volume(&req)).await?;
            created.volumes.push(name.clone());
        }
        Ok(())
    }

    /// Builds or pulls what the services need; returns each service's image id.
    async fn ensure_images(&self, svcs: &[&Service], o: &UpOptions) -> Result<BTreeMap<String, String>, ComposeError> {
        let mut to_build = Vec::new();
        let mut ids = BTreeMap::new();
        for svc in svcs {
            let image = image_of(self.project, svc);
            let policy = match o.pull.as_str() {
                "" | "policy" => svc.pull_policy.clone().unwrap_or_else(|| "missing".into()),
                p => p.to_owned(),
            };
            let have = images::image_id(self.client, &image).await?;
            if svc.build.is_some() {
                let build = match o.build {
                    BuildPolicy::Always => true,
                    BuildPolicy::Never => false,
                    BuildPolicy::Missing => have.is_none() || policy == "build",
                };
                if build {
                    to_build.push(*svc);
                    continue;
                }
                if have.is_none() && o.build == BuildPolicy::Never {
                    return Err(ComposeError::Refused(format!(
                        "service \"{}\" has no image to run and --no-build was given: build it first",
                        svc.name
                    )));
                }
            } else if svc.image.is_none() {
                return Err(ComposeError::NoImage { service: svc.name.clone() });
            }
            let pull = match policy.as_str() {
                "always" => true,
                "never" => {
                    if have.is_none() {
                        return Err(ComposeError::Refused(format!(
                            "No such image: {image} (service \"{}\" has pull_policy: never)",
                            svc.name
                        )));
                    }
                    false
                }
                _ => have.is_none(),
            };
            if pull && svc.build.is_none() {
                images::pull(self.client, self.creds, self.progress, &svc.name, &image, svc.platform.as_deref())
                    .await?;
            }
            if let Some(id) = images::image_id(self.client, &image).await? {
                ids.insert(svc.name.clone(), id);
            }
        }
        if !to_build.is_empty() {
            images::build_all(self.client, self.creds, self.progress, self.project, &to_build, &o.build_options)
                .await?;
            for svc in to_build {
                if let Some(id) = images::image_id(self.client, &image_of(self.project, svc)).await? {
                    ids.insert(svc.name.clone(), id);
                }
            }
        }
        Ok(ids)
    }

    fn replicas(&self, svc: &Service, o: &UpOptions) -> u32 {
        o.scale.get(&svc.name).copied().unwrap_or_else(|| svc.replicas())
    }

    /// Converges one service's containers; returns whether any was created or recreated.
    async fn converge_service(
        &self,
        svc: &Service,
        o: &UpOptions,
        image_id: Option<String>,
        recreated_deps: &BTreeSet<String>,
        created: &mut Created,
    ) -> Result<bool, ComposeError> {
        let hash = config_hash(svc);
        let want = self.replicas(svc, o);
        let existing: Vec<Existing> = state::containers(self.client, &self.project.name, Oneoff::Exclude, true)
            .await?
            .into_iter()
            .filter(|c| c.service == svc.name)
            .collect();
        // Containers that share a namespace with a recreated service must follow it.
        let follows = |m: &Option<String>| {
            m.as_deref().and_then(|m| m.strip_prefix("service:")).is_some_and(|s| recreated_deps.contains(s))
        };
        let must_follow = follows(&svc.network_mode) || follows(&svc.ipc) || follows(&svc.pid);
        let restart_for_dep = svc.depends_on.iter().any(|(d, dep)| dep.restart && recreated_deps.contains(d));
        let mut changed = false;
        let image = image_of(self.project, svc);
        for n in 1..=want {
            let name = svc
                .container_name
                .clone()
                .filter(|_| want == 1)
                .unwrap_or_else(|| names::container_name(&self.project.name, &svc.name, n));
            let inst = Instance {
                name: name.clone(),
                number: n,
                slug: None,
                image: image.clone(),
                image_id: image_id.clone(),
                hash: hash.clone(),
            };
            match existing.iter().find(|c| c.number == n) {
                Some(c) => {
                    let image_changed = match (&image_id, c.labels.get(names::IMAGE)) {
                        (Some(now), Some(was)) => now != was,
                        _ => false,
                    };
                    let diverged = c.hash != hash || image_changed || must_follow;
                    let recreate = match o.recreate {
                        Recreate::Force => true,
                        Recreate::Never => false,
                        Recreate::Diverged => diverged,
                    };
                    if recreate {
                        self.progress.working(Resource::Container, &c.name, "Recreate");
                        self.remove_one(c, o.timeout, true).await?;
                        let id = self.create_container(svc, &inst).await?;
                        created.containers.push((id.clone(), inst.name.clone()));
                        self.progress.done(Resource::Container, &c.name, "Recreated");
                        changed = true;
                        if o.start {
                            self.start_one(&id, &inst.name).await?;
                        }
                    } else if o.start && !c.is_running() {
                        self.start_one(&c.id, &c.name).await?;
                    } else if o.start && restart_for_dep {
                        self.progress.working(Resource::Container, &c.name, "Restarting");
                        self.client
                            .restart_container(&c.id, &StopContainer { t: o.timeout, ..Default::default() })
                            .await?;
                        self.progress.done(Resource::Container, &c.name, "Started");
                    } else {
                        self.progress.done(Resource::Container, &c.name, "Running");
                    }
                }
                None => {
                    self.progress.working(Resource::Container, &inst.name, "Creating");
                    let id = match self.create_container(svc, &inst).await {
                        Ok(id) => id,
                        Err(e) => {
                            self.progress.failed(Resource::Container, &inst.name, "Error");
                            return Err(e);
                        }
                    };
                    created.containers.push((id.clone(), inst.name.clone()));
                    self.progress.done(Resource::Container, &inst.name, "Created");
                    changed = true;
                    if o.start {
                        self.start_one(&id, &inst.name).await?;
                    }
                }
            }
        }
        // Scaled down: the highest numbers go.
        for c in existing.iter().filter(|c| c.number > want) {
            self.remove_one(c, o.timeout, false).await?;
        }
        Ok(changed)
    }

    /// Creates one container of `svc` (connecting its further networks); returns its id.
    pub async fn create_container(&self, svc: &Service, inst: &Instance) -> Result<String, ComposeError> {
        let body = create_body(self.project, svc, inst)?;
        self.create_with_body(svc, inst, &body).await
    }

    /// Creates a container from a prepared body, then connects its further networks.
    pub async fn create_with_body(
        &self,
        svc: &Service,
        inst: &Instance,
        body: &berth_api::models::ContainerCreateBody,
    ) -> Result<String, ComposeError> {
        let q = berth_api::query::CreateContainer { name: Some(inst.name.clone()), ..Default::default() };
        let r = self.client.create_container(&q, body).await?;
        for w in &r.warnings {
            self.progress.warn(w);
        }
        for (key, n) in service_networks(svc).into_iter().skip(1) {
            let ep = create::endpoint(svc, inst, n);
            let body = json!({"Container": r.id, "EndpointConfig": ep});
            if let Err(e) = self.client.network_connect(&network_name(self.project, &key), true, &body).await {
                let _ = self
                    .client
                    .remove_container(&r.id, &RemoveContainer { force: true, v: true, ..Default::default() })
                    .await;
                return Err(e.into());
            }
        }
        Ok(r.id)
    }

    async fn start_one(&self, id: &str, name: &str) -> Result<(), ComposeError> {
        self.tracked(Resource::Container, name, ("Starting", "Started"), self.client.start_container(id)).await
    }

    /// Runs one API call between its progress lines: `working` first, then `done`, or
    /// `Error` when the call fails.
    async fn tracked<T>(
        &self,
        kind: Resource,
        name: &str,
        (doing, did): (&str, &str),
        call: impl std::future::Future<Output = Result<T, berth_api::ClientError>>,
    ) -> Result<T, ComposeError> {
        self.progress.working(kind, name, doing);
        match call.await {
            Ok(v) => {
                self.progress.done(kind, name, did);
                Ok(v)
            }
            Err(e) => {
                self.progress.failed(kind, name, "Error");
                Err(e.into())
            }
        }
    }

    /// [`Planner::tracked`] for removing a network or volume: one already gone (404) is
    /// no error and gets no further progress line.
    async fn remove_tracked(
        &self,
        kind: Resource,
        name: &str,
        call: impl std::future::Future<Output = Result<(), berth_api::ClientError>>,
    ) -> Result<(), ComposeError> {
        self.progress.working(kind, name, "Removing");
        match call.await {
            Ok(()) => {
                self.progress.done(kind, name, "Removed");
                Ok(())
            }
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => {
                self.progress.failed(kind, name, "Error");
                Err(e.into())
            }
        }
    }

    /// Stops (when running) and removes one container.
    async fn remove_one(&self, c: &Existing, timeout: Option<i64>, quiet: bool) -> Result<(), ComposeError> {
        if c.is_running() {
            if !quiet {
                self.progress.working(Resource::Container, &c.name, "Stopping");
            }
            match self.client.stop_container(&c.id, &StopContainer { t: timeout, ..Default::default() }).await {
                Ok(()) => {}
                Err(e) if e.status() == Some(404) => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            if !quiet {
                self.progress.done(Resource::Container, &c.name, "Stopped");
            }
        }
        if !quiet {
            self.progress.working(Resource::Container, &c.name, "Removing");
        }
        match self
            .client
            .remove_container(&c.id, &RemoveContainer { force: true, v: false, ..Default::default() })
            .await
        {
            Ok(()) => {}
            Err(e) if e.status() == Some(404) => {}
            Err(e) => return Err(e.into()),
        }
        if !quiet {
            self.progress.done(Resource::Container, &c.name, "Removed");
        }
        Ok(())
    }

    /// Takes away what a failed `up` created; keeps going after errors (reported as warnings).
    async fn rollback(&self, created: Created) {
        for (id, name) in created.containers.iter().rev() {
            let q = RemoveContainer { force: true, v: true, ..Default::default() };
            match self.client.remove_container(id, &q).await {
                Ok(()) => self.progress.done(Resource::Container, name, "Removed"),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => self.progress.warn(&format!("failed to remove container {name}: {e}")),
            }
        }
        for n in created.networks.iter().rev() {
            match self.client.remove_network(n).await {
                Ok(()) => self.progress.done(Resource::Network, n, "Removed"),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => self.progress.warn(&format!("failed to remove network {n}: {e}")),
            }
        }
        for v in created.volumes.iter().rev() {
            match self.client.remove_volume(v, true).await {
                Ok(()) => self.progress.done(Resource::Volume, &format!("\"{v}\""), "Removed"),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => self.progress.warn(&format!("failed to remove volume {v}: {e}")),
            }
        }
    }

    async fn inspect(&self, id: &str) -> Result<ContainerInspectResponse, ComposeError> {
        Ok(self.client.inspect_container(id, &InspectContainer::default()).await?)
    }

    /// Waits until every `depends_on` of `svc` that this run manages meets its condition.
    pub async fn wait_dependencies(
        &self,
        svc: &Service,
        managed: &[String],
        timeout: Option<Duration>,
    ) -> Result<(), ComposeError> {
        for (dep, d) in &svc.depends_on {
            if !managed.iter().any(|m| m == dep) {
                continue;
            }
            let r = self.wait_condition(dep, d.condition, timeout).await;
            match r {
                Ok(()) => {}
                Err(e) if !d.required => self.progress.warn(&format!("optional dependency {dep:?} failed: {e}")),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    async fn wait_condition(&self, dep: &str, cond: Condition, timeout: Option<Duration>) -> Result<(), ComposeError> {
        if cond == Condition::ServiceStarted {
            return Ok(());
        }
        let containers: Vec<Existing> = state::containers(self.client, &self.project.name, Oneoff::Exclude, true)
            .await?
            .into_iter()
            .filter(|c| c.service == dep)
            .collect();
        let started = Instant::now();
        for c in &containers {
            self.progress.working(Resource::Container, &c.name, "Waiting");
            loop {
                let info = self.inspect(&c.id).await?;
                let st = info.state.clone().unwrap_or_default();
                let status = st.status.map(|s| s.to_string()).unwrap_or_default();
                let code = st.exit_code.unwrap_or(0);
                match cond {
                    Condition::ServiceHealthy => {
                        let health = st.health.as_ref().and_then(|h| h.status);
                        match health {
                            Some(HealthStatusEnum::HEALTHY) => {
                                self.progress.done(Resource::Container, &c.name, "Healthy");
                                break;
                            }
                            Some(HealthStatusEnum::UNHEALTHY) => {
                                self.progress.failed(Resource::Container, &c.name, "Error");
                                return Err(ComposeError::Dependency(format!("container {} is unhealthy", c.name)));
                            }
                            None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY) => {
                                self.progress.failed(Resource::Container, &c.name, "Error");
                                return Err(ComposeError::Dependency(format!(
                                    "container {} has no healthcheck configured",
                                    c.name
                                )));
                            }
                            Some(HealthStatusEnum::STARTING) => {}
                        }
                        if status == "exited" || status == "dead" {
                            self.progress.failed(Resource::Container, &c.name, "Error");
                            return Err(ComposeError::Dependency(format!("container {} exited ({code})", c.name)));
                        }
                    }
                    Condition::ServiceCompletedSuccessfully => {
                        if status == "exited" || status == "dead" {
                            if code == 0 {
                                self.progress.done(Resource::Container, &c.name, "Exited");
                                break;
                            }
                            self.progress.failed(Resource::Container, &c.name, "Error");
                            return Err(ComposeError::Dependency(format!(
                                "service \"{dep}\" didn't complete successfully: exit {code}"
                            )));
                        }
                    }
                    Condition::ServiceStarted => break,
                }
                if timeout.is_some_and(|t| started.elapsed() > t) {
                    return Err(ComposeError::Timeout(format!("timeout waiting for {} to be ready", c.name)));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// `--wait`: every service's containers running, and healthy when they have a healthcheck.
    async fn wait_ready(&self, order: &[String], timeout: Option<Duration>) -> Result<(), ComposeError> {
        let started = Instant::now();
        let all = state::containers(self.client, &self.project.name, Oneoff::Exclude, true).await?;
        for c in all.iter().filter(|c| order.contains(&c.service)) {
            self.progress.working(Resource::Container, &c.name, "Waiting");
            loop {
                let info = self.inspect(&c.id).await?;
                let st = info.state.clone().unwrap_or_default();
                let status = st.status.map(|s| s.to_string()).unwrap_or_default();
                let health = st.health.as_ref().and_then(|h| h.status);
                match (status.as_str(), health) {
                    ("running", Some(HealthStatusEnum::HEALTHY)) => {
                        self.progress.done(Resource::Container, &c.name, "Healthy");
                        break;
                    }
                    ("running", None | Some(HealthStatusEnum::NONE) | Some(HealthStatusEnum::EMPTY)) => {
                        self.progress.done(Resource::Container, &c.name, "Running");
                        break;
                    }
                    (_, Some(HealthStatusEnum::UNHEALTHY)) => {
                        return Err(ComposeError::Dependency(format!("container {} is unhealthy", c.name)));
                    }
                    ("exited" | "dead", _) => {
                        let code = st.exit_code.unwrap_or(0);
                        if code == 0 && self.svc(&c.service).is_ok_and(|s| s.restart.is_none()) {
                            self.progress.done(Resource::Container, &c.name, "Exited");
                            break;
                        }
                        return Err(ComposeError::Dependency(format!("container {} exited ({code})", c.name)));
                    }
                    _ => {}
                }
                if timeout.is_some_and(|t| started.elapsed() > t) {
                    return Err(ComposeError::Timeout(format!("timeout waiting for {} to be ready", c.name)));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    /// Groups containers into stop waves: a service's containers come after those of every
    /// service that depends on it (dependants stop first); unknown services go first.
    fn stop_waves<'c>(&self, victims: &[&'c Existing]) -> Vec<Vec<&'c Existing>> {
        let services: BTreeSet<&str> = victims.iter().map(|c| c.service.as_str()).collect();
        // A service's depth: 0 when nothing present depends on it, else 1 + its dependants' max.
        let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
        let dependants = |s: &str| -> Vec<&str> {
            self.project
                .services
                .values()
                .filter(|d| d.depends_on.contains_key(s) && services.contains(d.name.as_str()))
                .map(|d| d.name.as_str())
                .collect()
        };
        fn depth_of<'s>(
            s: &'s str,
            dependants: &dyn Fn(&str) -> Vec<&'s str>,
            memo: &mut BTreeMap<&'s str, usize>,
            guard: usize,
        ) -> usize {
            if let Some(d) = memo.get(s) {
                return *d;
            }
            // A cycle cannot be loaded; the guard only bounds a malformed project.
            let d = if guard > 64 {
                0
            } else {
                dependants(s).into_iter().map(|x| 1 + depth_of(x, dependants, memo, guard + 1)).max().unwrap_or(0)
            };
            memo.insert(s, d);
            d
        }
        for s in &services {
            depth_of(s, &dependants, &mut depth, 0);
        }
        let max = depth.values().copied().max().unwrap_or(0);
        let mut waves: Vec<Vec<&Existing>> = vec![Vec::new(); max + 1];
        for c in victims {
            waves[depth.get(c.service.as_str()).copied().unwrap_or(0)].push(c);
        }
        waves
    }

    /// `down`: stops and removes the project's containers (dependants first), then its
    /// networks, and with `-v` its volumes; `--rmi` removes images too. Keeps going after a
    /// failure and returns the first error at the end.
    pub async fn down(&self, o: &DownOptions) -> Result<(), ComposeError> {
        let all = state::containers(self.client, &self.project.name, Oneoff::Include, true).await?;
        let scoped = !o.services.is_empty();
        let known = |c: &Existing| self.project.services.contains_key(&c.service);
        let orphans: Vec<&Existing> = all.iter().filter(|c| !known(c) && !c.oneoff).collect();
        if !orphans.is_empty() && !o.remove_orphans && !self.project.services.is_empty() {
            let names: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
            self.progress.warn(&format!(
                "Found orphan containers ([{}]) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
                names.join(" ")
            ));
        }
        // Dependants stop before what they depend on.
        let mut order: Vec<String> = match self.project.dependency_order(&[], true) {
            Ok(v) => v.into_iter().map(str::to_owned).collect(),
            Err(_) => self.project.services.keys().cloned().collect(),
        };
        order.reverse();
        let rank = |s: &str| order.iter().position(|x| x == s).unwrap_or(usize::MAX);
        let mut victims: Vec<&Existing> = all
            .iter()
            .filter(|c| {
                (known(c) || o.remove_orphans || self.project.services.is_empty())
                    && (!scoped || o.services.contains(&c.service))
            })
            .collect();
        victims.sort_by_key(|c| (rank(&c.service), c.number));
        let mut first: Option<ComposeError> = None;
        // Stop in waves: a service once every service that depends on it has stopped;
        // everything in one wave (replicas and independent services) at the same time.
        let waves = self.stop_waves(&victims);
        for wave in waves {
            let futs = wave.iter().filter(|c| c.is_running()).map(|c| async move {
                self.progress.working(Resource::Container, &c.name, "Stopping");
                let r = self.client.stop_container(&c.id, &StopContainer { t: o.timeout, ..Default::default() }).await;
                match r {
                    Ok(()) => {
                        self.progress.done(Resource::Container, &c.name, "Stopped");
                        Ok(())
                    }
                    Err(e) if e.status() == Some(404) => Ok(()),
                    Err(e) => {
                        self.progress.failed(Resource::Container, &c.name, "Error");
                        Err(ComposeError::from(e))
                    }
                }
            });
            for r in futures_util::future::join_all(futs).await {
                if let Err(e) = r {
                    first.get_or_insert(e);
                }
            }
        }
        let futs = victims.iter().map(|c| async move {
            self.progress.working(Resource::Container, &c.name, "Removing");
            let q = RemoveContainer { force: true, v: o.volumes, ..Default::default() };
            match self.client.remove_container(&c.id, &q).await {
                Ok(()) => {
                    self.progress.done(Resource::Container, &c.name, "Removed");
                    Ok(())
                }
                Err(e) if e.status() == Some(404) => {
                    self.progress.done(Resource::Container, &c.name, "Removed");
                    Ok(())
                }
                Err(e) => {
                    self.progress.failed(Resource::Container, &c.name, "Error");
                    Err(ComposeError::from(e))
                }
            }
        });
        for r in futures_util::future::join_all(futs).await {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        if scoped {
            return first.map_or(Ok(()), Err);
        }
        // Networks and volumes labelled with the project (external ones carry no label).
        match state::networks(self.client, &self.project.name).await {
            Ok(nets) => {
                for n in nets {
                    let name = n["Name"].as_str().unwrap_or_default().to_owned();
                    if let Err(e) =
                        self.remove_tracked(Resource::Network, &name, self.client.remove_network(&name)).await
                    {
                        first.get_or_insert(e);
                    }
                }
            }
            Err(e) => {
                first.get_or_insert(e);
            }
        }
        if o.volumes {
            match state::volumes(self.client, &self.project.name).await {
                Ok(vols) => {
                    for v in vols {
                        if let Err(e) =
                            self.remove_tracked(Resource::Volume, &v, self.client.remove_volume(&v, false)).await
                        {
                            first.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if let Some(mode) = &o.rmi {
            let mut imgs = BTreeSet::new();
            for svc in self.project.services.values() {
                let local = svc.image.is_none();
                if mode == "all" || local {
                    imgs.insert(image_of(self.project, svc));
                }
            }
            for i in imgs {
                self.progress.working(Resource::Image, &i, "Removing");
                match self.client.remove_image(&i, &berth_api::query::RemoveImage::default()).await {
                    Ok(_) => self.progress.done(Resource::Image, &i, "Removed"),
                    Err(e) if e.status() == Some(404) => {}
                    Err(e) => {
                        self.progress.failed(Resource::Image, &i, "Error");
                        first.get_or_insert(e.into());
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// What `run` changes of a service for its one-off container.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The command (`run svc CMD…`).
    pub command: Option<Vec<String>>,
    /// `--entrypoint` (split as a shell would).
    pub entrypoint: Option<Vec<String>>,
    /// `-e K=V` / `-e K` (taken from the environment), over the service's.
    pub env: Vec<(String, Option<String>)>,
    /// `-l K=V`.
    pub labels: Vec<(String, String)>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-v` binds (`src:dst[:mode]`; a relative source is taken against the project dir).
    pub volumes: Vec<String>,
    /// `-p` publications (`[ip:]host:container[/proto]` or `container`).
    pub publish: Vec<String>,
    /// `--service-ports`: keep the service's published ports.
    pub service_ports: bool,
    /// `--use-aliases`: keep the service's network aliases.
    pub use_aliases: bool,
    /// Allocate a tty.
    pub tty: bool,
    /// Keep stdin open and attach it.
    pub interactive: bool,
    /// `--name`.
    pub name: Option<String>,
    /// `--no-deps`.
    pub no_deps: bool,
    /// When to build.
    pub build: BuildPolicy,
    /// `--pull`.
    pub pull: String,
}

impl Planner<'_> {
    /// `run`: brings up the service's dependencies (unless `no_deps`), makes sure its
    /// networks, volumes and image exist, and creates its one-off container (not started).
    /// Returns the container's id and name.
    pub async fn create_oneoff(&self, service: &str, r: &RunOptions) -> Result<(String, String), ComposeError> {
        let svc = self.svc(service)?;
        let deps: Vec<String> = if r.no_deps {
            Vec::new()
        } else {
            let all = self.ordered(&[service.to_owned()], true)?;
            all.into_iter().filter(|s| s != service).collect()
        };
        let up = UpOptions { pull: r.pull.clone(), build: r.build, start: true, ..Default::default() };
        if !deps.is_empty() {
            self.up(&UpOptions { services: deps.clone(), ..up.clone() }).await?;
        }
        let mut created = Created::default();
        let prepared = async {
            self.ensure_networks(&[svc], &mut created).await?;
            self.ensure_volumes(&mut created).await?;
            self.ensure_images(&[svc], &up).await
        }
        .await;
        let ids = match prepared {
            Ok(ids) => ids,
            Err(e) => {
                self.rollback(created).await;
                return Err(e);
            }
        };
        self.wait_dependencies(svc, &deps, None).await?;
        let mut s = svc.clone();
        if let Some(c) = &r.command {
            s.command = Some(c.clone());
        }
        if let Some(e) = &r.entrypoint {
            s.entrypoint = Some(e.clone());
        }
        for (k, v) in &r.env {
            s.environment.insert(k.clone(), v.clone());
        }
        for (k, v) in &r.labels {
            s.labels.insert(k.clone(), v.clone());
        }
        if r.user.is_some() {
            s.user = r.user.clone();
        }
        if r.workdir.is_some() {
            s.working_dir = r.workdir.clone();
        }
        if !r.service_ports {
            s.ports.clear();
        }
        s.tty = Some(r.tty);
        s.stdin_open = Some(r.interactive);
        // A one-off container never takes the service's fixed name nor restarts.
        s.container_name = None;
        s.restart = None;
        let slug = names::new_slug();
        let name = r.name.clone().unwrap_or_else(|| names::oneoff_name(&self.project.name, service, &slug));
        let inst = Instance {
            name: name.clone(),
            number: 1,
            slug: Some(slug),
            image: image_of(self.project, svc),
            image_id: ids.get(service).cloned(),
            hash: config_hash(&s),
        };
        let mut body = create_body(self.project, &s, &inst)?;
        body.attach_stdin = Some(r.interactive);
        body.stdin_once = Some(r.interactive);
        let hc = body.host_config.get_or_insert_with(Default::default);
        for v in &r.volumes {
            let bind = match v.split_once(':') {
                Some((src, rest)) if src.starts_with('.') => {
                    format!("{}:{rest}", self.project.working_dir.join(src).display())
                }
                _ => v.clone(),
            };
            hc.binds.get_or_insert_with(Vec::new).push(bind);
        }
        for p in &r.publish {
            let (spec, proto) = p.rsplit_once('/').map_or((p.as_str(), "tcp"), |(a, b)| (a, b));
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            let (target, host_port, host_ip) = match parts.as_slice() {
                [t] => (*t, "", ""),
                [t, h] => (*t, *h, ""),
                [t, h, ip] => (*t, *h, *ip),
                _ => return Err(ComposeError::Refused(format!("invalid port specification: {p:?}"))),
            };
            if target.parse::<u16>().is_err() {
                return Err(ComposeError::Refused(format!("invalid port specification: {p:?}")));
            }
            let key = format!("{target}/{proto}");
            body.exposed_ports.get_or_insert_with(Vec::new).push(key.clone());
            let binding = berth_api::models::PortBinding {
                host_ip: Some(host_ip.to_owned()),
                host_port: Some(host_port.to_owned()),
            };
            let hc = body.host_config.get_or_insert_with(Default::default);
            hc.port_bindings
                .get_or_insert_with(Default::default)
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(binding);
        }
        if r.use_aliases
            && let Some(eps) = body.networking_config.as_mut().and_then(|n| n.endpoints_config.as_mut())
        {
            for ep in eps.values_mut() {
                let mut a = vec![svc.name.clone()];
                if let Some((_, Some(n))) = service_networks(svc).first() {
                    a.extend(n.aliases.iter().cloned());
                }
                ep.aliases = Some(a);
            }
        }
        // No progress lines for the one-off container itself: docker compose creates it
        // outside its progress display, so `run` shows only its dependencies' steps.
        let id = self.create_with_body(&s, &inst, &body).await?;
        Ok((id, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn existing(service: &str) -> Existing {
        Existing {
            id: format!("id-{service}"),
            name: format!("p-{service}-1"),
            service: service.to_owned(),
            number: 1,
            oneoff: false,
            state: "running".into(),
            status: String::new(),
            hash: String::new(),
            labels: BTreeMap::new(),
            summary: Default::default(),
        }
    }

    #[test]
    fn dependants_stop_first_independents_together() {
        let yaml = "name: p\nservices:\n  db: {image: x}\n  cache: {image: x}\n  web:\n    image: x\n    depends_on: {db: {condition: service_started}}\n  proxy:\n    image: x\n    depends_on: {web: {condition: service_started}}\n";
        let mut project: Project = serde_norway::from_str(yaml).unwrap();
        for (k, s) in project.services.iter_mut() {
            s.name = k.clone();
        }
        let client = Client::new("unix:///nonexistent.sock").unwrap();
        let p = Planner {
            client: &client,
            project: &project,
            progress: &super::super::progress::Quiet,
            creds: &super::super::images::Anonymous,
        };
        let all: Vec<Existing> = ["db", "cache", "web", "proxy"].iter().map(|s| existing(s)).collect();
        let refs: Vec<&Existing> = all.iter().collect();
        let waves: Vec<Vec<&str>> =
            p.stop_waves(&refs).iter().map(|w| w.iter().map(|c| c.service.as_str()).collect()).collect();
        assert_eq!(waves, vec![vec!["cache", "proxy"], vec!["web"], vec!["db"]]);
    }
}
