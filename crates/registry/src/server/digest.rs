//! Content digests as the registry server takes them: `sha256:` and `sha512:`, the two
//! algorithms the OCI image spec registers. The rest of berth stores sha256 only
//! ([`berth_base::Digest`]), but a registry must hold what clients push, and the
//! distribution spec's `digest-algorithm` parameter and conformance suite ask for sha512.
//!
//! On disk an algorithm has its own directories (`blobs/sha512/…`); a link file is named by
//! the encoded part alone, whose length tells the algorithm (64 or 128 hex digits).

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `sha256`, the canonical one.
    Sha256,
    /// `sha512`.
    Sha512,
}

impl Algorithm {
    /// Every algorithm, for walking the storage.
    pub const ALL: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Sha512];

    /// Its name, as in `sha256:…`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// How many hex digits its encoded part has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A fresh hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Digest {
        let mut h = self.hasher();
        h.update(data);
        h.finish()
    }
}

impl FromStr for Algorithm {
    type Err = berth_base::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other => Err(berth_base::Error::DigestAlgorithm(other.to_owned())),
        }
    }
}

/// A running hash of one of the [`Algorithm`]s.
#[derive(Clone)]
pub enum Hasher {
    /// sha256.
    Sha256(sha2::Sha256),
    /// sha512.
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// Hashes `data` in.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The digest of everything hashed in.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest { algorithm: Algorithm::Sha256, hex: hex::encode(h.finalize()) },
            Hasher::Sha512(h) => Digest { algorithm: Algorithm::Sha512, hex: hex::encode(h.finalize()) },
        }
    }
}

impl std::io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A parsed, validated digest: an algorithm and its lower-case hex encoding.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// The sha256 digest of `data` (the canonical algorithm).
    pub fn of(data: &[u8]) -> Digest {
        Algorithm::Sha256.digest(data)
    }

    /// Builds a digest from its encoded part alone, the algorithm told by its length (how
    /// link files are named on disk).
    pub fn from_hex(hex: &str) -> Result<Digest, berth_base::Error> {
        let algorithm = Algorithm::ALL
            .into_iter()
            .find(|a| a.hex_len() == hex.len())
            .ok_or_else(|| berth_base::Error::DigestFormat(hex.to_owned()))?;
        Digest::new(algorithm, hex)
    }

    fn new(algorithm: Algorithm, hex: &str) -> Result<Digest, berth_base::Error> {
        let lower_hex = hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if hex.len() != algorithm.hex_len() || !lower_hex {
            return Err(berth_base::Error::DigestFormat(format!("{}:{hex}", algorithm.as_str())));
        }
        Ok(Digest { algorithm, hex: hex.to_owned() })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded part, without `<algorithm>:`.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = berth_base::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or_else(|| berth_base::Error::DigestFormat(s.to_owned()))?;
        Digest::new(alg.parse()?, hex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_parse_print_and_hash() {
        let d = Digest::of(b"");
        assert_eq!(d.to_string(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let e = Algorithm::Sha512.digest(b"{}");
        assert_eq!(
            e.to_string(),
            "sha512:27c74670adb75075fad058d5ceaf7b20c4e7786c83bae8a32f626f9782af34c9\
             a33c2046ef60fd2a7878d378e29fec851806bbd9a67878f3a9f1cda4830763fd"
        );
        for x in [&d, &e] {
            assert_eq!(x.to_string().parse::<Digest>().unwrap(), *x);
            assert_eq!(Digest::from_hex(x.hex()).unwrap(), *x);
        }
        assert!("md5:abc".parse::<Digest>().is_err());
        assert!("sha256:xyz".parse::<Digest>().is_err());
        assert!(format!("sha512:{}", d.hex()).parse::<Digest>().is_err(), "a sha256-long sha512");
        assert!(d.to_string().to_uppercase().replace("SHA256", "sha256").parse::<Digest>().is_err());
        assert!(Digest::from_hex("abc").is_err());
    }
}
