//! What a loaded project answers: its services by name, which are active under the chosen
//! profiles, the order to start them in, and its `config` output.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::ComposeError;
use crate::model::types::{Project, Service};

impl Project {
    /// The service with this name, active or not.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.get(name)
    }

    /// Whether a service is enabled by the active profiles: a service without profiles
    /// always is; `*` enables every profile.
    pub fn is_active(&self, service: &Service) -> bool {
        active_with(service, &self.profiles)
    }

    /// The services enabled by the active profiles, in file order.
    pub fn active_services(&self) -> Vec<&Service> {
        self.services.values().filter(|s| self.is_active(s)).collect()
    }

    /// Start order (each service after the services it needs): of `selected`, or of every
    /// active service when `selected` is empty. Naming a service enables its profiles (the
    /// Compose Specification's profiles section); with `with_deps` the services they need
    /// are added, transitively, and each must be enabled by the profiles then active, else
    /// `service "a" depends on undefined service "b"` (a `depends_on` entry with
    /// `required: false` is skipped instead). A service needs those named in `depends_on`,
    /// `links`, `network_mode`/`ipc`/`pid`/`uts`/`cgroup: service:X` and `volumes_from`. Ties keep file
    /// order. Other errors: an unknown selected service, a cycle (`dependency cycle
    /// detected: a -> b -> a`).
    pub fn dependency_order(&self, selected: &[String], with_deps: bool) -> Result<Vec<&str>, ComposeError> {
        let mut profiles = self.profiles.clone();
        let mut stack: Vec<&str> = Vec::new();
        if selected.is_empty() {
            stack.extend(self.active_services().iter().map(|s| s.name.as_str()));
        } else {
            for name in selected {
                let (key, svc) = self
                    .services
                    .get_key_value(name.as_str())
                    .ok_or_else(|| ComposeError::NoSuchService { name: name.clone() })?;
                stack.push(key.as_str());
                profiles.extend(svc.profiles.iter().cloned());
            }
        }
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        while let Some(name) = stack.pop() {
            if !wanted.insert(name) || !with_deps {
                continue;
            }
            for (dep, required) in self.needs_detailed(name)? {
                let enabled = self.services.get(dep).is_some_and(|s| active_with(s, &profiles));
                if enabled {
                    stack.push(dep);
                } else if required {
                    return Err(ComposeError::UndefinedDependency {
                        service: name.to_string(),
                        dependency: dep.to_string(),
                    });
                }
            }
        }
        self.check_cycles_among(&wanted)?;

        // Depth-first post-order over file order: dependencies first, ties in file order.
        let mut order: Vec<&str> = Vec::with_capacity(wanted.len());
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for (name, _) in &self.services {
            if wanted.contains(name.as_str()) {
                self.visit(name, &wanted, &mut done, &mut order)?;
            }
        }
        Ok(order)
    }

    fn visit<'a>(
        &'a self,
        name: &'a str,
        wanted: &BTreeSet<&'a str>,
        done: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
    ) -> Result<(), ComposeError> {
        if !done.insert(name) {
            return Ok(());
        }
        for dep in self.needs(name)? {
            if wanted.contains(dep) {
                self.visit(dep, wanted, done, order)?;
            }
        }
        order.push(name);
        Ok(())
    }

    /// The services `name` needs, in the order it declares them, as keys of
    /// `self.services`. A `depends_on` entry with `required: false` on a missing service is
    /// skipped, as compose does.
    pub fn needs(&self, name: &str) -> Result<Vec<&str>, ComposeError> {
        Ok(self.needs_detailed(name)?.into_iter().map(|(d, _)| d).collect())
    }

    /// `needs`, each with whether it is required (false only for `depends_on` with
    /// `required: false`).
    pub fn needs_detailed(&self, name: &str) -> Result<Vec<(&str, bool)>, ComposeError> {
        let Some(svc) = self.services.get(name) else {
            return Err(ComposeError::NoSuchService { name: name.to_string() });
        };
        let mut out: Vec<(&str, bool)> = Vec::new();
        let mut push = |dep: &str, required: bool| -> Result<(), ComposeError> {
            match self.services.get_key_value(dep) {
                Some((key, _)) => {
                    match out.iter_mut().find(|(d, _)| *d == key.as_str()) {
                        Some(slot) => slot.1 |= required,
                        None => out.push((key.as_str(), required)),
                    }
                    Ok(())
                }
                None if !required => Ok(()),
                None => {
                    Err(ComposeError::UndefinedDependency { service: name.to_string(), dependency: dep.to_string() })
                }
            }
        };
        for (dep, d) in &svc.depends_on {
            push(dep, d.required)?;
        }
        for link in &svc.links {
            push(link.split(':').next().unwrap_or(link), true)?;
        }
        for ns in [&svc.network_mode, &svc.ipc, &svc.pid, &svc.uts, &svc.cgroup] {
            if let Some(dep) = ns.as_deref().and_then(|m| m.strip_prefix("service:")) {
                push(dep, true)?;
            }
        }
        // `name[:ro]` is a service; `container:name[:rw]` is not.
        for from in &svc.volumes_from {
            if !from.starts_with("container:") {
                push(from.split(':').next().unwrap_or(from), true)?;
            }
        }
        Ok(out)
    }

    /// What compose checks of the enabled services once loaded: everything they need is
    /// defined and enabled (unless `required: false`), and they need each other in no
    /// circle.
    pub fn check_dependencies(&self) -> Result<(), ComposeError> {
        let active: BTreeSet<&str> = self.active_services().iter().map(|s| s.name.as_str()).collect();
        for name in &active {
            for (dep, required) in self.needs_detailed(name)? {
                if required && !active.contains(dep) {
                    return Err(ComposeError::UndefinedDependency {
                        service: name.to_string(),
                        dependency: dep.to_string(),
                    });
                }
            }
        }
        self.check_cycles_among(&active)
    }

    /// Fails on the first dependency cycle among every service, searching from service
    /// names in sorted order (so the message is stable), with compose's wording.
    pub fn check_cycles(&self) -> Result<(), ComposeError> {
        let all: BTreeSet<&str> = self.services.keys().map(String::as_str).collect();
        self.check_cycles_among(&all)
    }

    fn check_cycles_among(&self, among: &BTreeSet<&str>) -> Result<(), ComposeError> {
        let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for name in among {
            let deps = self.needs(name)?.into_iter().filter(|d| among.contains(d)).collect();
            edges.insert(name, deps);
        }
        let mut cleared: BTreeSet<&str> = BTreeSet::new();
        for start in edges.keys() {
            let mut path = vec![*start];
            search_cycle(&edges, &mut path, &mut cleared)?;
        }
        Ok(())
    }

    /// The project with only the networks, volumes, secrets and configs that its services
    /// use (what compose prints and creates).
    pub fn without_unused_resources(&self) -> Project {
        let mut p = self.clone();
        let mut networks = BTreeSet::new();
        let mut volumes = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        let mut configs = BTreeSet::new();
        for s in self.services.values() {
            networks.extend(s.networks.keys().cloned());
            volumes.extend(
                s.volumes
                    .iter()
                    .filter(|v| v.kind == crate::model::types::VolumeType::Volume)
                    .filter_map(|v| v.source.clone()),
            );
            secrets.extend(s.secrets.iter().map(|r| r.source.clone()));
            secrets.extend(s.build.iter().flat_map(|b| b.secrets.iter().map(|r| r.source.clone())));
            configs.extend(s.configs.iter().map(|r| r.source.clone()));
        }
        p.networks.retain(|k, _| networks.contains(k));
        p.volumes.retain(|k, _| volumes.contains(k));
        p.secrets.retain(|k, _| secrets.contains(k));
        p.configs.retain(|k, _| configs.contains(k));
        p
    }

    /// The `config` output: the active services and what they use, as YAML. A literal `$`
    /// in a value is printed `$$`, as compose prints it, so that the output loads again
    /// to the same project.
    pub fn to_yaml(&self) -> Result<String, ComposeError> {
        let mut shown = self.clone();
        shown.services.retain(|_, s| self.is_active(s));
        let shown = shown.without_unused_resources();
        let mut value = serde_norway::to_value(&shown).map_err(|source| ComposeError::Print { source })?;
        escape_dollars(&mut value);
        serde_norway::to_string(&value).map_err(|source| ComposeError::Print { source })
    }
}

/// Whether `service` is enabled by `profiles`.
fn active_with(service: &Service, profiles: &[String]) -> bool {
    service.profiles.is_empty() || profiles.iter().any(|p| p == "*" || service.profiles.contains(p))
}

/// `$` → `$$` in every string value (keys are never interpolated, so stay as they are).
fn escape_dollars(v: &mut serde_norway::Value) {
    use serde_norway::Value;
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Sequence(items) => items.iter_mut().for_each(escape_dollars),
        Value::Mapping(m) => m.iter_mut().for_each(|(_, v)| escape_dollars(v)),
        Value::Tagged(t) => escape_dollars(&mut t.value),
        _ => {}
    }
}

fn search_cycle<'a>(
    edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
    path: &mut Vec<&'a str>,
    cleared: &mut BTreeSet<&'a str>,
) -> Result<(), ComposeError> {
    let Some(&last) = path.last() else { return Ok(()) };
    if cleared.contains(last) {
        return Ok(());
    }
    for &child in edges.get(last).into_iter().flatten() {
        if let Some(i) = path.iter().position(|p| *p == child) {
            let mut cycle: Vec<String> = path[i..].iter().map(|s| s.to_string()).collect();
            cycle.push(child.to_string());
            return Err(ComposeError::DependencyCycle { cycle });
        }
        path.push(child);
        search_cycle(edges, path, cleared)?;
        path.pop();
    }
    cleared.insert(last);
    Ok(())
}
