//! Networking commands: `port` (and the `network` family).

use berth_api::{Client, query};

use super::Res;
use crate::CliError;

#[cfg_attr(doc, doc = "`port CONTAINER [PRIVATE_PORT[/PROTO]]`.")]
#[derive(Debug, clap::Args)]
pub struct PortArgs {
    /// The container.
    pub container: String,
    /// A private port, optionally with its protocol.
    pub port: Option<String>,
}

/// Lists a container's port mappings as `docker port` does.
pub async fn port(c: &Client, a: PortArgs) -> Res {
    let info = c.inspect_container(&a.container, &query::InspectContainer::default()).await?;
    let map = info.network_settings.and_then(|n| n.ports).unwrap_or_default();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by_key(|k| {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        (p.parse::<u32>().unwrap_or(0), proto.to_owned())
    });
    // docker 20.10's shape, as `ps` prints it: `:::8080` for `::` (newer CLIs bracket it).
    let addr = |ip: &str, port: &str| format!("{ip}:{port}");
    match &a.port {
        Some(want) => {
            let (p, proto) = want.split_once('/').unwrap_or((want, "tcp"));
            if p.parse::<u16>().is_err() {
                return Err(CliError::Opt(format!("Error: invalid port ({p}): invalid syntax")));
            }
            let key = format!("{p}/{proto}");
            let found: Vec<_> = map.get(&key).cloned().flatten().unwrap_or_default();
            if found.is_empty() {
                return Err(CliError::Message(format!("Error: No public port '{key}' published for {}", a.container)));
            }
            for b in found {
                println!("{}", addr(b.host_ip.as_deref().unwrap_or(""), b.host_port.as_deref().unwrap_or("")));
            }
        }
        None => {
            for k in keys {
                for b in map[k].iter().flatten() {
                    println!(
                        "{k} -> {}",
                        addr(b.host_ip.as_deref().unwrap_or(""), b.host_port.as_deref().unwrap_or(""))
                    );
                }
            }
        }
    }
    Ok(())
}

/// `network …`.
#[derive(Debug, clap::Subcommand)]
#[command(defer = true)]
pub enum NetworkCmd {
    /// Create a network
    Create(CreateArgs),
    /// List networks
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    Inspect(InspectArgs),
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm(NamesArgs),
    /// Remove all unused networks
    Prune(PruneArgs),
    /// Connect a container to a network
    Connect(ConnectArgs),
    /// Disconnect a container from a network
    Disconnect(DisconnectArgs),
}

#[cfg_attr(doc, doc = "`network create`.")]
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Driver to manage the Network
    #[arg(short = 'd', long = "driver", default_value = "bridge")]
    pub driver: String,
    /// Subnet in CIDR format that represents a network segment
    #[arg(long = "subnet")]
    pub subnet: Vec<String>,
    /// IPv4 or IPv6 Gateway for the master subnet
    #[arg(long = "gateway")]
    pub gateway: Vec<String>,
    /// Allocate container ip from a sub-range
    #[arg(long = "ip-range")]
    pub ip_range: Vec<String>,
    /// Restrict external access to the network
    #[arg(long = "internal")]
    pub internal: bool,
    /// Set metadata on a network
    #[arg(long = "label")]
    pub label: Vec<String>,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt")]
    pub opt: Vec<String>,
    /// Enable or disable IPv6 networking
    #[arg(long = "ipv6")]
    pub ipv6: bool,
    /// Network name.
    pub name: String,
}

#[cfg_attr(doc, doc = "`network ls`.")]
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Provide filter values (e.g. "driver=bridge")
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Only display network IDs
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Do not truncate the output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
}

#[cfg_attr(doc, doc = "`network inspect`.")]
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long = "format")]
    pub format: Option<String>,
    /// Networks.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[cfg_attr(doc, doc = "Network names.")]
#[derive(Debug, clap::Args)]
pub struct NamesArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Networks.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[cfg_attr(doc, doc = "`network prune`.")]
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter")]
    pub filter: Vec<String>,
}

#[cfg_attr(doc, doc = "`network connect`.")]
#[derive(Debug, clap::Args)]
pub struct ConnectArgs {
    /// Add network-scoped alias for the container
    #[arg(long = "alias")]
    pub alias: Vec<String>,
    /// IPv4 address (e.g., "172.30.100.104")
    #[arg(long = "ip")]
    pub ip: Option<String>,
    /// Add link to another container
    #[arg(long = "link")]
    pub link: Vec<String>,
    /// Network.
    pub network: String,
    /// Container.
    pub container: String,
}

#[cfg_attr(doc, doc = "`network disconnect`.")]
#[derive(Debug, clap::Args)]
pub struct DisconnectArgs {
    /// Force the container to disconnect from a network
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// Network.
    pub network: String,
    /// Container.
    pub container: String,
}

fn kv(items: &[String], what: &str) -> Result<serde_json::Map<String, serde_json::Value>, CliError> {
    let mut m = serde_json::Map::new();
    for i in items {
        let (k, v) = i.split_once('=').unwrap_or((i, ""));
        if k.is_empty() {
            return Err(CliError::Opt(format!("invalid {what}: {i}")));
        }
        m.insert(k.to_owned(), v.into());
    }
    Ok(m)
}

/// Runs a `network` subcommand.
pub async fn network(c: &Client, cmd: NetworkCmd) -> Res {
    use crate::output::{err_line, out};
    match cmd {
        NetworkCmd::Create(a) => {
            if a.subnet.len() > 1 || a.gateway.len() > a.subnet.len() || a.ip_range.len() > a.subnet.len() {
                return Err(CliError::Opt(
                    "every ip-range or gateway must have a corresponding subnet, and berth takes one subnet".into(),
                ));
            }
            let mut ipam = serde_json::json!({"Driver": "default", "Options": {}, "Config": []});
            if let Some(s) = a.subnet.first() {
                let mut cfg = serde_json::json!({"Subnet": s});
                if let Some(g) = a.gateway.first() {
                    cfg["Gateway"] = g.clone().into();
                }
                if let Some(r) = a.ip_range.first() {
                    cfg["IPRange"] = r.clone().into();
                }
                ipam["Config"] = serde_json::json!([cfg]);
            }
            let body = serde_json::json!({
                "Name": a.name, "Driver": a.driver, "Internal": a.internal, "EnableIPv6": a.ipv6,
                "IPAM": ipam, "Options": kv(&a.opt, "option")?, "Labels": kv(&a.label, "label")?,
            });
            let r = c.create_network(&body).await?;
            out(&format!("{}\n", r["Id"].as_str().unwrap_or_default()));
            Ok(())
        }
        NetworkCmd::Ls(a) => {
            let nets = c.list_networks(&super::parse_filters(&a.filter)?).await?;
            let id = |n: &serde_json::Value| {
                let id = n["Id"].as_str().unwrap_or_default().to_owned();
                if a.no_trunc { id } else { super::short(&id) }
            };
            if a.quiet {
                for n in &nets {
                    out(&format!("{}\n", id(n)));
                }
                return Ok(());
            }
            let mut lines = vec!["NETWORK ID\tNAME\tDRIVER\tSCOPE".to_owned()];
            for n in &nets {
                lines.push(format!(
                    "{}\t{}\t{}\t{}",
                    id(n),
                    n["Name"].as_str().unwrap_or_default(),
                    n["Driver"].as_str().unwrap_or_default(),
                    n["Scope"].as_str().unwrap_or_default()
                ));
            }
            out(&crate::format::align(&lines));
            Ok(())
        }
        NetworkCmd::Inspect(a) => {
            let mut found = Vec::new();
            let mut failed = false;
            for n in &a.names {
                match c.inspect_network(n).await {
                    Ok(v) => found.push(v),
                    Err(e) if e.status() == Some(404) => {
                        failed = true;
                        err_line(&format!("Error response from daemon: network {n} not found"));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            match &a.format {
                Some(f) => {
                    let rows = found.iter().map(crate::format::to_value).collect::<Result<Vec<_>, _>>()?;
                    let fmt =
                        crate::format::Format { template: f.replace("\\t", "\t").replace("\\n", "\n"), table: false };
                    out(&crate::format::render(&fmt, &std::collections::BTreeMap::new(), &rows)?);
                }
                None => {
                    let raw = serde_json::to_string(&found).unwrap_or_default();
                    out(&format!("{}\n", crate::format::indent_json(&raw, "    ")));
                }
            }
            if failed { Err(CliError::Status(1)) } else { Ok(()) }
        }
        NetworkCmd::Rm(a) => {
            super::each(&a.names, |n| async move {
                match c.remove_network(&n).await {
                    Ok(()) => {
                        out(&format!("{n}\n"));
                        Ok(())
                    }
                    Err(e) if a.force && e.status() == Some(404) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            })
            .await
        }
        NetworkCmd::Prune(a) => {
            if !a.force {
                use std::io::BufRead;
                eprint!(
                    "WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] "
                );
                let mut line = String::new();
                let _ = std::io::stdin().lock().read_line(&mut line);
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    return Ok(());
                }
            }
            let removed = c.prune_networks(&super::parse_filters(&a.filter)?).await?;
            if !removed.is_empty() {
                out(&format!("Deleted Networks:\n{}\n", removed.join("\n")));
            }
            Ok(())
        }
        NetworkCmd::Connect(a) => {
            let mut ep = serde_json::json!({});
            if let Some(ip) = &a.ip {
                ep["IPAMConfig"] = serde_json::json!({"IPv4Address": ip});
            }
            if !a.alias.is_empty() {
                ep["Aliases"] = a.alias.clone().into();
            }
            if !a.link.is_empty() {
                ep["Links"] = a.link.clone().into();
            }
            let body = serde_json::json!({"Container": a.container, "EndpointConfig": ep});
            c.network_connect(&a.network, true, &body).await?;
            Ok(())
        }
        NetworkCmd::Disconnect(a) => {
            let body = serde_json::json!({"Container": a.container, "Force": a.force});
            c.network_connect(&a.network, false, &body).await?;
            Ok(())
        }
    }
}
