//! What of a project exists on the daemon: its containers (service and one-off), networks and
//! volumes, found by docker compose's labels.

use std::collections::BTreeMap;

use berth_api::Client;
use berth_api::models::ContainerSummary;
use berth_api::query::{Filters, ListContainers};

use super::names;
use crate::ComposeError;

/// One container of the project, as the list endpoint shows it.
#[derive(Debug, Clone)]
pub struct Existing {
    /// Full id.
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    /// Its service.
    pub service: String,
    /// Its replica number (0 for one-off containers).
    pub number: u32,
    /// Whether it is a `run` container.
    pub oneoff: bool,
    /// `running`, `exited`, `created`, `paused`, ...
    pub state: String,
    /// The `Status` text (`Up 3 seconds`).
    pub status: String,
    /// Its config-hash label.
    pub hash: String,
    /// All its labels.
    pub labels: BTreeMap<String, String>,
    /// The list endpoint's summary as the daemon sent it.
    pub summary: ContainerSummary,
}

impl Existing {
    fn from_summary(s: ContainerSummary) -> Existing {
        let labels: BTreeMap<String, String> = s.labels.clone().unwrap_or_default().into_iter().collect();
        let name =
            s.names.as_ref().and_then(|n| n.first()).map(|n| n.trim_start_matches('/').to_owned()).unwrap_or_default();
        Existing {
            id: s.id.clone().unwrap_or_default(),
            name,
            service: labels.get(names::SERVICE).cloned().unwrap_or_default(),
            number: names::number_of(&labels),
            oneoff: labels.get(names::ONEOFF).is_some_and(|v| v.eq_ignore_ascii_case("true")),
            state: s.state.map(|st| st.to_string()).unwrap_or_default(),
            status: s.status.clone().unwrap_or_default(),
            hash: labels.get(names::CONFIG_HASH).cloned().unwrap_or_default(),
            labels,
            summary: s,
        }
    }

    /// Whether the container is running (or paused, restarting: alive).
    pub fn is_running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "paused" | "restarting")
    }

    /// `{service}-{n}`: the name docker compose prints as a log prefix and in progress lines
    /// of one-off containers.
    pub fn short_name(&self, project: &str) -> String {
        self.name.strip_prefix(&format!("{project}-")).unwrap_or(&self.name).to_owned()
    }
}

/// Which of the project's containers to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oneoff {
    /// Only the services' own containers.
    Exclude,
    /// Only `run` containers.
    Only,
    /// Both.
    Include,
}

/// The project's containers (stopped ones too when `all`), in service then number order.
pub async fn containers(
    client: &Client,
    project: &str,
    oneoff: Oneoff,
    all: bool,
) -> Result<Vec<Existing>, ComposeError> {
    let mut filters = Filters::default();
    filters.add("label", &names::project_filter(project));
    match oneoff {
        Oneoff::Exclude => filters.add("label", &format!("{}=False", names::ONEOFF)),
        Oneoff::Only => filters.add("label", &format!("{}=True", names::ONEOFF)),
        Oneoff::Include => {}
    }
    let list = client.list_containers(&ListContainers { all, filters, ..Default::default() }).await?;
    let mut v: Vec<Existing> = list.into_iter().map(Existing::from_summary).collect();
    v.sort_by(|a, b| {
        (a.service.as_str(), a.number, a.name.as_str()).cmp(&(b.service.as_str(), b.number, b.name.as_str()))
    });
    Ok(v)
}

/// The names of every project found on the daemon with their containers (`compose ls`):
/// project → (working dir, config files, containers' states).
pub async fn projects(client: &Client, all: bool) -> Result<BTreeMap<String, ProjectSummary>, ComposeError> {
    let mut filters = Filters::default();
    filters.add("label", names::PROJECT);
    let list = client.list_containers(&ListContainers { all: true, filters, ..Default::default() }).await?;
    let mut out: BTreeMap<String, ProjectSummary> = BTreeMap::new();
    for s in list.into_iter().map(Existing::from_summary) {
        let Some(p) = s.labels.get(names::PROJECT).cloned() else { continue };
        let e = out.entry(p).or_default();
        if e.config_files.is_empty() {
            e.config_files = s.labels.get(names::CONFIG_FILES).cloned().unwrap_or_default();
        }
        *e.states.entry(s.state.clone()).or_default() += 1;
    }
    if !all {
        out.retain(|_, p| p.states.keys().any(|s| s == "running" || s == "paused" || s == "restarting"));
    }
    Ok(out)
}

/// One project as `compose ls` shows it.
#[derive(Debug, Clone, Default)]
pub struct ProjectSummary {
    /// Its compose files, comma-separated.
    pub config_files: String,
    /// Container count per state.
    pub states: BTreeMap<String, usize>,
}

impl ProjectSummary {
    /// docker compose's STATUS column: `running(2)`, `exited(1), running(1)`.
    pub fn status(&self) -> String {
        self.states.iter().map(|(s, n)| format!("{s}({n})")).collect::<Vec<_>>().join(", ")
    }
}

/// The project's networks (those labelled with it).
pub async fn networks(client: &Client, project: &str) -> Result<Vec<serde_json::Value>, ComposeError> {
    let mut filters = Filters::default();
    filters.add("label", &names::project_filter(project));
    Ok(client.list_networks(&filters).await?)
}

/// The project's volumes (those labelled with it): their names.
pub async fn volumes(client: &Client, project: &str) -> Result<Vec<String>, ComposeError> {
    let mut filters = Filters::default();
    filters.add("label", &names::project_filter(project));
    let v = client.list_volumes(&filters).await?;
    Ok(v["Volumes"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["Name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}
