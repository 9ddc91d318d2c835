//! The distribution API's URL space, decoded into a typed [`Route`] before any handler
//! runs. Repository names contain slashes, so routes are recognised from their fixed
//! tails (`/blobs/uploads/<id>`, `/manifests/<ref>`, `/tags/list`…) rather than by a path
//! router; the name left in front is validated by the handler (NAME_INVALID).

/// One endpoint of the API, with the names from its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`: the version check.
    Base,
    /// `/v2/_catalog`.
    Catalog,
    /// `/v2/<name>/tags/list`.
    Tags {
        /// Repository.
        name: String,
    },
    /// `/v2/<name>/manifests/<reference>` (a tag or a digest).
    Manifest {
        /// Repository.
        name: String,
        /// Tag or digest.
        reference: String,
    },
    /// `/v2/<name>/blobs/<digest>`.
    Blob {
        /// Repository.
        name: String,
        /// Digest as written.
        digest: String,
    },
    /// `/v2/<name>/blobs/uploads/`: starts an upload (or mounts, or uploads whole).
    UploadStart {
        /// Repository.
        name: String,
    },
    /// `/v2/<name>/blobs/uploads/<id>`: an upload in progress.
    Upload {
        /// Repository.
        name: String,
        /// Upload id.
        id: String,
    },
    /// `/v2/<name>/referrers/<digest>`.
    Referrers {
        /// Repository.
        name: String,
        /// Subject digest as written.
        digest: String,
    },
}

impl Route {
    /// The repository the route names, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            Route::Base | Route::Catalog => None,
            Route::Tags { name }
            | Route::Manifest { name, .. }
            | Route::Blob { name, .. }
            | Route::UploadStart { name }
            | Route::Upload { name, .. }
            | Route::Referrers { name, .. } => Some(name),
        }
    }
}

/// The route of a (percent-decoded) request path; `None` for paths outside the API.
pub fn parse(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let owned = |s: &str| s.to_owned();
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags { name: owned(name) });
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads")) {
        return Some(Route::UploadStart { name: owned(name) });
    }
    let (front, last) = rest.rsplit_once('/')?;
    if last.is_empty() {
        return None;
    }
    if let Some(name) = front.strip_suffix("/blobs/uploads") {
        return Some(Route::Upload { name: owned(name), id: owned(last) });
    }
    if let Some(name) = front.strip_suffix("/manifests") {
        return Some(Route::Manifest { name: owned(name), reference: owned(last) });
    }
    if let Some(name) = front.strip_suffix("/blobs") {
        return Some(Route::Blob { name: owned(name), digest: owned(last) });
    }
    if let Some(name) = front.strip_suffix("/referrers") {
        return Some(Route::Referrers { name: owned(name), digest: owned(last) });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_routes() {
        let s = |x: &str| x.to_owned();
        assert_eq!(parse("/v2/"), Some(Route::Base));
        assert_eq!(parse("/v2"), Some(Route::Base));
        assert_eq!(parse("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(parse("/v2/a/b/tags/list"), Some(Route::Tags { name: s("a/b") }));
        assert_eq!(parse("/v2/a/blobs/uploads/"), Some(Route::UploadStart { name: s("a") }));
        assert_eq!(parse("/v2/a/blobs/uploads"), Some(Route::UploadStart { name: s("a") }));
        assert_eq!(parse("/v2/a/b/blobs/uploads/u-1"), Some(Route::Upload { name: s("a/b"), id: s("u-1") }));
        assert_eq!(parse("/v2/x/manifests/latest"), Some(Route::Manifest { name: s("x"), reference: s("latest") }));
        assert_eq!(parse("/v2/x/y/blobs/sha256:ab"), Some(Route::Blob { name: s("x/y"), digest: s("sha256:ab") }));
        assert_eq!(parse("/v2/x/referrers/sha256:ab"), Some(Route::Referrers { name: s("x"), digest: s("sha256:ab") }));
        // A repository may itself be called `blobs` or `manifests`.
        assert_eq!(
            parse("/v2/manifests/blobs/manifests/v1"),
            Some(Route::Manifest { name: s("manifests/blobs"), reference: s("v1") })
        );
        for none in ["/", "/v1/x", "/v2x", "/v2/x", "/v2/x/manifests/", "/v2/x/other/y"] {
            assert_eq!(parse(none), None, "{none}");
        }
    }
}
