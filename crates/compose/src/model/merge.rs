//! Merging normalised compose trees, as the Compose Specification's merge section says:
//! mappings by key, sequences appended (duplicates dropped), scalars replaced;
//! `command`, `entrypoint` and `healthcheck.test` replaced whole; `ports` merged by
//! {host_ip, target, published, protocol}, `volumes`, `secrets`, `configs` and `devices`
//! by target; `logging` replaced when the driver changes; `!reset` drops what came
//! before and `!override` replaces it. The same rules serve `-f` files and `extends`.

use serde_norway::{Mapping, Value};

use crate::model::source::{KeyPath, Seg, TagKind};

/// Merges `over` into `base`; `tags` are the `!reset` / `!override` tags of the file
/// `over` comes from, by path from `path`'s root.
pub fn merge(base: &mut Value, over: Value, path: &mut KeyPath, tags: &[(KeyPath, TagKind)]) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => merge_map(b, o, path, tags),
        (b, Value::Null) if !b.is_null() => {}
        (b, o) => *b = o,
    }
}

fn tag_at(path: &[Seg], tags: &[(KeyPath, TagKind)]) -> Option<TagKind> {
    tags.iter().find(|(p, _)| p == path).map(|(_, k)| *k)
}

/// Key names of the path with list indices as "[]".
fn shape(path: &[Seg]) -> Vec<&str> {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => k.as_str(),
            Seg::Index(_) => "[]",
        })
        .collect()
}

fn merge_map(b: &mut Mapping, o: Mapping, path: &mut KeyPath, tags: &[(KeyPath, TagKind)]) {
    for (k, v) in o {
        let name = k.as_str().unwrap_or_default().to_string();
        path.push(Seg::Key(name));
        match tag_at(path, tags) {
            Some(TagKind::Reset) => {
                b.remove(&k);
            }
            Some(TagKind::Override) => {
                b.insert(k, v);
            }
            None => match b.get_mut(&k) {
                None => {
                    b.insert(k, v);
                }
                Some(existing) => merge_value(existing, v, path, tags),
            },
        }
        path.pop();
    }
}

fn merge_value(existing: &mut Value, v: Value, path: &mut KeyPath, tags: &[(KeyPath, TagKind)]) {
    let s = shape(path);
    match s.as_slice() {
        ["services", _, "command" | "entrypoint"] | ["services", _, "healthcheck", "test"] => {
            *existing = v;
            return;
        }
        ["services", _, "logging"] => {
            let driver = |x: &Value| x.get("driver").cloned();
            if let (Some(a), Some(b)) = (driver(existing), driver(&v)) {
                if a != b {
                    *existing = v;
                    return;
                }
            }
        }
        _ => {}
    }
    match (existing, v) {
        (Value::Sequence(b), Value::Sequence(o)) => {
            let key: Option<fn(&Value) -> Value> = match s.as_slice() {
                ["services", _, "ports"] => Some(|p: &Value| {
                    Value::Sequence(
                        ["host_ip", "target", "published", "protocol"]
                            .iter()
                            .map(|k| p.get(*k).cloned().unwrap_or(Value::Null))
                            .collect(),
                    )
                }),
                ["services", _, "volumes" | "devices"] => {
                    Some(|p: &Value| p.get("target").or_else(|| p.get("source")).cloned().unwrap_or(Value::Null))
                }
                ["services", _, "secrets"] | ["services", _, "build", "secrets"] => Some(|p: &Value| {
                    p.get("target").cloned().unwrap_or_else(|| {
                        Value::String(format!(
                            "/run/secrets/{}",
                            p.get("source").and_then(Value::as_str).unwrap_or_default()
                        ))
                    })
                }),
                ["services", _, "configs"] => Some(|p: &Value| {
                    p.get("target").cloned().unwrap_or_else(|| {
                        Value::String(format!("/{}", p.get("source").and_then(Value::as_str).unwrap_or_default()))
                    })
                }),
                _ => None,
            };
            match key {
                Some(key) => {
                    for item in o {
                        let k = key(&item);
                        match b.iter_mut().find(|x| key(x) == k) {
                            Some(slot) => {
                                let mut p = path.clone();
                                merge(slot, item, &mut p, &[]);
                            }
                            None => b.push(item),
                        }
                    }
                }
                None => {
                    for item in o {
                        if !b.contains(&item) {
                            b.push(item);
                        }
                    }
                }
            }
        }
        (Value::Mapping(b), Value::Mapping(o)) => merge_map(b, o, path, tags),
        (b, Value::Null) if !b.is_null() => {}
        (b, o) => *b = o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::source::keys;

    fn y(s: &str) -> Value {
        serde_norway::from_str(s).unwrap()
    }

    fn m(base: &str, over: &str, tags: &[(KeyPath, TagKind)]) -> Value {
        let mut b = y(base);
        merge(&mut b, y(over), &mut Vec::new(), tags);
        b
    }

    // The Compose Specification's merge examples, one by one (in normalised form).
    #[test]
    fn mapping_and_sequence() {
        assert_eq!(
            m("services: {foo: {key1: value1, key2: value2}}", "services: {foo: {key2: VALUE, key3: value3}}", &[]),
            y("services: {foo: {key1: value1, key2: VALUE, key3: value3}}")
        );
        assert_eq!(
            m("services: {foo: {dns: [1.1.1.1]}}", "services: {foo: {dns: [8.8.8.8, 1.1.1.1]}}", &[]),
            y("services: {foo: {dns: [1.1.1.1, 8.8.8.8]}}")
        );
    }

    #[test]
    fn commands_replace() {
        assert_eq!(
            m("services: {foo: {command: [echo, foo]}}", "services: {foo: {command: [echo, bar]}}", &[]),
            y("services: {foo: {command: [echo, bar]}}")
        );
        assert_eq!(
            m(
                "services: {foo: {healthcheck: {test: [CMD, a], retries: 3}}}",
                "services: {foo: {healthcheck: {test: [CMD, b]}}}",
                &[]
            ),
            y("services: {foo: {healthcheck: {test: [CMD, b], retries: 3}}}")
        );
    }

    #[test]
    fn unique_resources() {
        assert_eq!(
            m(
                "services: {foo: {volumes: [{type: volume, source: foo, target: /work}, {type: volume, target: /other}]}}",
                "services: {foo: {volumes: [{type: volume, source: bar, target: /work}]}}",
                &[]
            ),
            y(
                "services: {foo: {volumes: [{type: volume, source: bar, target: /work}, {type: volume, target: /other}]}}"
            )
        );
        assert_eq!(
            m(
                "services: {foo: {ports: [{target: 80, published: '8080', protocol: tcp, mode: ingress}]}}",
                "services: {foo: {ports: [{target: 80, published: '8080', protocol: tcp, mode: host}, {target: 80, published: '8081', protocol: tcp}]}}",
                &[]
            ),
            y(
                "services: {foo: {ports: [{target: 80, published: '8080', protocol: tcp, mode: host}, {target: 80, published: '8081', protocol: tcp}]}}"
            )
        );
        assert_eq!(
            m(
                "services: {foo: {secrets: [{source: a}]}}",
                "services: {foo: {secrets: [{source: a, mode: 256}, {source: b}]}}",
                &[]
            ),
            y("services: {foo: {secrets: [{source: a, mode: 256}, {source: b}]}}")
        );
    }

    #[test]
    fn reset_and_override() {
        let base = "services: {app: {image: myapp, ports: [{target: 80, published: '8080'}], environment: {FOO: BAR, KEEP: x}}}";
        let tags = vec![
            (keys(&["services", "app", "ports"]), TagKind::Reset),
            (keys(&["services", "app", "environment", "FOO"]), TagKind::Reset),
        ];
        assert_eq!(
            m(base, "services: {app: {image: myapp, ports: [], environment: {FOO: null}}}", &tags),
            y("services: {app: {image: myapp, environment: {KEEP: x}}}")
        );
        let tags = vec![(keys(&["services", "app", "ports"]), TagKind::Override)];
        assert_eq!(
            m(base, "services: {app: {ports: [{target: 443, published: '8443'}]}}", &tags),
            y(
                "services: {app: {image: myapp, ports: [{target: 443, published: '8443'}], environment: {FOO: BAR, KEEP: x}}}"
            )
        );
    }

    #[test]
    fn logging_driver_change_replaces() {
        assert_eq!(
            m(
                "services: {a: {logging: {driver: json-file, options: {max-size: 1m}}}}",
                "services: {a: {logging: {driver: syslog}}}",
                &[]
            ),
            y("services: {a: {logging: {driver: syslog}}}")
        );
        assert_eq!(
            m(
                "services: {a: {logging: {driver: json-file, options: {max-size: 1m}}}}",
                "services: {a: {logging: {options: {max-file: '2'}}}}",
                &[]
            ),
            y("services: {a: {logging: {driver: json-file, options: {max-size: 1m, max-file: '2'}}}}")
        );
    }
}
