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
        service.profiles.is_empty() || self.profiles.iter().any(|p| p == "*" || service.profiles.contains(p))
    }

    /// The services enabled by the active profiles, in file order.
    pub fn active_services(&self) -> Vec<&Service> {
        self.services.values().filter(|s| self.is_active(s)).collect()
    }

    /// Start order (each service after the services it needs): of `selected`, or of every
    /// active service when `selected` is empty; with `with_deps`, the services they need
    /// (transitively) are added even when their profiles are not active, as `docker compose
    /// up SERVICE` does. A service needs those named in `depends_on`, `links`,
    /// `network_mode: service:X` and `volumes_from: [service:X]`. Ties keep file order.
    /// Errors: an unknown selected service, a need on an unknown service, or a cycle
    /// (`dependency cycle detected: a -> b -> a`).
    pub fn dependency_order(&self, selected: &[String], with_deps: bool) -> Result<Vec<&str>, ComposeError> {
        let mut wanted: BTreeSet<&str> = BTreeSet::new();
        let mut stack: Vec<&str> = Vec::new();
        if selected.is_empty() {
            stack.extend(self.active_services().iter().map(|s| s.name.as_str()));
        } else {
            for name in selected {
                let (key, _) = self
                    .services
                    .get_key_value(name.as_str())
                    .ok_or_else(|| ComposeError::NoSuchService { name: name.clone() })?;
                stack.push(key.as_str());
            }
        }
        while let Some(name) = stack.pop() {
            if !wanted.insert(name) || !with_deps {
                continue;
            }
            for dep in self.needs(name)? {
                stack.push(dep);
            }
        }
        self.check_cycles()?;

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

    /// The services `name` needs, in file order of its declarations, as keys of
    /// `self.services`. A `depends_on` entry with `required: false` on a missing service is
    /// skipped, as compose does.
    pub fn needs(&self, name: &str) -> Result<Vec<&str>, ComposeError> {
        let Some(svc) = self.services.get(name) else {
            return Err(ComposeError::NoSuchService { name: name.to_string() });
        };
        let mut out: Vec<&str> = Vec::new();
        let mut push = |dep: &str, required: bool| -> Result<(), ComposeError> {
            match self.services.get_key_value(dep) {
                Some((key, _)) => {
                    if !out.contains(&key.as_str()) {
                        out.push(key.as_str());
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
        if let Some(dep) = svc.network_mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
            push(dep, true)?;
        }
        for from in &svc.volumes_from {
            if let Some(rest) = from.strip_prefix("service:") {
                push(rest.split(':').next().unwrap_or(rest), true)?;
            }
        }
        Ok(out)
    }

    /// Fails on the first dependency cycle, searching from service names in sorted order
    /// (so the message is stable), with compose's wording.
    pub fn check_cycles(&self) -> Result<(), ComposeError> {
        let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for name in self.services.keys() {
            edges.insert(name.as_str(), self.needs(name)?.into_iter().collect());
        }
        let mut cleared: BTreeSet<&str> = BTreeSet::new();
        for start in edges.keys() {
            let mut path = vec![*start];
            search_cycle(&edges, &mut path, &mut cleared)?;
        }
        Ok(())
    }

    /// The `config` output: the active services and what they use, as YAML. A literal `$`
    /// in a value is printed `$$`, as compose prints it, so that the output loads again
    /// to the same project.
    pub fn to_yaml(&self) -> Result<String, ComposeError> {
        let mut shown = self.clone();
        shown.services.retain(|_, s| self.is_active(s));
        let mut value = serde_norway::to_value(&shown).map_err(|source| ComposeError::Print { source })?;
        escape_dollars(&mut value);
        serde_norway::to_string(&value).map_err(|source| ComposeError::Print { source })
    }
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
