//! Content digests (`sha256:<hex>`), the names of every blob in the content store.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use crate::Error;

/// A parsed, validated content digest. Only sha256 is supported, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest { hex: hex::encode(sha2::Sha256::digest(data)) }
    }

    /// Wraps a finished hasher.
    pub fn from_hasher(h: sha2::Sha256) -> Digest {
        Digest { hex: hex::encode(h.finalize()) }
    }

    /// Builds a digest from its 64-hex-digit encoded part.
    pub fn from_hex(hex: &str) -> Result<Digest, Error> {
        if crate::id::is_full_id(hex) {
            Ok(Digest { hex: hex.to_owned() })
        } else {
            Err(Error::DigestFormat(hex.to_owned()))
        }
    }

    /// The encoded part, without `sha256:`.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The algorithm, always `sha256`.
    pub fn algorithm(&self) -> &'static str {
        "sha256"
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("sha256", hex)) => Digest::from_hex(hex),
            Some((alg, _)) => Err(Error::DigestAlgorithm(alg.to_owned())),
            None => Err(Error::DigestFormat(s.to_owned())),
        }
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let d = Digest::of(b"");
        assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("md5:abc".parse::<Digest>().is_err());
        assert!("sha256:xyz".parse::<Digest>().is_err());
        assert!("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855".parse::<Digest>().is_err());
    }
}
