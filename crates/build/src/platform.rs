//! Build and target platforms (`linux/amd64`, `linux/arm/v7`): parsing, the host's, an
//! image's, and the automatic platform ARGs.

use oci_spec::image::ImageConfiguration;

use crate::Error;

/// An OCI platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`.
    pub os: String,
    /// `amd64`, `arm64`…
    pub arch: String,
    /// `v7`, `v8`… when given.
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// The machine berth runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform { os: "linux".into(), arch: arch.into(), variant: None }
    }

    /// Parses `linux/amd64`, `linux/arm/v7`, `arm64` (the host's OS), normalising the
    /// names containerd normalises (`x86_64`, `aarch64`, `arm64/v8`).
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let bad = || Error::Platform { spec: s.to_owned() };
        let parts: Vec<String> = s.trim().split('/').map(|p| p.to_ascii_lowercase()).collect();
        if parts.iter().any(String::is_empty) {
            return Err(bad());
        }
        let known_os = |o: &str| matches!(o, "linux" | "windows" | "darwin" | "freebsd");
        let (os, arch, variant) = match parts.as_slice() {
            [a] if !known_os(a) => (Platform::host().os, a.clone(), None),
            [o] => (o.clone(), Platform::host().arch, None),
            [o, a] if known_os(o) => (o.clone(), a.clone(), None),
            [a, v] => (Platform::host().os, a.clone(), Some(v.clone())),
            [o, a, v] => (o.clone(), a.clone(), Some(v.clone())),
            _ => return Err(bad()),
        };
        let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_owned(), v.filter(|v| *v != "v1").map(str::to_owned)),
            ("aarch64" | "arm64", Some("v8") | None) => ("arm64".to_owned(), None),
            ("i386" | "386", _) => ("386".to_owned(), None),
            (a, v) => (a.to_owned(), v.map(str::to_owned)),
        };
        Ok(Platform { os, arch, variant })
    }

    /// The platform an image config declares.
    pub fn of_image(c: &ImageConfiguration) -> Platform {
        let p = format!("{}/{}", c.os(), c.architecture());
        let mut out = Platform::parse(&p).unwrap_or_else(|_| Platform::host());
        out.variant = c.variant().clone().filter(|v| !v.is_empty());
        if out.arch == "arm64" && out.variant.as_deref() == Some("v8") {
            out.variant = None;
        }
        out
    }

    /// Whether an image of platform `have` satisfies this wanted platform (a wanted
    /// variant must match; none wanted accepts any).
    pub fn matches(&self, have: &Platform) -> bool {
        self.os == have.os && self.arch == have.arch && (self.variant.is_none() || self.variant == have.variant)
    }
}

/// The build's platforms: where it runs and what it is for.
pub(crate) struct Platforms {
    pub(crate) build: Platform,
    pub(crate) target: Platform,
}

impl Platforms {
    pub(crate) fn new(target: Option<&str>) -> Result<Platforms, Error> {
        let build = Platform::host();
        let target = match target.filter(|t| !t.is_empty()) {
            Some(t) => Platform::parse(t)?,
            None => build.clone(),
        };
        Ok(Platforms { build, target })
    }

    /// BuildKit's automatic ARGs (`BUILDPLATFORM`, `TARGETARCH`…): usable in FROM lines
    /// at once, and in a stage after `ARG NAME`.
    pub(crate) fn args(&self) -> Vec<(String, String)> {
        let mut v = Vec::new();
        for (prefix, p) in [("BUILD", &self.build), ("TARGET", &self.target)] {
            v.push((format!("{prefix}PLATFORM"), p.to_string()));
            v.push((format!("{prefix}OS"), p.os.clone()));
            v.push((format!("{prefix}ARCH"), p.arch.clone()));
            v.push((format!("{prefix}VARIANT"), p.variant.clone().unwrap_or_default()));
        }
        v
    }
}
