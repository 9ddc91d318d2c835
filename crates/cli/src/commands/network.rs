//! Networking commands: `port` (and the `network` family).

use berth_api::{Client, query};

use super::Res;
use crate::CliError;

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`.
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
    let addr = |ip: &str, port: &str| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
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
