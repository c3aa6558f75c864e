//! One read pass per file: SHA-256 (for `SHA256SUMS`) and BLAKE2b-512 (the minisign `ED`
//! prehash) side by side, optionally copying the bytes to a destination on the way; plus the
//! `SHA256SUMS` text format and a small parallel map over files.
//!
//! Not here: signing (sign.rs) and deciding which files are listed (publish.rs).
//!
//! Why two threads per file: on SHA-NI CPUs SHA-256 runs at ~1 GB/s but BLAKE2b-512 at
//! ~500 MB/s (release-and-iso.md §4). Hashing both on one thread costs the *sum*; running
//! BLAKE2b on a helper thread fed with the same buffers costs the *slower* of the two, so a
//! hash+sign of a 2 GiB ISO is as fast as `b2sum` alone.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::thread;

use blake2::Digest as _;
use sha2::Digest as _;

/// Bytes per read. Large enough that the channel hand-off is noise, small enough for cache.
const CHUNK: usize = 2 << 20;
/// Buffers queued for the BLAKE2b thread; bounds memory at (DEPTH + 2) × CHUNK per file.
const DEPTH: usize = 4;

/// The digests of one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digests {
    /// SHA-256, as listed in `SHA256SUMS`.
    pub sha256: [u8; 32],
    /// BLAKE2b-512, what a prehashed minisign signature signs.
    pub blake2b: [u8; 64],
    /// Length in bytes.
    pub size: u64,
}

impl Digests {
    /// Lowercase hex SHA-256 (the `sha256sum` spelling).
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Digests of an in-memory buffer (metadata files).
    pub fn of_bytes(data: &[u8]) -> Self {
        let mut sha = sha2::Sha256::new();
        sha.update(data);
        let mut b2 = blake2::Blake2b512::new();
        b2.update(data);
        Digests {
            sha256: sha.finalize().into(),
            blake2b: b2.finalize().into(),
            size: data.len() as u64,
        }
    }
}

/// Hashes everything `reader` yields, writing it to `sink` too when given. An error from the
/// reader or the sink (ENOSPC included) is returned as is; the caller knows which path it was.
pub(crate) fn hash_stream(
    reader: &mut dyn Read,
    mut sink: Option<&mut dyn Write>,
) -> io::Result<Digests> {
    let (to_b2, queue) = mpsc::sync_channel::<(Vec<u8>, usize)>(DEPTH);
    let (give_back, recycled) = mpsc::channel::<Vec<u8>>();
    thread::scope(|scope| {
        let b2_thread = scope.spawn(move || {
            let mut b2 = blake2::Blake2b512::new();
            for (buf, len) in queue {
                b2.update(&buf[..len]);
                // The reader may have stopped on an error; a lost buffer is fine then.
                let _ = give_back.send(buf);
            }
            <[u8; 64]>::from(b2.finalize())
        });
        let mut sha = sha2::Sha256::new();
        let mut size = 0u64;
        let mut allocated = 0;
        let read_all = (|| -> io::Result<()> {
            loop {
                let mut buf = match recycled.try_recv() {
                    Ok(buf) => buf,
                    Err(_) if allocated < DEPTH + 2 => {
                        allocated += 1;
                        vec![0u8; CHUNK]
                    }
                    Err(_) => recycled
                        .recv()
                        .map_err(|_| io::Error::other("hash thread stopped"))?,
                };
                let n = read_full(reader, &mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                sha.update(&buf[..n]);
                if let Some(out) = sink.as_deref_mut() {
                    out.write_all(&buf[..n])?;
                }
                size += n as u64;
                to_b2
                    .send((buf, n))
                    .map_err(|_| io::Error::other("hash thread stopped"))?;
            }
        })();
        drop(to_b2);
        let blake2b = b2_thread
            .join()
            .map_err(|_| io::Error::other("hash thread panicked"))?;
        read_all?;
        Ok(Digests {
            sha256: sha.finalize().into(),
            blake2b,
            size,
        })
    })
}

/// Fills `buf` as far as the reader allows, so every chunk but the last is full.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Hashes one file.
pub fn hash_file(path: &Path) -> io::Result<Digests> {
    hash_stream(&mut File::open(path)?, None)
}

/// Which side of a copy failed, so the error can name the right path.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Opening or reading the source.
    Read(io::Error),
    /// Creating, writing or syncing the destination.
    Write(io::Error),
}

/// Copies `src` to a new file `dst` (never replacing one) and hashes the bytes on the way;
/// `dst` is fsynced before returning.
pub(crate) fn hash_copy(src: &Path, dst: &Path) -> Result<Digests, CopyError> {
    let mut input = File::open(src).map_err(CopyError::Read)?;
    let mut output = File::create_new(dst).map_err(CopyError::Write)?;
    // Tell apart which side failed without a second pass: wrap the sink and remember.
    let mut sink = ErrorTap {
        inner: &mut output,
        failed: false,
    };
    match hash_stream(&mut input, Some(&mut sink)) {
        Ok(d) => {
            output.sync_all().map_err(CopyError::Write)?;
            Ok(d)
        }
        Err(e) if sink.failed => Err(CopyError::Write(e)),
        Err(e) => Err(CopyError::Read(e)),
    }
}

struct ErrorTap<'a> {
    inner: &'a mut File,
    failed: bool,
}

impl Write for ErrorTap<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).inspect_err(|_| self.failed = true)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

/// How many files to hash at once: each file already keeps two cores busy.
pub(crate) fn default_jobs() -> usize {
    thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// Applies `f` to every item on up to `jobs` threads, keeping the input order.
pub(crate) fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::with_capacity(items.len()));
    thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let value = f(item);
                    done.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((i, value));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, value)| value).collect()
}

/// One line of `SHA256SUMS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SumEntry {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// File name, relative to the release directory (no `/`).
    pub name: String,
}

/// Renders GNU `sha256sum` untagged format: `hex␠␠name\n`, sorted by name in byte order
/// (`LC_ALL=C`), so `sha256sum -c SHA256SUMS` checks it and the file is reproducible.
pub(crate) fn render_sums(entries: &[SumEntry]) -> String {
    let mut sorted: Vec<&SumEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut out = String::new();
    for e in sorted {
        writeln!(out, "{}  {}", e.sha256, e.name).expect("writing to a String cannot fail");
    }
    out
}

/// Parses `SHA256SUMS`; accepts the text (`␠␠`) and binary (`␠*`) markers, rejects anything
/// that could name a file outside the directory. Errors name the 1-based line.
pub(crate) fn parse_sums(text: &str) -> Result<Vec<SumEntry>, String> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let (hash, rest) = line
            .split_at_checked(64)
            .ok_or_else(|| format!("line {lineno} is too short"))?;
        if !hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(format!(
                "line {lineno} does not start with a lowercase sha256"
            ));
        }
        let name = rest
            .strip_prefix("  ")
            .or_else(|| rest.strip_prefix(" *"))
            .ok_or_else(|| format!("line {lineno} lacks the two-character separator"))?;
        // A file of the release directory or of one of its repositories (`apt/…`,
        // `rpm/repodata/…`): a relative path that cannot leave the directory.
        if name.is_empty()
            || name.contains('\\')
            || name
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(format!(
                "line {lineno} names {name:?}, which is not a relative path inside the release"
            ));
        }
        entries.push(SumEntry {
            sha256: hash.to_string(),
            name: name.to_string(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pass_digests_match_the_reference_hashers() {
        // Not a multiple of CHUNK, so the short last read is exercised.
        let data: Vec<u8> = (0..(3 * CHUNK + 12345))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let got = hash_stream(&mut &data[..], None).unwrap();
        assert_eq!(got, Digests::of_bytes(&data));
        assert_eq!(got.size, data.len() as u64);
        // Known answer, so a wrong hash on both sides cannot agree by accident.
        let empty = hash_stream(&mut &b""[..], None).unwrap();
        assert_eq!(
            empty.sha256_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn copy_writes_the_same_bytes_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"hello world").unwrap();
        let dst = dir.path().join("dst");
        let d = hash_copy(&src, &dst).unwrap();
        assert_eq!(std::fs::read(&dst).unwrap(), b"hello world");
        assert_eq!(d, Digests::of_bytes(b"hello world"));
        assert!(matches!(hash_copy(&src, &dst), Err(CopyError::Write(_))));
        assert!(matches!(
            hash_copy(&dir.path().join("nope"), &dir.path().join("x")),
            Err(CopyError::Read(_))
        ));
    }

    #[test]
    fn sums_round_trip_sorted_and_reject_paths() {
        let a = SumEntry {
            sha256: "a".repeat(64),
            name: "b.iso".into(),
        };
        let b = SumEntry {
            sha256: "b".repeat(64),
            name: "B.iso".into(),
        };
        let text = render_sums(&[a.clone(), b.clone()]);
        assert_eq!(
            text,
            format!("{}  B.iso\n{}  b.iso\n", "b".repeat(64), "a".repeat(64))
        );
        assert_eq!(parse_sums(&text).unwrap(), vec![b, a]);
        assert!(parse_sums(&format!("{}  ../etc/passwd\n", "a".repeat(64))).is_err());
        assert!(parse_sums(&format!("{}  /etc/passwd\n", "a".repeat(64))).is_err());
        assert!(parse_sums(&format!("{}  apt/../../x\n", "a".repeat(64))).is_err());
        assert!(parse_sums(&format!("{}  rpm//x\n", "a".repeat(64))).is_err());
        let sub = parse_sums(&format!("{}  rpm/repodata/repomd.xml\n", "a".repeat(64))).unwrap();
        assert_eq!(sub[0].name, "rpm/repodata/repomd.xml");
        assert!(parse_sums(&format!("{}\tx\n", "a".repeat(64))).is_err());
        assert!(parse_sums("abc  x\n").is_err());
    }

    #[test]
    fn parallel_map_keeps_order() {
        let items: Vec<u32> = (0..50).collect();
        assert_eq!(
            parallel_map(&items, 3, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(parallel_map(&Vec::<u32>::new(), 3, |x| *x).is_empty());
    }
}
