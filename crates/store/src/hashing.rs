//! Checksums computed while the data streams past: MD5 for Glance's `checksum` field (clients
//! verify it on download) and the configurable `hashing_algorithm` for `os_hash_value`.

use md5::{Digest, Md5};
use sha2::{Sha224, Sha256, Sha384, Sha512};

/// The algorithm behind `os_hash_algo` (`[DEFAULT] hashing_algorithm`, Glance's default sha512).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlgo {
    /// MD5.
    Md5,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512, Glance's default.
    #[default]
    Sha512,
}

impl HashAlgo {
    /// Parses a hashlib name as written in glance-api.conf.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "md5" => Ok(Self::Md5),
            "sha224" => Ok(Self::Sha224),
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            other => Err(format!(
                "hashing algorithm {other:?} is not supported; use sha512 (the default), sha384, sha256, sha224 or md5"
            )),
        }
    }

    /// The name stored in `os_hash_algo`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha224 => "sha224",
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// A fresh running hash.
    pub fn hasher(self) -> Hasher {
        match self {
            Self::Md5 => Hasher::Md5(Md5::new()),
            Self::Sha224 => Hasher::Sha224(Sha224::new()),
            Self::Sha256 => Hasher::Sha256(Sha256::new()),
            Self::Sha384 => Hasher::Sha384(Sha384::new()),
            Self::Sha512 => Hasher::Sha512(Box::new(Sha512::new())),
        }
    }
}

/// A running hash of one of the supported algorithms.
#[derive(Debug, Clone)]
pub enum Hasher {
    /// MD5.
    Md5(Md5),
    /// SHA-224.
    Sha224(Sha224),
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-384.
    Sha384(Sha384),
    /// SHA-512.
    Sha512(Box<Sha512>),
}

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Sha224(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    /// The lowercase hex digest.
    pub fn finish_hex(self) -> String {
        match self {
            Self::Md5(h) => hex(&h.finalize()),
            Self::Sha224(h) => hex(&h.finalize()),
            Self::Sha256(h) => hex(&h.finalize()),
            Self::Sha384(h) => hex(&h.finalize()),
            Self::Sha512(h) => hex(&h.finalize()),
        }
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let mut h = HashAlgo::Md5.hasher();
        h.update(b"abc");
        assert_eq!(h.finish_hex(), "900150983cd24fb0d6963f7d28e17f72");
        let mut h = HashAlgo::Sha512.hasher();
        h.update(b"ab");
        h.update(b"c");
        assert!(h.finish_hex().starts_with("ddaf35a193617aba"));
        let mut h = HashAlgo::Sha256.hasher();
        h.update(b"abc");
        assert!(h.finish_hex().starts_with("ba7816bf8f01cfea"));
    }

    #[test]
    fn names_parse_and_unknown_ones_are_refused() {
        for a in ["md5", "sha224", "sha256", "sha384", "SHA512"] {
            let algo = HashAlgo::parse(a).unwrap();
            assert_eq!(algo.name(), a.to_ascii_lowercase());
        }
        assert!(HashAlgo::parse("blake2b").unwrap_err().contains("sha512"));
        assert_eq!(HashAlgo::default(), HashAlgo::Sha512);
    }
}
