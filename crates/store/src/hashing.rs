//! Checksums computed while the data streams past: MD5 for Glance's `checksum` field (clients
//! verify it on download) and the configurable `hashing_algorithm` for `os_hash_value`.

use md5::{Digest, Md5};
use openssl::hash::MessageDigest;
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

    /// Length of the digest in hexadecimal digits.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha224 => 56,
            Self::Sha256 => 64,
            Self::Sha384 => 96,
            Self::Sha512 => 128,
        }
    }

    /// A fresh running hash: OpenSSL's digest where its library offers the algorithm, else
    /// the pure-Rust one (an OpenSSL in FIPS mode refuses MD5).
    pub fn hasher(self) -> Hasher {
        let md = match self {
            Self::Md5 => MessageDigest::md5(),
            Self::Sha224 => MessageDigest::sha224(),
            Self::Sha256 => MessageDigest::sha256(),
            Self::Sha384 => MessageDigest::sha384(),
            Self::Sha512 => MessageDigest::sha512(),
        };
        match openssl::hash::Hasher::new(md) {
            Ok(h) => Hasher(Imp::Ssl(h)),
            Err(_) => Hasher(Imp::Rust(Box::new(self.rust_hasher()))),
        }
    }

    fn rust_hasher(self) -> RustHasher {
        match self {
            Self::Md5 => RustHasher::Md5(Md5::new()),
            Self::Sha224 => RustHasher::Sha224(Sha224::new()),
            Self::Sha256 => RustHasher::Sha256(Sha256::new()),
            Self::Sha384 => RustHasher::Sha384(Sha384::new()),
            Self::Sha512 => RustHasher::Sha512(Sha512::new()),
        }
    }
}

/// A running hash of one of the supported algorithms.
///
/// OpenSSL's digests are used first: on this project's x86_64 hosts its assembly hashes
/// MD5 about 23% and SHA-512 about 39% faster than the RustCrypto crates (with their `asm`
/// features), and an upload's CPU is mostly these two hashes (docs/benchmarks.md).
pub struct Hasher(Imp);

enum Imp {
    Ssl(openssl::hash::Hasher),
    Rust(Box<RustHasher>),
    /// OpenSSL reported an error part-way; the digest can no longer be trusted.
    Failed(String),
}

enum RustHasher {
    Md5(Md5),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Imp::Ssl(_) => "Hasher(openssl)",
            Imp::Rust(_) => "Hasher(rust)",
            Imp::Failed(_) => "Hasher(failed)",
        })
    }
}

/// A digest that could not be computed (OpenSSL failed part-way; never seen in practice).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hashing failed: {0}")]
pub struct HashError(pub String);

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Imp::Ssl(h) => {
                if let Err(e) = h.update(data) {
                    self.0 = Imp::Failed(e.to_string());
                }
            }
            Imp::Rust(h) => match &mut **h {
                RustHasher::Md5(h) => h.update(data),
                RustHasher::Sha224(h) => h.update(data),
                RustHasher::Sha256(h) => h.update(data),
                RustHasher::Sha384(h) => h.update(data),
                RustHasher::Sha512(h) => h.update(data),
            },
            Imp::Failed(_) => {}
        }
    }

    /// The lowercase hex digest.
    pub fn finish_hex(self) -> Result<String, HashError> {
        match self.0 {
            Imp::Ssl(mut h) => h
                .finish()
                .map(|d| hex(&d))
                .map_err(|e| HashError(e.to_string())),
            Imp::Rust(h) => Ok(match *h {
                RustHasher::Md5(h) => hex(&h.finalize()),
                RustHasher::Sha224(h) => hex(&h.finalize()),
                RustHasher::Sha256(h) => hex(&h.finalize()),
                RustHasher::Sha384(h) => hex(&h.finalize()),
                RustHasher::Sha512(h) => hex(&h.finalize()),
            }),
            Imp::Failed(why) => Err(HashError(why)),
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

    /// Both implementations give the published digests of "abc" for every algorithm, fed
    /// whole and in pieces.
    #[test]
    fn known_digests_from_both_implementations() {
        let cases = [
            (HashAlgo::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (
                HashAlgo::Sha224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                HashAlgo::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                HashAlgo::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                HashAlgo::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (algo, want) in cases {
            let ssl = algo.hasher();
            assert!(
                matches!(ssl.0, Imp::Ssl(_)),
                "{algo:?}: OpenSSL offers it here"
            );
            for mut h in [ssl, Hasher(Imp::Rust(Box::new(algo.rust_hasher())))] {
                h.update(b"a");
                h.update(b"");
                h.update(b"bc");
                assert_eq!(h.finish_hex().unwrap(), want, "{algo:?}");
            }
        }
    }

    /// The two implementations agree on bytes of every length around the block sizes.
    #[test]
    fn implementations_agree() {
        let data: Vec<u8> = (0..4099u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for algo in [HashAlgo::Md5, HashAlgo::Sha256, HashAlgo::Sha512] {
            for len in [0, 1, 55, 56, 63, 64, 111, 112, 127, 128, 129, 4099] {
                let mut a = algo.hasher();
                let mut b = Hasher(Imp::Rust(Box::new(algo.rust_hasher())));
                a.update(&data[..len]);
                b.update(&data[..len]);
                assert_eq!(
                    a.finish_hex().unwrap(),
                    b.finish_hex().unwrap(),
                    "{algo:?} {len}"
                );
            }
        }
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
