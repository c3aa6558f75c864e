//! Where published releases live besides this clone: an S3-compatible bucket (object_store),
//! a directory reached by rsync over SSH, or (read-only, for `verify`) an https URL. One
//! small set of operations on `/`-separated paths under the target's root: list a
//! directory's files, fetch a file, upload files. The order of uploads and the rules against
//! overwriting live in upload.rs; this file only moves bytes.
//!
//! Credentials never come from xsc.toml: S3 reads the `AWS_*` environment (object_store's
//! `from_env`: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
//! `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`), rsync uses ssh's own (agent, `~/.ssh/config`,
//! `RSYNC_RSH`), https trusts the system roots or `SSL_CERT_FILE`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use object_store::ObjectStore;
use object_store::path::Path as ObjPath;
use tokio::io::AsyncWriteExt as _;

use super::error::ReleaseError;
use crate::input::config::PublishTarget;
use crate::sys::process::{Cmd, run, run_logged_capture};

/// A listing, a small fetch: these finish in seconds or something is wrong.
const SHORT: Duration = Duration::from_secs(120);
/// An upload or download of release artifacts (ISOs are large).
const LONG: Duration = Duration::from_secs(4 * 3600);

/// A publish target or a published URL, ready to use.
#[derive(Debug)]
pub(crate) enum Remote {
    /// An object store (S3 bucket or https server) with keys under `prefix`.
    Store {
        /// The client.
        store: Arc<dyn ObjectStore>,
        /// Key prefix ("" or "a/b").
        prefix: String,
        /// Whether the store can list (https cannot).
        can_list: bool,
        /// For messages: `s3://bucket/prefix` or the https URL.
        url: String,
    },
    /// rsync over SSH to `[user@]host:/path`.
    Rsync {
        /// The destination root.
        destination: String,
        /// Where every rsync child's command line and output go (appended).
        log: PathBuf,
    },
}

fn remote_err(url: &str, action: &str, detail: impl ToString) -> ReleaseError {
    ReleaseError::Remote {
        url: url.to_string(),
        action: action.to_string(),
        detail: detail.to_string(),
    }
}

impl Remote {
    /// The client for a configured `[publish.<name>]` target; rsync children log to `log`.
    pub(crate) fn for_target(target: &PublishTarget, log: &Path) -> Result<Remote, ReleaseError> {
        match target {
            PublishTarget::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => s3(bucket, prefix, endpoint.as_deref(), region.as_deref()),
            PublishTarget::Rsync { destination } => Ok(Remote::Rsync {
                destination: destination.trim_end_matches('/').to_string(),
                log: log.to_path_buf(),
            }),
        }
    }

    /// The client for `s3://bucket/prefix` or `https://host/path` (what `verify` accepts).
    pub(crate) fn for_url(url: &str) -> Result<Remote, ReleaseError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            return s3(bucket, prefix.trim_matches('/'), None, None);
        }
        if url.starts_with("https://") || url.starts_with("http://") {
            let base = url.trim_end_matches('/');
            let store = object_store::http::HttpBuilder::new()
                .with_url(base)
                .with_client_options(
                    object_store::ClientOptions::new().with_allow_http(url.starts_with("http://")),
                )
                .build()
                .map_err(|e| remote_err(url, "open", e))?;
            return Ok(Remote::Store {
                store: Arc::new(store),
                prefix: String::new(),
                can_list: false,
                url: base.to_string(),
            });
        }
        Err(ReleaseError::BadField {
            field: "URL",
            value: url.to_string(),
            expected: "s3://bucket/path or https://host/path",
        })
    }

    /// How `rel` under this remote is named for people.
    pub(crate) fn url_of(&self, rel: &str) -> String {
        let root = match self {
            Remote::Store { url, .. } => url.as_str(),
            Remote::Rsync { destination, .. } => destination.as_str(),
        };
        if rel.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{rel}")
        }
    }

    fn key(prefix: &str, rel: &str) -> ObjPath {
        if prefix.is_empty() {
            ObjPath::from(rel)
        } else {
            ObjPath::from(format!("{prefix}/{rel}"))
        }
    }

    /// The files under directory `dir`, recursively, as `/`-separated paths relative to it
    /// (`apt/Packages`), with their sizes; `None` when this remote cannot list (https). A
    /// directory that does not exist is empty.
    pub(crate) async fn list(
        &self,
        dir: &str,
    ) -> Result<Option<BTreeMap<String, u64>>, ReleaseError> {
        match self {
            Remote::Store {
                can_list: false, ..
            } => Ok(None),
            Remote::Store { store, prefix, .. } => {
                let key = Remote::key(prefix, dir);
                let under = format!("{}/", key.as_ref());
                let mut out = BTreeMap::new();
                let mut listing = store.list(Some(&key));
                while let Some(o) = listing.next().await {
                    let o = o.map_err(|e| remote_err(&self.url_of(dir), "list", e))?;
                    if let Some(rel) = o.location.as_ref().strip_prefix(&under) {
                        out.insert(rel.to_string(), o.size);
                    }
                }
                Ok(Some(out))
            }
            Remote::Rsync { destination, log } => {
                let cmd = rsync_list(destination, dir);
                match run_logged_capture(&cmd, log).await {
                    Ok(out) => Ok(Some(parse_rsync_list(&out.stdout))),
                    Err(e)
                        if e.tail()
                            .is_some_and(|t| t.contains("No such file or directory")) =>
                    {
                        Ok(Some(BTreeMap::new()))
                    }
                    Err(e) => Err(remote_err(&self.url_of(dir), "list", e)),
                }
            }
        }
    }

    /// Downloads `rel` to `to`; `false` when it does not exist.
    pub(crate) async fn get_to(&self, rel: &str, to: &Path) -> Result<bool, ReleaseError> {
        let url = self.url_of(rel);
        match self {
            Remote::Store { store, prefix, .. } => {
                let got = match store.get(&Remote::key(prefix, rel)).await {
                    Ok(g) => g,
                    Err(object_store::Error::NotFound { .. }) => return Ok(false),
                    Err(e) => return Err(remote_err(&url, "download", e)),
                };
                let mut file = tokio::fs::File::create(to)
                    .await
                    .map_err(ReleaseError::io("write", to))?;
                let mut stream = got.into_stream();
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| remote_err(&url, "download", e))?;
                    file.write_all(&chunk)
                        .await
                        .map_err(ReleaseError::io("write", to))?;
                }
                file.sync_all()
                    .await
                    .map_err(ReleaseError::io("write", to))?;
                Ok(true)
            }
            Remote::Rsync { destination, log } => {
                match run(&rsync_get(destination, rel, to), Some(log)).await {
                    Ok(_) => Ok(true),
                    Err(e)
                        if e.tail()
                            .is_some_and(|t| t.contains("No such file or directory")) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(remote_err(&url, "download", e)),
                }
            }
        }
    }

    /// The SHA-256 (hex) of the published file `rel`, read back in full: what a resumed
    /// upload compares with the local SHA256SUMS, since a size or an ETag says nothing about
    /// content (a multipart ETag is no digest at all). `None` when it does not exist. rsync
    /// fetches it into `scratch` first (a plain rsync server runs no other command).
    pub(crate) async fn sha256(
        &self,
        rel: &str,
        scratch: &Path,
    ) -> Result<Option<String>, ReleaseError> {
        use sha2::Digest as _;
        let url = self.url_of(rel);
        let mut h = sha2::Sha256::new();
        match self {
            Remote::Store { store, prefix, .. } => {
                let got = match store.get(&Remote::key(prefix, rel)).await {
                    Ok(g) => g,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(remote_err(&url, "download", e)),
                };
                let mut stream = got.into_stream();
                while let Some(chunk) = stream.next().await {
                    h.update(chunk.map_err(|e| remote_err(&url, "download", e))?);
                }
            }
            Remote::Rsync { .. } => {
                let copy = scratch.join("remote-copy");
                if !self.get_to(rel, &copy).await? {
                    return Ok(None);
                }
                let d =
                    super::checksums::hash_file(&copy).map_err(ReleaseError::io("read", &copy))?;
                let _ = std::fs::remove_file(&copy);
                return Ok(Some(d.sha256_hex()));
            }
        }
        Ok(Some(hex::encode(<[u8; 32]>::from(h.finalize()))))
    }

    /// Uploads the local files `base/<rel>` to `dir/<rel>` (directories created as needed),
    /// each appearing under
    /// its final name only when complete (an S3 object; rsync's temp file + rename). An
    /// existing file of the same name is replaced: upload.rs decides what may be.
    pub(crate) async fn put(
        &self,
        dir: &str,
        base: &Path,
        rels: &[String],
    ) -> Result<(), ReleaseError> {
        if rels.is_empty() {
            return Ok(());
        }
        match self {
            Remote::Store {
                can_list: false,
                url,
                ..
            } => Err(remote_err(url, "upload to", "an https URL is read-only")),
            Remote::Store { store, prefix, .. } => {
                for name in rels {
                    let file = &base.join(name);
                    let rel = if dir.is_empty() {
                        name.clone()
                    } else {
                        format!("{dir}/{name}")
                    };
                    let url = self.url_of(&rel);
                    // Multipart above 10 MiB, a single PUT below: the object exists only
                    // once the upload completed.
                    let mut w = object_store::buffered::BufWriter::new(
                        Arc::clone(store),
                        Remote::key(prefix, &rel),
                    );
                    let mut src = tokio::fs::File::open(file)
                        .await
                        .map_err(ReleaseError::io("read", file))?;
                    tokio::io::copy(&mut src, &mut w)
                        .await
                        .map_err(|e| remote_err(&url, "upload", e))?;
                    w.shutdown()
                        .await
                        .map_err(|e| remote_err(&url, "upload", e))?;
                }
                Ok(())
            }
            Remote::Rsync { destination, log } => {
                run(&rsync_put(destination, dir, base, rels), Some(log))
                    .await
                    .map(|_| ())
                    .map_err(|e| remote_err(&self.url_of(dir), "upload", e))
            }
        }
    }
}

fn s3(
    bucket: &str,
    prefix: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
) -> Result<Remote, ReleaseError> {
    let url = if prefix.is_empty() {
        format!("s3://{bucket}")
    } else {
        format!("s3://{bucket}/{prefix}")
    };
    let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Some(e) = endpoint {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    if let Some(r) = region {
        b = b.with_region(r);
    }
    let store = b.build().map_err(|e| remote_err(&url, "open", e))?;
    Ok(Remote::Store {
        store: Arc::new(store),
        prefix: prefix.to_string(),
        can_list: true,
        url,
    })
}

fn join(destination: &str, rel: &str) -> String {
    if rel.is_empty() {
        destination.to_string()
    } else {
        format!("{destination}/{rel}")
    }
}

/// `rsync --list-only` of one remote directory's tree (trailing `/`: its contents).
pub(crate) fn rsync_list(destination: &str, dir: &str) -> Cmd {
    Cmd::new([
        "rsync".to_string(),
        "--list-only".into(),
        "--recursive".into(),
        "--no-motd".into(),
        "--no-human-readable".into(),
        "--".into(),
        format!("{}/", join(destination, dir)),
    ])
    .deadline(SHORT)
}

/// Fetch one remote file.
pub(crate) fn rsync_get(destination: &str, rel: &str, to: &Path) -> Cmd {
    let argv: Vec<std::ffi::OsString> = vec![
        "rsync".into(),
        "--no-motd".into(),
        "--".into(),
        join(destination, rel).into(),
        to.into(),
    ];
    Cmd::new(argv).deadline(LONG)
}

/// Upload files into a remote directory: `--mkpath` creates it, world-readable for a web
/// server. upload.rs already compared content and names only files to send, so
/// `--ignore-times` stops rsync's quick check (size and time) from skipping a file that
/// differs in content. rsync writes each file under a temporary name and renames it when
/// complete. `--relative` with `base/./rel` recreates each `rel`'s directories under `dir`,
/// so one connection sends a whole phase.
pub(crate) fn rsync_put(destination: &str, dir: &str, base: &Path, rels: &[String]) -> Cmd {
    let mut argv: Vec<std::ffi::OsString> = [
        "rsync",
        "--times",
        "--ignore-times",
        "--relative",
        "--mkpath",
        "--no-motd",
        "--perms",
        "--chmod=D755,F644",
        "--",
    ]
    .map(Into::into)
    .to_vec();
    argv.extend(rels.iter().map(|r| base.join(".").join(r).into_os_string()));
    argv.push(format!("{}/", join(destination, dir)).into());
    Cmd::new(argv).deadline(LONG)
}

/// The regular files of an `rsync --list-only --no-human-readable` listing:
/// `-rw-r--r--  1234 2026/12/05 21:00:00 name`.
pub(crate) fn parse_rsync_list(out: &str) -> BTreeMap<String, u64> {
    out.lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let _perms = words.next()?;
            let size = words.next()?.replace(',', "").parse().ok()?;
            let (_date, _time) = (words.next()?, words.next()?);
            let name: Vec<&str> = words.collect();
            (!name.is_empty()).then(|| (name.join(" "), size))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsync_command_lines_are_data() {
        let put = rsync_put(
            "root@h:/srv/x",
            "candidates/c1",
            Path::new("/l"),
            &["a.iso".to_string(), "apt/Release".to_string()],
        );
        assert_eq!(
            put.to_string(),
            "rsync --times --ignore-times --relative --mkpath --no-motd --perms --chmod=D755,F644 -- /l/./a.iso /l/./apt/Release root@h:/srv/x/candidates/c1/"
        );
        assert_eq!(
            rsync_list("h:/p", "").to_string(),
            "rsync --list-only --recursive --no-motd --no-human-readable -- h:/p/"
        );
        assert_eq!(
            rsync_get("h:/p", "latest", Path::new("/t/l")).to_string(),
            "rsync --no-motd -- h:/p/latest /t/l"
        );
        assert!(put.deadline.is_some());
    }

    #[test]
    fn rsync_listings_give_files_and_sizes() {
        let out = "drwxr-xr-x          4,096 2026/12/05 21:00:00 .\n\
                   -rw-r--r--      1,234,567 2026/12/05 21:00:01 xsc.iso\n\
                   -rw-r--r--             12 2026/12/05 21:00:02 SHA256SUMS\n\
                   drwxr-xr-x          4,096 2026/12/05 21:00:00 candidates\n";
        let got = parse_rsync_list(out);
        assert_eq!(
            got.into_iter().collect::<Vec<_>>(),
            [
                ("SHA256SUMS".to_string(), 12),
                ("xsc.iso".to_string(), 1_234_567)
            ]
        );
    }

    #[test]
    fn urls_name_s3_and_https_and_nothing_else() {
        let r = Remote::for_url("https://127.0.0.1:1/rel/").unwrap();
        assert_eq!(r.url_of("1.0.0"), "https://127.0.0.1:1/rel/1.0.0");
        let r = Remote::for_url("s3://bucket/a/b/").unwrap();
        assert_eq!(r.url_of("latest"), "s3://bucket/a/b/latest");
        assert!(Remote::for_url("ftp://x/y").is_err());
    }
}
