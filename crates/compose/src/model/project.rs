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
        let text = serde_norway::to_string(&self.config_value()?).map_err(|source| ComposeError::Print { source })?;
        Ok(quote_yaml11_words(&text))
    }

    /// The `config --format json` output: the same model as `to_yaml` (`$` printed `$$`,
    /// as compose does), as indented JSON. Compose's JSON also carries empty
    /// `ipam`/`placement` objects and `"entrypoint": null`; these carry no meaning and are
    /// left out here.
    pub fn to_json(&self) -> Result<String, ComposeError> {
        let json = crate::model::schema::to_json(&self.config_value()?);
        // A JSON value always prints; the fallback is unreachable in practice.
        Ok(serde_json::to_string_pretty(&json).unwrap_or_default())
    }

    /// The model `config` prints, as a YAML value.
    fn config_value(&self) -> Result<serde_norway::Value, ComposeError> {
        let mut shown = self.clone();
        shown.services.retain(|_, s| self.is_active(s));
        let shown = shown.without_unused_resources();
        let mut value = serde_norway::to_value(&shown).map_err(|source| ComposeError::Print { source })?;
        escape_dollars(&mut value);
        Ok(value)
    }
}

impl Service {
    /// How many containers the service runs: `deploy.replicas`, else `scale`, else 1
    /// (the loader has checked that the two agree when both are set).
    pub fn replicas(&self) -> u32 {
        self.deploy.as_ref().and_then(|d| d.replicas).or(self.scale).unwrap_or(1)
    }
}

/// Whether `service` is enabled by `profiles`.
fn active_with(service: &Service, profiles: &[String]) -> bool {
    service.profiles.is_empty() || profiles.iter().any(|p| p == "*" || service.profiles.contains(p))
}

/// Words a YAML 1.1 reader (PyYAML, docker-compose 1.29) takes for booleans.
const YAML11_BOOLS: [&str; 16] =
    ["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off", "OFF"];

/// Double-quotes the plain scalars that YAML 1.2 reads as strings but YAML 1.1 as
/// booleans (`restart: no`), as docker compose prints them. serde_norway writes YAML 1.2
/// and has no switch for this, so the printed text is patched at the positions saphyr's
/// parser reports.
fn quote_yaml11_words(text: &str) -> String {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut parser = saphyr_parser::Parser::new_from_str(text);
    while let Some(Ok((event, span))) = parser.next() {
        if let saphyr_parser::Event::Scalar(v, saphyr_parser::ScalarStyle::Plain, ..) = event {
            if YAML11_BOOLS.contains(&v.as_ref()) {
                spans.push((span.start.index(), span.end.index()));
            }
        }
    }
    if spans.is_empty() {
        return text.to_string();
    }
    // saphyr counts characters; map them to byte offsets.
    let offsets: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
    let mut out = String::with_capacity(text.len() + 2 * spans.len());
    let mut last = 0;
    for (start, end) in spans {
        let (Some(&a), Some(&b)) = (offsets.get(start), offsets.get(end)) else { continue };
        out.push_str(&text[last..a]);
        out.push('"');
        out.push_str(&text[a..b]);
        out.push('"');
        last = b;
    }
    out.push_str(&text[last..]);
    out
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

#[cfg(test)]
mod tests {
    use super::quote_yaml11_words;

    #[test]
    fn yaml11_booleans_are_quoted() {
        let text = "restart: no\nlabels:\n  'on': yes\n  x: 'no'\n  y: nothing\nlist:\n- off\n- é\n- N\n";
        assert_eq!(
            quote_yaml11_words(text),
            "restart: \"no\"\nlabels:\n  'on': \"yes\"\n  x: 'no'\n  \"y\": nothing\nlist:\n- \"off\"\n- é\n- \"N\"\n"
        );
    }
}
