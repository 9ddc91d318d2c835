//! Files and archives: a container's paths (`HEAD/GET/PUT /containers/{id}/archive`,
//! the `X-Docker-Container-Path-Stat` header), `export`, `changes`, and image archives
//! (`GET /images/get`, `POST /images/load`).

use base64::Engine as _;
use hyper::{Method, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::{Body, ByteStream, Client, ClientError, JsonStream, Result, check, encode_query, seg};
use crate::models::FilesystemChange;

/// The header that carries a [`PathStat`], base64 of its JSON.
pub const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// Go's `os.FileMode` bits, as `PathStat.mode` carries them.
pub mod go_mode {
    /// A directory.
    pub const DIR: u32 = 1 << 31;
    /// A symbolic link.
    pub const SYMLINK: u32 = 1 << 27;
    /// A device (block, or character with [`CHAR_DEVICE`]).
    pub const DEVICE: u32 = 1 << 26;
    /// A FIFO.
    pub const NAMED_PIPE: u32 = 1 << 25;
    /// A socket.
    pub const SOCKET: u32 = 1 << 24;
    /// setuid.
    pub const SETUID: u32 = 1 << 23;
    /// setgid.
    pub const SETGID: u32 = 1 << 22;
    /// A character device.
    pub const CHAR_DEVICE: u32 = 1 << 21;
    /// sticky.
    pub const STICKY: u32 = 1 << 20;

    /// Go's mode of a unix `st_mode`.
    pub fn from_unix(st_mode: u32) -> u32 {
        let mut m = st_mode & 0o777;
        m |= match st_mode & 0o170000 {
            0o040000 => DIR,
            0o120000 => SYMLINK,
            0o060000 => DEVICE,
            0o020000 => DEVICE | CHAR_DEVICE,
            0o010000 => NAMED_PIPE,
            0o140000 => SOCKET,
            _ => 0,
        };
        if st_mode & 0o4000 != 0 {
            m |= SETUID;
        }
        if st_mode & 0o2000 != 0 {
            m |= SETGID;
        }
        if st_mode & 0o1000 != 0 {
            m |= STICKY;
        }
        m
    }
}

/// What a path in a container is (Docker's `container.PathStat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PathStat {
    /// The last component of the path.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits (see [`go_mode`]).
    pub mode: u32,
    /// Modification time, RFC 3339.
    pub mtime: String,
    /// For a symlink, the path it finally leads to inside the container.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & go_mode::DIR != 0
    }

    /// True for a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.mode & go_mode::SYMLINK != 0
    }

    /// The header value: base64 of the JSON.
    pub fn to_header(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decodes a header value.
    pub fn from_header(v: &str) -> Result<PathStat> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|e| ClientError::Request(format!("unable to decode container path stat header: {e}")))?;
        super::decode(&bytes, "container path stat")
    }
}

/// Query of `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PutArchive {
    /// The directory to extract into.
    pub path: String,
    /// Refuse to replace a directory with a non-directory and the reverse.
    #[serde(rename = "noOverwriteDirNonDir", skip_serializing_if = "std::ops::Not::not")]
    pub no_overwrite_dir_non_dir: bool,
    /// Give the files the container user's uid/gid.
    #[serde(rename = "copyUIDGID", skip_serializing_if = "std::ops::Not::not")]
    pub copy_uid_gid: bool,
}

#[derive(Serialize)]
struct PathQuery<'a> {
    path: &'a str,
}

fn stat_of(resp: &hyper::Response<hyper::body::Incoming>) -> Result<PathStat> {
    let v = resp
        .headers()
        .get(PATH_STAT_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ClientError::Request("the daemon sent no container path stat".to_owned()))?;
    PathStat::from_header(v)
}

impl Client {
    /// `HEAD /containers/{id}/archive?path=`: what `path` is in the container.
    pub async fn container_stat_path(&self, id: &str, path: &str) -> Result<PathStat> {
        let q = encode_query(&PathQuery { path })?;
        let resp = self.request(Method::HEAD, &format!("/containers/{}/archive", seg(id)), Some(&q), None).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            // A HEAD answer has no body to carry the daemon's words.
            return Err(ClientError::Daemon {
                status: 404,
                message: format!("Could not find the file {path} in container {id}"),
            });
        }
        let resp = check(resp).await?;
        stat_of(&resp)
    }

    /// `GET /containers/{id}/archive?path=`: the stat of `path` and a tar of it.
    pub async fn container_archive(&self, id: &str, path: &str) -> Result<(PathStat, ByteStream)> {
        let q = encode_query(&PathQuery { path })?;
        let resp = self.call(Method::GET, &format!("/containers/{}/archive", seg(id)), Some(&q), None).await?;
        let stat = stat_of(&resp)?;
        Ok((stat, ByteStream { body: resp.into_body() }))
    }

    /// `PUT /containers/{id}/archive`: extracts the tar `body` into the directory `q.path`.
    pub async fn put_container_archive(&self, id: &str, q: &PutArchive, body: Body) -> Result<()> {
        let mut req =
            self.build(Method::PUT, &format!("/containers/{}/archive", seg(id)), Some(&encode_query(q)?), body)?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-tar"));
        check(self.send(req, false).await?).await.map(|_| ())
    }

    /// `GET /containers/{id}/export`: the container's whole filesystem as a tar.
    pub async fn export_container(&self, id: &str) -> Result<ByteStream> {
        let resp = self.call(Method::GET, &format!("/containers/{}/export", seg(id)), None, None).await?;
        Ok(ByteStream { body: resp.into_body() })
    }

    /// `GET /containers/{id}/changes`.
    pub async fn container_changes(&self, id: &str) -> Result<Vec<FilesystemChange>> {
        let v: Option<Vec<FilesystemChange>> =
            self.call_json(Method::GET, &format!("/containers/{}/changes", seg(id)), None, None).await?;
        Ok(v.unwrap_or_default())
    }

    /// `GET /images/get?names=…`: an archive of the images (a `docker save`).
    pub async fn save_images(&self, names: &[String]) -> Result<ByteStream> {
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(names.iter().map(|n| ("names", n.as_str())))
            .finish();
        let resp = self.call(Method::GET, "/images/get", Some(&q), None).await?;
        Ok(ByteStream { body: resp.into_body() })
    }

    /// `POST /images/load?quiet=`: loads an image archive streamed from `body`.
    pub async fn load_images(&self, quiet: bool, body: Body) -> Result<JsonStream> {
        let q = if quiet { "quiet=1" } else { "quiet=0" };
        let mut req = self.build(Method::POST, "/images/load", Some(q), body)?;
        req.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/x-tar"));
        let resp = check(self.send(req, false).await?).await?;
        Ok(JsonStream::new(resp.into_body()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_stat_round_trips_as_docker_writes_it() {
        // What dockerd sends for a directory `/etc` (Go's os.ModeDir | 0755).
        let s = PathStat::from_header(
            "eyJuYW1lIjoiZXRjIiwic2l6ZSI6NDA5NiwibW9kZSI6MjE0NzQ4NDE0MSwibXRpbWUiOiIyMDI0LTAxLTAxVDAwOjAwOjAwWiIsImxpbmtUYXJnZXQiOiIifQ==",
        )
        .unwrap();
        assert_eq!(s.name, "etc");
        assert!(s.is_dir() && !s.is_symlink());
        assert_eq!(s.mode, go_mode::from_unix(0o040755));
        assert_eq!(PathStat::from_header(&s.to_header()).unwrap(), s);
        assert_eq!(go_mode::from_unix(0o120777), go_mode::SYMLINK | 0o777);
        assert_eq!(go_mode::from_unix(0o104755), go_mode::SETUID | 0o755);
    }
}
