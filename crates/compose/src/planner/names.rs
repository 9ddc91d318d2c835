//! docker compose v2's names and labels: what makes a container, network or volume part of
//! a project, so `docker compose ps` and `berth compose ps` see the same thing.

use std::collections::BTreeMap;

/// The project a resource belongs to.
pub const PROJECT: &str = "com.docker.compose.project";
/// The service a container runs.
pub const SERVICE: &str = "com.docker.compose.service";
/// The replica number of a service container (1-based).
pub const CONTAINER_NUMBER: &str = "com.docker.compose.container-number";
/// `True` for `run` containers, `False` for the service's own.
pub const ONEOFF: &str = "com.docker.compose.oneoff";
/// The random slug of a one-off container.
pub const SLUG: &str = "com.docker.compose.slug";
/// The hash of the service's configuration the container was created from.
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// The project's working directory.
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";
/// The project's compose files, comma-separated.
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
/// The project's env files, comma-separated.
pub const ENVIRONMENT_FILE: &str = "com.docker.compose.project.environment_file";
/// The service's dependencies: `name:condition:restart` comma-separated.
pub const DEPENDS_ON: &str = "com.docker.compose.depends_on";
/// The image digest the container was created from.
pub const IMAGE: &str = "com.docker.compose.image";
/// The compose version that made the resource.
pub const VERSION: &str = "com.docker.compose.version";
/// A network's key in the project's `networks:`.
pub const NETWORK: &str = "com.docker.compose.network";
/// A volume's key in the project's `volumes:`.
pub const VOLUME: &str = "com.docker.compose.volume";
/// The container a recreated one replaces.
pub const REPLACE: &str = "com.docker.compose.replace";

/// The compose version berth writes into `com.docker.compose.version` (the docker compose
/// release whose behaviour it follows).
pub const COMPOSE_VERSION: &str = "2.40.3";

/// `{project}-{service}-{number}`: a service container's name.
pub fn container_name(project: &str, service: &str, number: u32) -> String {
    format!("{project}-{service}-{number}")
}

/// `{project}-{service}-run-{slug[..12]}`: a one-off (`run`) container's name.
pub fn oneoff_name(project: &str, service: &str, slug: &str) -> String {
    format!("{project}-{service}-run-{}", &slug[..slug.len().min(12)])
}

/// `{project}_{key}`: the name of a project network or volume that sets no `name:`.
pub fn scoped_name(project: &str, key: &str) -> String {
    format!("{project}_{key}")
}

/// `{project}-{service}`: the image name of a built service without `image:`.
pub fn default_image_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

/// The labels every project resource carries.
pub fn project_labels(project: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(PROJECT.to_owned(), project.to_owned()), (VERSION.to_owned(), COMPOSE_VERSION.to_owned())])
}

/// A `label=project` filter value.
pub fn project_filter(project: &str) -> String {
    format!("{PROJECT}={project}")
}

/// A new random 64-hex slug for a one-off container.
pub fn new_slug() -> String {
    berth_base::new_id()
}

/// The container number in a container's labels, 0 when absent or garbled.
pub fn number_of(labels: &BTreeMap<String, String>) -> u32 {
    labels.get(CONTAINER_NUMBER).and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_compose_v2_writes_them() {
        assert_eq!(container_name("demo", "web", 1), "demo-web-1");
        assert_eq!(scoped_name("demo", "default"), "demo_default");
        assert_eq!(oneoff_name("demo", "job", "0123456789abcdef"), "demo-job-run-0123456789ab");
        assert_eq!(default_image_name("demo", "app"), "demo-app");
        let s = new_slug();
        assert_eq!(s.len(), 64);
        let l = BTreeMap::from([(CONTAINER_NUMBER.to_owned(), "3".to_owned())]);
        assert_eq!(number_of(&l), 3);
        assert_eq!(number_of(&BTreeMap::new()), 0);
    }
}
