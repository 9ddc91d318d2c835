//! What the planner reports while it works: one event per step on a resource (`Container
//! demo-web-1  Creating` … `Started`), for the CLI to draw as docker compose does.

/// The kind of resource an event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A container.
    Container,
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// An image (pull, build, removal).
    Image,
    /// A service (build).
    Service,
}

impl Resource {
    /// The word docker compose prints.
    pub fn word(self) -> &'static str {
        match self {
            Resource::Container => "Container",
            Resource::Network => "Network",
            Resource::Volume => "Volume",
            Resource::Image => "Image",
            Resource::Service => "Service",
        }
    }
}

/// Whether a step is under way, done, or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The step started (`Creating`).
    Working,
    /// The step ended well (`Created`).
    Done,
    /// The step failed (`Error`).
    Failed,
}

/// One progress event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The kind of resource.
    pub resource: Resource,
    /// Its name (`demo-web-1`, `demo_default`).
    pub name: String,
    /// docker compose's status word (`Creating`, `Started`, `Healthy`, `Removed`, ...).
    pub status: String,
    /// Where the step is.
    pub phase: Phase,
}

/// Where events go. The CLI prints them; tests record them.
pub trait Progress: Send + Sync {
    /// Reports one event.
    fn event(&self, e: Event);

    /// A warning (`WARN[0000] …` in docker compose).
    fn warn(&self, _msg: &str) {}

    /// One line of a service's build output.
    fn build_output(&self, _service: &str, _line: &str) {}

    /// Convenience: a step under way.
    fn working(&self, resource: Resource, name: &str, status: &str) {
        self.event(Event { resource, name: name.to_owned(), status: status.to_owned(), phase: Phase::Working });
    }

    /// Convenience: a step done.
    fn done(&self, resource: Resource, name: &str, status: &str) {
        self.event(Event { resource, name: name.to_owned(), status: status.to_owned(), phase: Phase::Done });
    }

    /// Convenience: a step failed.
    fn failed(&self, resource: Resource, name: &str, status: &str) {
        self.event(Event { resource, name: name.to_owned(), status: status.to_owned(), phase: Phase::Failed });
    }
}

/// Drops every event.
#[derive(Debug, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _e: Event) {}
}

/// Keeps every event (for tests and for callers that summarise at the end).
#[derive(Debug, Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Event>>);

impl Progress for Recorder {
    fn event(&self, e: Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(e);
        }
    }
}
