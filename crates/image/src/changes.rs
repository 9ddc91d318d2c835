//! `docker import --change` / `commit --change`: Dockerfile instructions (CMD, ENTRYPOINT,
//! ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL) applied to an image config.

use std::collections::HashMap;

use oci_spec::image::Config;

use crate::error::Error;

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

/// Splits on unquoted whitespace, removing quotes and backslash escapes.
fn words(s: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => cur.push(c),
            (_, '\\') => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(invalid(format!("unmatched quote in: {s}")));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn json_or_shell(args: &str) -> Vec<String> {
    if let Ok(v) = serde_json::from_str::<Vec<String>>(args) {
        return v;
    }
    vec!["/bin/sh".into(), "-c".into(), args.to_owned()]
}

fn key_values(instr: &str, args: &str) -> Result<Vec<(String, String)>, Error> {
    let ws = words(args)?;
    if ws.is_empty() {
        return Err(invalid(format!("{instr} requires at least one argument")));
    }
    if !ws[0].contains('=') {
        // Legacy `ENV key value with spaces` form.
        let (k, v) = args
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| invalid(format!("{instr} must have two arguments")))?;
        return Ok(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(invalid(format!("{instr} names can not be blank"))),
        })
        .collect()
}

fn expose(args: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for w in words(args)? {
        let (ports, proto) = w.split_once('/').unwrap_or((&w, "tcp"));
        let proto = proto.to_ascii_lowercase();
        let parse = |p: &str| p.parse::<u16>().map_err(|_| invalid(format!("invalid containerPort: {p}")));
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(ports)?, parse(ports)?),
        };
        if hi < lo {
            return Err(invalid(format!("invalid port range: {ports}")));
        }
        for p in lo..=hi {
            out.push(format!("{p}/{proto}"));
        }
    }
    Ok(out)
}

/// Applies each change to `cfg`, in order.
pub fn apply_changes(cfg: &mut Config, changes: &[String]) -> Result<(), Error> {
    for change in changes {
        let change = change.trim();
        if change.is_empty() {
            continue;
        }
        let (instr, args) = change.split_once(char::is_whitespace).unwrap_or((change, ""));
        let args = args.trim();
        let upper = instr.to_ascii_uppercase();
        match upper.as_str() {
            "CMD" => {
                cfg.set_cmd(Some(json_or_shell(args)));
            }
            "ENTRYPOINT" => {
                // Like a Dockerfile, a new ENTRYPOINT drops an inherited CMD.
                cfg.set_entrypoint(Some(json_or_shell(args)));
            }
            "ENV" => {
                let mut env = cfg.env().clone().unwrap_or_default();
                for (k, v) in key_values("ENV", args)? {
                    let entry = format!("{k}={v}");
                    match env.iter_mut().find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str())) {
                        Some(slot) => *slot = entry,
                        None => env.push(entry),
                    }
                }
                cfg.set_env(Some(env));
            }
            "LABEL" => {
                let mut labels: HashMap<String, String> = cfg.labels().clone().unwrap_or_default();
                for (k, v) in key_values("LABEL", args)? {
                    labels.insert(k, v);
                }
                cfg.set_labels(Some(labels));
            }
            "EXPOSE" => {
                let mut ports = cfg.exposed_ports().clone().unwrap_or_default();
                for p in expose(args)? {
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
                cfg.set_exposed_ports(Some(ports));
            }
            "VOLUME" => {
                let vols = match serde_json::from_str::<Vec<String>>(args) {
                    Ok(v) => v,
                    Err(_) => words(args)?,
                };
                let mut all = cfg.volumes().clone().unwrap_or_default();
                for v in vols {
                    if v.is_empty() {
                        return Err(invalid("VOLUME specified can not be an empty string".into()));
                    }
                    if !all.contains(&v) {
                        all.push(v);
                    }
                }
                cfg.set_volumes(Some(all));
            }
            "USER" => {
                if args.is_empty() {
                    return Err(invalid("USER requires exactly one argument".into()));
                }
                cfg.set_user(Some(args.to_owned()));
            }
            "WORKDIR" => {
                if args.is_empty() {
                    return Err(invalid("WORKDIR requires exactly one argument".into()));
                }
                let wd = if args.starts_with('/') {
                    args.to_owned()
                } else {
                    let base = cfg.working_dir().clone().unwrap_or_else(|| "/".into());
                    format!("{}/{}", base.trim_end_matches('/'), args)
                };
                cfg.set_working_dir(Some(wd));
            }
            "STOPSIGNAL" => {
                if args.is_empty() {
                    return Err(invalid("STOPSIGNAL requires exactly one argument".into()));
                }
                cfg.set_stop_signal(Some(args.to_owned()));
            }
            _ => return Err(invalid(format!("{instr} is not a valid change command"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_docker_changes() {
        let mut c = Config::default();
        let ch: Vec<String> = [
            "CMD echo hi",
            r#"ENTRYPOINT ["/bin/app", "--x"]"#,
            "ENV A=1 B=\"two words\"",
            "ENV C three four",
            "ENV A=9",
            "EXPOSE 80 53/udp 8000-8001",
            "LABEL k=v other=\"x y\"",
            "USER nobody",
            "WORKDIR /srv",
            "WORKDIR app",
            "VOLUME [\"/data\"]",
            "STOPSIGNAL SIGTERM",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &ch).unwrap();
        assert_eq!(c.cmd().clone().unwrap(), vec!["/bin/sh", "-c", "echo hi"]);
        assert_eq!(c.entrypoint().clone().unwrap(), vec!["/bin/app", "--x"]);
        assert_eq!(c.env().clone().unwrap(), vec!["A=9", "B=two words", "C=three four"]);
        assert_eq!(c.exposed_ports().clone().unwrap(), vec!["80/tcp", "53/udp", "8000/tcp", "8001/tcp"]);
        assert_eq!(c.labels().clone().unwrap()["other"], "x y");
        assert_eq!(c.user().as_deref(), Some("nobody"));
        assert_eq!(c.working_dir().as_deref(), Some("/srv/app"));
        assert_eq!(c.volumes().clone().unwrap(), vec!["/data"]);
        assert_eq!(c.stop_signal().as_deref(), Some("SIGTERM"));
        let e = apply_changes(&mut c, &["RUN ls".to_string()]).unwrap_err();
        assert_eq!(e.to_string(), "RUN is not a valid change command");
    }
}
