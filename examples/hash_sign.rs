//! Benchmark driver for `benches/hash_sign.sh`: hashes one file the way a release does
//! (SHA-256 + BLAKE2b-512 in one read pass) and signs the digest with a throwaway key.
//! Prints `sha256  blake2b-hex-prefix  seconds` on stdout.

// A benchmark driver prints its numbers (clippy.toml rules are for src/).
#![allow(clippy::disallowed_macros)]

use std::path::PathBuf;
use std::time::Instant;

use xsc_release::{PasswordSource, Protection, generate, hash_file, load_secret_key, minisig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = PathBuf::from(std::env::args_os().nth(1).ok_or("usage: hash_sign FILE")?);
    let keydir = std::env::temp_dir().join(format!("xsc-bench-key-{}", std::process::id()));
    let key = generate(&keydir, &Protection::Unencrypted)?;
    let key = load_secret_key(&key.secret, &PasswordSource::Prompt);
    let _ = std::fs::remove_dir_all(&keydir);
    let key = key?;
    let start = Instant::now();
    let digests = hash_file(&file)?;
    let sig = minisig(
        &key,
        &digests.blake2b,
        &format!("file:bench\tsha256:{}", digests.sha256_hex()),
    );
    let secs = start.elapsed().as_secs_f64();
    assert!(sig.lines().count() == 4);
    println!(
        "{}  {}  {secs:.3}",
        digests.sha256_hex(),
        &hex::encode(digests.blake2b)[..16]
    );
    Ok(())
}
