//! Parsers for the value syntaxes of `run`/`create` flags, written to Docker's rules:
//! volumes, `--mount` csv, published ports, env files, byte sizes, restart policies.

use std::collections::HashMap;
use std::path::Path;

use berth_api::models::{
    Mount, MountBindOptions, MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    PortBinding, PortMap,
};

use crate::CliError;

fn err<T>(msg: impl Into<String>) -> Result<T, CliError> {
    Err(CliError::Opt(msg.into()))
}

/// Makes `p` absolute against `cwd`, removing `.` and `..` components lexically as Go's
/// `filepath.Abs` does.
pub fn absolutize(p: &str, cwd: &Path) -> String {
    let joined = if p.starts_with('/') { Path::new(p).to_path_buf() } else { cwd.join(p) };
    let mut parts: Vec<String> = Vec::new();
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    format!("/{}", parts.join("/"))
}

const VALID_MODES: &[&str] =
    &["ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy"];

/// What one `-v` asks for, as the docker CLI sorts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeArg {
    /// A `Binds` entry: `/host:/dst[:mode]` (relative host paths made absolute) or
    /// `name:/dst[:mode]` for a named volume.
    Bind(String),
    /// `-v /dst`: an anonymous volume, sent in the config's `Volumes`.
    Anonymous(String),
}

/// Parses `-v src:dst[:mode]` or `-v dst`; the daemon checks volume names.
pub fn parse_volume(spec: &str, cwd: &Path) -> Result<VolumeArg, CliError> {
    let invalid = || CliError::Opt(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => {
            if dst.is_empty() {
                return Err(invalid());
            }
            return Ok(VolumeArg::Anonymous((*dst).to_owned()));
        }
        [src, dst] => (*src, *dst, None),
        [src, dst, mode] => (*src, *dst, Some(*mode)),
        _ => return Err(invalid()),
    };
    if src.is_empty() || dst.is_empty() {
        return Err(invalid());
    }
    if !dst.starts_with('/') {
        let typ = if src.starts_with(['/', '.']) { "bind" } else { "volume" };
        return err(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"{typ}\": invalid mount path: '{dst}' mount path must be absolute"
        ));
    }
    if let Some(m) = mode {
        let mut rw = 0;
        for part in m.split(',') {
            if !VALID_MODES.contains(&part) {
                return err(format!("invalid volume specification: '{spec}': invalid mode: {m}"));
            }
            if part == "ro" || part == "rw" {
                rw += 1;
            }
        }
        if rw > 1 {
            return err(format!("invalid volume specification: '{spec}': invalid mode: {m}"));
        }
    }
    let src = if src.starts_with('.') { absolutize(src, cwd) } else { src.to_owned() };
    Ok(VolumeArg::Bind(match mode {
        Some(m) => format!("{src}:{dst}:{m}"),
        None => format!("{src}:{dst}"),
    }))
}

/// Splits a `--mount` value into its fields as the docker CLI's csv reader does: commas
/// separate fields, double quotes keep commas inside one (`"volume-opt=o=a,b"`).
fn csv_fields(spec: &str) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return err(format!(
            "invalid argument \"{spec}\" for \"--mount\" flag: parse error: extraneous or missing \" in quoted-field"
        ));
    }
    out.push(cur);
    Ok(out)
}

fn parse_bool_opt(key: &str, v: Option<&str>) -> Result<bool, CliError> {
    match v.map(str::to_ascii_lowercase).as_deref() {
        None | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(other) => err(format!("invalid value for {key}: {other}")),
    }
}

/// Parses `--mount type=bind,source=…,target=…[,readonly]` (Docker's csv syntax).
pub fn parse_mount(spec: &str, cwd: &Path) -> Result<Mount, CliError> {
    let bad = |m: &str| CliError::Opt(format!("invalid argument \"{spec}\" for \"--mount\" flag: {m}"));
    let mut typ = "volume".to_owned();
    let mut source: Option<String> = None;
    let mut target: Option<String> = None;
    let mut read_only = false;
    let mut propagation: Option<String> = None;
    let mut tmpfs_size: Option<i64> = None;
    let mut tmpfs_mode: Option<i64> = None;
    let mut nocopy: Option<bool> = None;
    let mut volume_driver: Option<String> = None;
    let mut volume_labels: HashMap<String, String> = HashMap::new();
    let mut volume_opts: HashMap<String, String> = HashMap::new();
    for field in csv_fields(spec)? {
        let field = field.as_str();
        if field.is_empty() {
            continue;
        }
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        match (k.as_str(), v) {
            ("readonly" | "ro", v) => read_only = parse_bool_opt(&k, v).map_err(|e| bad(&e.to_string()))?,
            ("type", Some(v)) => typ = v.to_owned(),
            ("source" | "src", Some(v)) => source = Some(v.to_owned()),
            ("target" | "dst" | "destination", Some(v)) => target = Some(v.to_owned()),
            ("bind-propagation", Some(v)) => propagation = Some(v.to_owned()),
            ("tmpfs-size", Some(v)) => tmpfs_size = Some(parse_bytes(v).map_err(|e| bad(&e.to_string()))?),
            ("tmpfs-mode", Some(v)) => {
                tmpfs_mode = Some(i64::from_str_radix(v, 8).map_err(|_| bad(&format!("invalid value for {k}: {v}")))?)
            }
            ("volume-nocopy", v) => nocopy = Some(parse_bool_opt(&k, v).map_err(|e| bad(&e.to_string()))?),
            ("volume-driver", Some(v)) => volume_driver = Some(v.to_owned()),
            ("volume-label", Some(v)) => {
                let (lk, lv) = v.split_once('=').unwrap_or((v, ""));
                volume_labels.insert(lk.to_owned(), lv.to_owned());
            }
            ("volume-opt", Some(v)) => {
                let Some((ok, ov)) = v.split_once('=') else {
                    return Err(bad(&format!("invalid volume-opt '{v}'")));
                };
                volume_opts.insert(ok.to_owned(), ov.to_owned());
            }
            ("consistency" | "bind-recursive", _) => {}
            (_, None) => return Err(bad(&format!("invalid field '{field}' must be a key=value pair"))),
            (_, Some(_)) => return Err(bad(&format!("unexpected key '{k}' in '{field}'"))),
        }
    }
    let Some(target) = target.filter(|t| !t.is_empty()) else {
        return Err(bad("target is required"));
    };
    let mut m = Mount { target: Some(target), read_only: Some(read_only), ..Default::default() };
    match typ.as_str() {
        "bind" => {
            let Some(src) = source.filter(|s| !s.is_empty()) else {
                return Err(bad("source is required when specifying bind mount"));
            };
            m.typ = Some(MountType::BIND);
            m.source = Some(absolutize(&src, cwd));
            if let Some(p) = propagation {
                let p = p.parse().map_err(|_| bad(&format!("invalid bind-propagation: {p}")))?;
                m.bind_options = Some(MountBindOptions { propagation: Some(p), ..Default::default() });
            }
        }
        "tmpfs" => {
            if source.is_some() {
                return Err(bad("source is not supported for tmpfs mounts"));
            }
            m.typ = Some(MountType::TMPFS);
            if tmpfs_size.is_some() || tmpfs_mode.is_some() {
                m.tmpfs_options =
                    Some(MountTmpfsOptions { size_bytes: tmpfs_size, mode: tmpfs_mode, ..Default::default() });
            }
        }
        "volume" => {
            m.typ = Some(MountType::VOLUME);
            m.source = source.filter(|s| !s.is_empty());
            if nocopy.is_some() || volume_driver.is_some() || !volume_labels.is_empty() || !volume_opts.is_empty() {
                m.volume_options = Some(MountVolumeOptions {
                    no_copy: nocopy,
                    labels: (!volume_labels.is_empty()).then_some(volume_labels),
                    driver_config: (volume_driver.is_some() || !volume_opts.is_empty()).then(|| {
                        MountVolumeOptionsDriverConfig {
                            name: volume_driver,
                            options: (!volume_opts.is_empty()).then_some(volume_opts),
                        }
                    }),
                    subpath: None,
                });
            }
        }
        other => return Err(bad(&format!("unsupported mount type: {other}"))),
    }
    Ok(m)
}

fn parse_port_range(s: &str) -> Result<(u16, u16), CliError> {
    let one = |p: &str| p.parse::<u16>().map_err(|_| CliError::Opt(format!("invalid containerPort: {s}")));
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            if b < a {
                return err(format!("invalid range specified for port: {s}"));
            }
            Ok((a, b))
        }
        None => {
            let p = one(s)?;
            Ok((p, p))
        }
    }
}

/// Parses `-p [ip:][hostPort:]containerPort[/proto]` into exposed ports and bindings.
pub fn parse_publish(spec: &str, exposed: &mut Vec<String>, bindings: &mut PortMap) -> Result<(), CliError> {
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p.to_ascii_lowercase()),
        None => (spec, "tcp".to_owned()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return err(format!("invalid proto: {proto}"));
    }
    // An IPv6 host address is bracketed: [::1]:8080:80.
    let (ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let Some((ip, after)) = r.split_once(']') else {
            return err(format!("invalid IP address: {rest}"));
        };
        let Some(after) = after.strip_prefix(':') else {
            return err(format!("invalid publish specification: {spec}"));
        };
        (ip.to_owned(), after)
    } else {
        (String::new(), rest)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match (ip.is_empty(), parts.as_slice()) {
        (true, [c]) => (String::new(), "", *c),
        (true, [h, c]) => (String::new(), *h, *c),
        (true, [i, h, c]) => (i.to_string(), *h, *c),
        (false, [h, c]) => (ip, *h, *c),
        (false, [c]) => (ip, "", *c),
        _ => return err(format!("invalid publish specification: {spec}")),
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return err(format!("no port specified: {spec}<empty>"));
    }
    let (cs, ce) = parse_port_range(container)?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_port_range(host).map_err(|_| CliError::Opt(format!("invalid hostPort: {host}")))?)
    };
    let clen = ce - cs;
    if let Some((hs, he)) = host_range {
        if he - hs != clen && clen != 0 {
            return err(format!("invalid ranges specified for container and host Ports: {container} and {host}"));
        }
    }
    for i in 0..=clen {
        let port = format!("{}/{proto}", cs + i);
        let host_port = match host_range {
            None => String::new(),
            Some((hs, he)) if clen == 0 && he != hs => format!("{hs}-{he}"),
            Some((hs, _)) => (hs + i).to_string(),
        };
        if !exposed.contains(&port) {
            exposed.push(port.clone());
        }
        let b = PortBinding { host_ip: Some(ip.clone()), host_port: Some(host_port) };
        bindings.entry(port).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(b);
    }
    Ok(())
}

/// Resolves `-e KEY=VAL` / `-e KEY` (taken from `lookup`, skipped when unset).
pub fn resolve_env(item: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Option<String>, CliError> {
    match item.split_once('=') {
        Some(("", _)) => err(format!("invalid environment variable: {item}")),
        Some(_) => Ok(Some(item.to_owned())),
        None if item.is_empty() => err("invalid environment variable: ".to_owned()),
        None => Ok(lookup(item).map(|v| format!("{item}={v}"))),
    }
}

/// Parses an `--env-file` the way Docker does: `KEY=VAL` lines kept verbatim, `#` comments
/// and blank lines skipped, a bare `KEY` taken from the environment when set.
pub fn parse_env_file(content: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    for line in content.lines() {
        let line = line.trim_start_matches([' ', '\t']);
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n.trim_start(), Some(v)),
            None => (line.trim_end_matches(['\r']), None),
        };
        if name.is_empty() {
            return err(format!("no variable name on line '{line}'"));
        }
        if name.contains([' ', '\t', '\n', '\x0b', '\x0c', '\r']) {
            return err(format!("variable '{name}' contains whitespaces"));
        }
        match value {
            Some(v) => out.push(format!("{name}={}", v.trim_end_matches('\r'))),
            None => {
                if let Some(v) = lookup(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// Checks `--security-opt` values and replaces `seccomp=<file>` with the file's JSON,
/// compacted, as the docker CLI does: the daemon reads the profile from the request, never
/// from the client's filesystem. Unknown keys go through; the daemon refuses them.
pub fn parse_security_opts(opts: &[String], cwd: &Path) -> Result<Vec<String>, CliError> {
    let mut out = Vec::with_capacity(opts.len());
    for opt in opts {
        let (k, v) = match opt.split_once('=') {
            Some(kv) => kv,
            None if opt == "no-new-privileges" => (opt.as_str(), ""),
            None => opt.split_once(':').unwrap_or((opt.as_str(), "")),
        };
        if v.is_empty() && k != "no-new-privileges" {
            return err(format!("Invalid --security-opt: {opt:?}"));
        }
        if k == "seccomp" && v != "builtin" && v != "unconfined" {
            let path = cwd.join(v);
            let text = std::fs::read(&path)
                .map_err(|e| CliError::Opt(format!("opening seccomp profile ({v}) failed: {e}")))?;
            let json: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| CliError::Opt(format!("compacting json for seccomp profile ({v}) failed: {e}")))?;
            out.push(format!("seccomp={json}"));
        } else {
            out.push(opt.clone());
        }
    }
    Ok(out)
}

/// Takes `systempaths=unconfined` out of `--security-opt` values, as the docker CLI does:
/// it is the client's way to ask for no masked and no read-only paths, sent as empty
/// `HostConfig.MaskedPaths` and `ReadonlyPaths` (the daemon knows no such option). Returns
/// the other values and whether it was there.
pub fn take_system_paths(opts: Vec<String>) -> (Vec<String>, bool) {
    let n = opts.len();
    let kept: Vec<String> = opts.into_iter().filter(|o| o != "systempaths=unconfined").collect();
    let unconfined = kept.len() != n;
    (kept, unconfined)
}

/// Parses a byte size with binary multiples as Docker's `RAMInBytes` does: `512m`, `1g`, `1.5GiB`, `1024`.
pub fn parse_bytes(s: &str) -> Result<i64, CliError> {
    let bad = || CliError::Opt(format!("invalid size: '{s}'"));
    let t = s.trim();
    let num_end = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(num_end);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start_matches(' ').to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    Ok((n * mult) as i64)
}

/// Parses `--cpus 1.5` into nano-CPUs.
pub fn parse_cpus(s: &str) -> Result<i64, CliError> {
    let v: f64 = s.parse().map_err(|_| CliError::Opt(format!("failed to parse {s} as a rational number")))?;
    if v < 0.0 {
        return err(format!("invalid value: {s}"));
    }
    Ok((v * 1e9).round() as i64)
}

/// Parses `--restart no|always|unless-stopped|on-failure[:N]` into (name, max retries).
pub fn parse_restart(s: &str) -> Result<(String, Option<i64>), CliError> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    match (name, count) {
        ("" | "no" | "always" | "unless-stopped", None) => {
            Ok((if name.is_empty() { "no" } else { name }.to_owned(), None))
        }
        ("on-failure", None) => Ok(("on-failure".to_owned(), None)),
        ("on-failure", Some(c)) => {
            let n: i64 = c.parse().map_err(|_| {
                CliError::Opt(format!("invalid restart policy format: maximum retry count must be an integer: {c}"))
            })?;
            Ok(("on-failure".to_owned(), Some(n)))
        }
        ("no" | "always" | "unless-stopped", Some(_)) => err(format!(
            "invalid restart policy format: maximum retry count cannot be used with restart policy '{name}'"
        )),
        _ => err(format!("invalid restart policy format: unknown policy '{name}'")),
    }
}

/// Splits `KEY=VALUE` list flags (labels, sysctls); a bare key gets an empty value.
pub fn parse_kv_list(items: &[String], what: &str, need_value: bool) -> Result<HashMap<String, String>, CliError> {
    let mut m = HashMap::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                m.insert(k.to_owned(), v.to_owned());
            }
            None if !need_value && !i.is_empty() => {
                m.insert(i.clone(), String::new());
            }
            _ => {
                return err(format!("invalid argument \"{i}\" for \"{what}\" flag: {i} is not a valid key=value pair"));
            }
        }
    }
    Ok(m)
}

/// Parses `--gpus` (`all`, `N`, `device=ID[,ID]` quoted, `count=`, `driver=`,
/// `capabilities=`, `options=`) into the device request the docker CLI sends, with its
/// defaults (count 1 unless devices are named, capabilities `[[gpu]]`) and wording.
pub fn parse_gpus(value: &str) -> Result<berth_api::models::DeviceRequest, CliError> {
    let fail = |m: String| CliError::Opt(format!("invalid argument \"{value}\" for \"--gpus\" flag: {m}"));
    let count_of = |c: &str| -> Result<i64, CliError> {
        if c == "all" {
            return Ok(-1);
        }
        c.parse::<i64>().map_err(|_| {
            fail(format!("invalid count ({c}): value must be either \"all\" or an integer: invalid syntax"))
        })
    };
    // Docker reads the value as one CSV line, so `'"device=0,1"'` names two devices.
    let quote_error = |_| fail("parse error: extraneous or missing \" in quoted-field".to_owned());
    let fields = csv_fields(value).map_err(quote_error)?;
    let mut req =
        berth_api::models::DeviceRequest { driver: Some(String::new()), count: Some(0), ..Default::default() };
    let mut seen: Vec<String> = Vec::new();
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field.as_str(), None),
        };
        if seen.iter().any(|s| s == key) {
            return Err(fail(format!("gpu request key '{key}' can be specified only once")));
        }
        seen.push(key.to_owned());
        let Some(val) = val else {
            seen.push("count".to_owned());
            req.count = Some(count_of(key)?);
            continue;
        };
        match key {
            "driver" => req.driver = Some(val.to_owned()),
            "count" => req.count = Some(count_of(val)?),
            "device" => req.device_ids = Some(val.split(',').map(str::to_owned).collect()),
            "capabilities" => {
                let mut caps: Vec<String> = val.split(',').map(str::to_owned).collect();
                caps.push("gpu".to_owned());
                req.capabilities = Some(vec![caps]);
            }
            "options" => {
                let opts = csv_fields(val).map_err(quote_error)?;
                req.options = Some(
                    opts.iter()
                        .map(|o| match o.split_once('=') {
                            Some((k, v)) => (k.to_owned(), v.to_owned()),
                            None => (o.clone(), String::new()),
                        })
                        .collect(),
                );
            }
            _ => return Err(fail(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if !seen.iter().any(|s| s == "count") && req.device_ids.is_none() {
        req.count = Some(1);
    }
    req.options.get_or_insert_with(Default::default);
    req.capabilities.get_or_insert_with(|| vec![vec!["gpu".to_owned()]]);
    Ok(req)
}

/// The endpoint settings `--ip`, `--mac-address`, `--network-alias` and `--link` make for
/// the network of `--network` (as the docker CLI sends them since API 1.44), and the links
/// in `HostConfig.Links` form (`name:alias`).
pub fn network_endpoint(
    network: Option<&str>,
    ip: Option<&str>,
    mac: Option<&str>,
    aliases: &[String],
    links: &[String],
) -> Result<(Vec<String>, Option<berth_api::models::NetworkingConfig>), CliError> {
    use berth_api::models::{EndpointIpamConfig, EndpointSettings, NetworkingConfig};
    let mut out_links = Vec::new();
    for l in links {
        let (name, alias) = l.split_once(':').unwrap_or((l, l));
        if name.is_empty() || alias.is_empty() {
            return Err(CliError::Opt(format!(
                "invalid argument \"{l}\" for \"--link\" flag: bad format for links: {l}"
            )));
        }
        out_links.push(format!("{name}:{alias}"));
    }
    if let Some(ip) = ip
        && ip.parse::<std::net::Ipv4Addr>().is_err()
    {
        return Err(CliError::Opt(format!(
            "invalid argument \"{ip}\" for \"--ip\" flag: invalid string being converted to IP address: {ip}"
        )));
    }
    if let Some(m) = mac {
        let ok = m.split([':', '-']).count() == 6
            && m.split([':', '-']).all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
        if !ok {
            return Err(CliError::Opt(format!("{m} is not a valid mac address")));
        }
    }
    if ip.is_none() && mac.is_none() && aliases.is_empty() {
        return Ok((out_links, None));
    }
    let net = match network.unwrap_or("default") {
        "" | "default" => "bridge",
        n => n,
    };
    let es = EndpointSettings {
        ipam_config: ip.map(|ip| EndpointIpamConfig { ipv4_address: Some(ip.to_owned()), ..Default::default() }),
        mac_address: mac.map(str::to_owned),
        aliases: (!aliases.is_empty()).then(|| aliases.to_vec()),
        ..Default::default()
    };
    Ok((
        out_links,
        Some(NetworkingConfig { endpoints_config: Some(std::collections::HashMap::from([(net.to_owned(), es)])) }),
    ))
}

/// Whether `device` is a fully-qualified CDI device name (`vendor.com/class=name`), by the
/// CDI parser's rules, which is how the docker CLI tells a CDI `--device` from a path.
pub fn is_cdi_device(device: &str) -> bool {
    fn vendor_or_class(n: &str) -> bool {
        let c: Vec<char> = n.chars().collect();
        c.first().is_some_and(|f| f.is_ascii_alphabetic())
            && c.last().is_some_and(|l| l.is_ascii_alphanumeric())
            && c.iter().all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '-' | '.'))
    }
    fn name(n: &str) -> bool {
        let c: Vec<char> = n.chars().collect();
        c.first().is_some_and(|f| f.is_ascii_alphanumeric())
            && c.last().is_some_and(|l| l.is_ascii_alphanumeric())
            && c.iter().all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '-' | '.' | ':'))
    }
    if device.starts_with('/') {
        return false;
    }
    let Some((kind, n)) = device.split_once('=') else { return false };
    let Some((vendor, class)) = kind.split_once('/') else { return false };
    vendor_or_class(vendor) && vendor_or_class(class) && name(n)
}

fn valid_device_mode(mode: &str) -> bool {
    let mut seen = String::new();
    !mode.is_empty()
        && mode.chars().all(|c| {
            let fresh = matches!(c, 'r' | 'w' | 'm') && !seen.contains(c);
            seen.push(c);
            fresh
        })
}

/// Parses `--device /dev/x[:/dev/y][:rwm]` into a device mapping, with the docker CLI's
/// checks and wording (validateLinuxPath, then parseLinuxDevice).
pub fn parse_device(val: &str) -> Result<berth_api::models::DeviceMapping, CliError> {
    if val.matches(':').count() > 2 {
        return err(format!("bad format for path: {val}"));
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return err(format!("bad format for path: {val}"));
    }
    let clean = |p: &str| absolutize(p, Path::new("/"));
    let (src, dst, mode) = match split.as_slice() {
        [p] => (clean(p), None, None),
        [a, b] if valid_device_mode(b) => (clean(a), None, Some(b.to_string())),
        [a, b] => (a.to_string(), Some(*b), None),
        [a, b, m] => {
            if !valid_device_mode(m) {
                return err(format!("bad mode specified: {m}"));
            }
            (a.to_string(), Some(*b), Some(m.to_string()))
        }
        _ => return err(format!("bad format for path: {val}")),
    };
    let container = dst.unwrap_or(split[0]);
    if !container.starts_with('/') {
        return err(format!("{container} is not an absolute path"));
    }
    let dst = match dst {
        Some(d) if split.len() == 2 => clean(d),
        Some(d) => d.to_owned(),
        None => src.clone(),
    };
    Ok(berth_api::models::DeviceMapping {
        path_on_host: Some(src),
        path_in_container: Some(dst),
        cgroup_permissions: Some(mode.unwrap_or_else(|| "rwm".to_owned())),
    })
}

/// Checks `--device-cgroup-rule` (`type major:minor mode`) as the docker CLI does.
pub fn check_device_cgroup_rule(val: &str) -> Result<(), CliError> {
    let bad = || {
        err(format!(
            "invalid argument \"{val}\" for \"--device-cgroup-rule\" flag: invalid device cgroup format '{val}'"
        ))
    };
    let parts: Vec<&str> = val.split(' ').collect();
    let [t, nums, mode] = parts.as_slice() else { return bad() };
    let num = |n: &str| n == "*" || (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let ok = matches!(*t, "a" | "b" | "c")
        && nums.split_once(':').is_some_and(|(a, b)| num(a) && num(b))
        && (1..=3).contains(&mode.len())
        && mode.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    if ok { Ok(()) } else { bad() }
}

/// Parses `--ulimit name=soft[:hard]` with go-units' rules and the docker CLI's wording.
pub fn parse_ulimit(val: &str) -> Result<berth_api::models::ResourcesUlimits, CliError> {
    const NAMES: &[&str] = &[
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    ];
    let fail = |m: String| CliError::Opt(format!("invalid argument \"{val}\" for \"--ulimit\" flag: {m}"));
    let Some((name, limits)) = val.split_once('=') else { return Err(fail(format!("invalid ulimit argument: {val}"))) };
    if !NAMES.contains(&name) {
        return Err(fail(format!("invalid ulimit type: {name}")));
    }
    // Go's strconv.ParseInt wording.
    let int = |s: &str| {
        s.parse::<i64>().map_err(|e| {
            let why = if matches!(e.kind(), std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow) {
                "value out of range"
            } else {
                "invalid syntax"
            };
            format!("strconv.ParseInt: parsing \"{s}\": {why}")
        })
    };
    let vals: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match vals.as_slice() {
        [s] => {
            let s = int(s).map_err(fail)?;
            (s, s)
        }
        [s, h] => {
            let h = int(h).map_err(fail)?;
            (int(s).map_err(fail)?, h)
        }
        _ => {
            return Err(fail(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            )));
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(fail(format!(
                "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"
            )));
        }
        if soft > hard {
            return Err(fail(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")));
        }
    }
    Ok(berth_api::models::ResourcesUlimits { name: Some(name.to_owned()), soft: Some(soft), hard: Some(hard) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cwd() -> &'static Path {
        Path::new("/home/u/proj")
    }

    #[test]
    fn volumes() {
        let b = |s: &str| VolumeArg::Bind(s.to_owned());
        assert_eq!(parse_volume("/a:/b", cwd()).unwrap(), b("/a:/b"));
        assert_eq!(parse_volume("/a:/b:ro", cwd()).unwrap(), b("/a:/b:ro"));
        assert_eq!(parse_volume("./artifacts:/out", cwd()).unwrap(), b("/home/u/proj/artifacts:/out"));
        assert_eq!(parse_volume(".:/src:rw,z", cwd()).unwrap(), b("/home/u/proj:/src:rw,z"));
        assert_eq!(parse_volume("../x:/x", cwd()).unwrap(), b("/home/u/x:/x"));
        assert_eq!(parse_volume("data:/d:ro,nocopy", cwd()).unwrap(), b("data:/d:ro,nocopy"));
        assert_eq!(parse_volume("/cache", cwd()).unwrap(), VolumeArg::Anonymous("/cache".to_owned()));
        assert_eq!(parse_volume("a:b:c:d", cwd()).unwrap_err().to_string(), "invalid volume specification: 'a:b:c:d'");
        assert_eq!(parse_volume("/a:", cwd()).unwrap_err().to_string(), "invalid volume specification: '/a:'");
        assert!(parse_volume("/a:rel", cwd()).unwrap_err().to_string().contains("type \"bind\""));
        assert!(parse_volume("data:rel", cwd()).unwrap_err().to_string().contains("type \"volume\""));
        assert!(parse_volume("/a:/b:bogus", cwd()).unwrap_err().to_string().contains("invalid mode: bogus"));
        assert!(parse_volume("/a:/b:ro,rw", cwd()).is_err());
    }

    #[test]
    fn mounts() {
        let m = parse_mount("type=bind,source=/a,target=/b,readonly", cwd()).unwrap();
        assert_eq!(
            (m.typ, m.source.as_deref(), m.target.as_deref(), m.read_only),
            (Some(MountType::BIND), Some("/a"), Some("/b"), Some(true))
        );
        let m = parse_mount("type=bind,src=./x,dst=/y,ro=false", cwd()).unwrap();
        assert_eq!((m.source.as_deref(), m.read_only), (Some("/home/u/proj/x"), Some(false)));
        let m = parse_mount("type=bind,src=/x,destination=/y,bind-propagation=rshared", cwd()).unwrap();
        assert!(m.bind_options.is_some());
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m", cwd()).unwrap();
        assert_eq!(m.tmpfs_options.and_then(|o| o.size_bytes), Some(64 << 20));
        assert!(parse_mount("type=bind,src=/x", cwd()).unwrap_err().to_string().contains("target is required"));
        assert!(parse_mount("type=bind,target=/x", cwd()).unwrap_err().to_string().contains("source is required"));
        let m = parse_mount("source=v,target=/x", cwd()).unwrap();
        assert_eq!((m.typ, m.source.as_deref()), (Some(MountType::VOLUME), Some("v")));
        assert!(m.volume_options.is_none());
        let m = parse_mount(
            "type=volume,dst=/x,volume-nocopy,volume-label=a=b,\"volume-opt=o=size=1m,uid=1\",volume-opt=type=tmpfs",
            cwd(),
        )
        .unwrap();
        assert_eq!(m.source, None, "no source: an anonymous volume");
        let vo = m.volume_options.unwrap();
        assert_eq!(vo.no_copy, Some(true));
        assert_eq!(vo.labels.unwrap()["a"], "b");
        let opts = vo.driver_config.unwrap().options.unwrap();
        assert_eq!((opts["o"].as_str(), opts["type"].as_str()), ("size=1m,uid=1", "tmpfs"));
        assert!(parse_mount("type=volume,dst=/x,\"volume-opt=o", cwd()).is_err());
        assert!(parse_mount("type=bind,src=/a,target=/b,bogus=1", cwd()).is_err());
    }

    fn publish(specs: &[&str]) -> Result<(Vec<String>, PortMap), CliError> {
        let (mut e, mut b) = (Vec::new(), PortMap::new());
        for s in specs {
            parse_publish(s, &mut e, &mut b)?;
        }
        Ok((e, b))
    }

    fn binding(b: &PortMap, port: &str) -> Vec<(String, String)> {
        b[port]
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (p.host_ip.unwrap_or_default(), p.host_port.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn ports() {
        let (e, b) = publish(&["8080:80", "127.0.0.1:53:53/udp", "9000"]).unwrap();
        assert_eq!(e, ["80/tcp", "53/udp", "9000/tcp"]);
        assert_eq!(binding(&b, "80/tcp"), [(String::new(), "8080".to_owned())]);
        assert_eq!(binding(&b, "53/udp"), [("127.0.0.1".to_owned(), "53".to_owned())]);
        assert_eq!(binding(&b, "9000/tcp"), [(String::new(), String::new())]);
        let (e, b) = publish(&["8000-8001:80-81", "[::1]:2222:22", "127.0.0.1::5000"]).unwrap();
        assert_eq!(e, ["80/tcp", "81/tcp", "22/tcp", "5000/tcp"]);
        assert_eq!(binding(&b, "81/tcp"), [(String::new(), "8001".to_owned())]);
        assert_eq!(binding(&b, "22/tcp"), [("::1".to_owned(), "2222".to_owned())]);
        assert_eq!(binding(&b, "5000/tcp"), [("127.0.0.1".to_owned(), String::new())]);
        let (_, b) = publish(&["8000-8010:80"]).unwrap();
        assert_eq!(binding(&b, "80/tcp"), [(String::new(), "8000-8010".to_owned())]);
        assert!(publish(&["8000-8002:80-81"]).is_err());
        assert!(publish(&["x:80"]).is_err());
        assert!(publish(&["80/bogus"]).is_err());
        assert!(publish(&["1:2:3:4"]).is_err());
    }

    #[test]
    fn env_and_env_file() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_owned());
        assert_eq!(resolve_env("A=1", &lookup).unwrap(), Some("A=1".to_owned()));
        assert_eq!(resolve_env("HOME", &lookup).unwrap(), Some("HOME=/root".to_owned()));
        assert_eq!(resolve_env("UNSET", &lookup).unwrap(), None);
        assert!(resolve_env("=x", &lookup).is_err());
        let f = "# comment\n\nA=1\n  B=two \nHOME\nUNSET\nC=\"quoted\"\r\nD==x\n";
        assert_eq!(parse_env_file(f, &lookup).unwrap(), ["A=1", "B=two ", "HOME=/root", "C=\"quoted\"", "D==x"]);
        assert!(parse_env_file("B = two", &lookup).unwrap_err().to_string().contains("'B ' contains whitespaces"));
        assert!(parse_env_file("A B=1", &lookup).unwrap_err().to_string().contains("contains whitespaces"));
        assert!(parse_env_file("=1", &lookup).is_err());
    }

    #[test]
    fn systempaths_unconfined_is_the_clients_to_handle() {
        let v = |o: &[&str]| take_system_paths(o.iter().map(|s| s.to_string()).collect());
        assert_eq!(v(&["systempaths=unconfined", "no-new-privileges"]), (vec!["no-new-privileges".to_owned()], true));
        assert_eq!(v(&["no-new-privileges"]), (vec!["no-new-privileges".to_owned()], false));
        // Any other value goes to the daemon, which refuses it.
        assert_eq!(v(&["systempaths=confined"]), (vec!["systempaths=confined".to_owned()], false));
    }

    #[test]
    fn security_opts_send_the_profile() {
        let dir = std::env::temp_dir().join(format!("berth-secopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.json"), "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n").unwrap();
        let v = |o: &[&str]| parse_security_opts(&o.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &dir);
        assert_eq!(
            v(&["seccomp=p.json", "seccomp=unconfined", "no-new-privileges", "bogus=1"]).unwrap(),
            ["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\"}", "seccomp=unconfined", "no-new-privileges", "bogus=1"]
        );
        assert!(v(&["label"]).unwrap_err().to_string().contains("Invalid --security-opt: \"label\""));
        assert!(
            v(&["seccomp=missing.json"])
                .unwrap_err()
                .to_string()
                .contains("opening seccomp profile (missing.json) failed")
        );
        std::fs::write(dir.join("bad.json"), "{").unwrap();
        assert!(v(&["seccomp=bad.json"]).unwrap_err().to_string().contains("compacting json for seccomp profile"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sizes_and_policies() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_restart("on-failure:3").unwrap(), ("on-failure".to_owned(), Some(3)));
        assert_eq!(parse_restart("always").unwrap(), ("always".to_owned(), None));
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("sometimes").is_err());
        let g = |v: &str| parse_gpus(v).unwrap();
        assert_eq!((g("all").count, g("all").capabilities), (Some(-1), Some(vec![vec!["gpu".to_owned()]])));
        assert_eq!(g("2").count, Some(2));
        assert_eq!(g("capabilities=utility").count, Some(1), "one GPU unless told");
        let two = g("\"device=0,GPU-ab\"");
        assert_eq!((two.count, two.device_ids), (Some(0), Some(vec!["0".to_owned(), "GPU-ab".to_owned()])));
        let caps = g("count=all,\"capabilities=compute,utility\",driver=nvidia");
        assert_eq!(caps.capabilities, Some(vec![vec!["compute".to_owned(), "utility".to_owned(), "gpu".to_owned()]]));
        assert_eq!((caps.count, caps.driver.as_deref()), (Some(-1), Some("nvidia")));
        // Unquoted, the second id is a count of its own, as with the docker CLI.
        let both = g("device=0,1");
        assert_eq!((both.count, both.device_ids), (Some(1), Some(vec!["0".to_owned()])));
        let e = |v: &str| parse_gpus(v).unwrap_err().to_string();
        assert!(
            e("lots").ends_with("invalid count (lots): value must be either \"all\" or an integer: invalid syntax")
        );
        assert!(e("count=1,count=2").ends_with("gpu request key 'count' can be specified only once"));
        assert!(e("colour=red").ends_with("unexpected key 'colour' in 'colour=red'"));
        let m = parse_kv_list(&["a=b".into(), "c".into()], "--label", false).unwrap();
        assert_eq!(m["c"], "");
        assert!(parse_kv_list(&["c".into()], "--sysctl", true).is_err());
    }

    #[test]
    fn devices_and_ulimits_parse_like_docker() {
        let d = parse_device("/dev/null:/dev/mynull:r").unwrap();
        assert_eq!(
            (d.path_on_host.as_deref(), d.path_in_container.as_deref(), d.cgroup_permissions.as_deref()),
            (Some("/dev/null"), Some("/dev/mynull"), Some("r"))
        );
        let d = parse_device("/dev/fuse:rw").unwrap();
        assert_eq!((d.path_in_container.as_deref(), d.cgroup_permissions.as_deref()), (Some("/dev/fuse"), Some("rw")));
        let e = |v: &str| parse_device(v).unwrap_err().to_string();
        assert_eq!(e("/dev/null:/dev/x:rwx"), "bad mode specified: rwx");
        assert_eq!(e("/a:/b:r:w"), "bad format for path: /a:/b:r:w");
        assert_eq!(e(":/b"), "bad format for path: :/b");
        assert_eq!(e("/dev/null:rel"), "rel is not an absolute path");
        assert!(is_cdi_device("vendor.com/device=dev0") && !is_cdi_device("/dev/a=b") && !is_cdi_device("v/c="));
        assert!(check_device_cgroup_rule("c 1:3 rwm").is_ok() && check_device_cgroup_rule("c 1:3").is_err());

        let u = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((u.soft, u.hard), (Some(1024), Some(2048)));
        assert_eq!(parse_ulimit("nproc=5").unwrap().hard, Some(5));
        let e = |v: &str| parse_ulimit(v).unwrap_err().to_string();
        assert_eq!(e("nofile"), "invalid argument \"nofile\" for \"--ulimit\" flag: invalid ulimit argument: nofile");
        assert_eq!(
            e("nofile=a"),
            "invalid argument \"nofile=a\" for \"--ulimit\" flag: strconv.ParseInt: parsing \"a\": invalid syntax"
        );
        assert!(
            e("nofile=1:2:3")
                .ends_with("too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`")
        );
        assert!(e("bogus=1").ends_with("invalid ulimit type: bogus"));
        assert!(e("nofile=3:2").ends_with("ulimit soft limit must be less than or equal to hard limit: 3 > 2"));
    }
}
