//! Debian's stock 6.1 kernel, for scenarios that test the harness and the guest programs
//! without the XSC patches. Fetched by the harness itself with apt (`apt-get download` of
//! the package `linux-image-amd64` depends on, then `dpkg-deb -x`) into the cache, keyed by
//! the exact package and version so a kernel update in the archive is a new entry.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::stage::{self, Cancel, Job, Policy, Product, Stage, StageError, StageKey};
use crate::sys::cache::{Cache, KeyBuilder};
use crate::sys::lock::LockError;
use crate::sys::process::{self, Cmd, ProcessError};

/// The cache stage name.
pub(crate) const STAGE: &str = "stock-kernel";

/// The metapackage whose dependency names the current 6.1 image.
pub(crate) const META_PACKAGE: &str = "linux-image-amd64";

/// Why the stock kernel is not available.
#[derive(Debug, thiserror::Error)]
pub enum StockKernelError {
    /// apt or dpkg failed.
    #[error("cannot fetch the stock kernel")]
    Tool(#[from] ProcessError),
    /// apt knows no such package (no `apt-get update` yet?).
    #[error(
        "apt lists no dependency of {META_PACKAGE} that is a linux-image-6.1 package; run `apt-get update`"
    )]
    NoPackage,
    /// The package had no vmlinuz.
    #[error("{package} contains no /boot/vmlinuz-*")]
    NoImage {
        /// The package.
        package: String,
    },
    /// Cache i/o.
    #[error("stock kernel cache i/o on {path}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Error.
        #[source]
        source: std::io::Error,
    },
    /// Ctrl-C or SIGTERM during the fetch; nothing was stored.
    #[error("stock kernel fetch interrupted")]
    Interrupted,
}

impl StockKernelError {
    /// Fetch problems are the harness's (4): the product was never built here.
    pub fn exit_code(&self) -> crate::exit_code::ExitCode {
        match self {
            StockKernelError::Interrupted => crate::exit_code::ExitCode::Interrupted,
            _ => crate::exit_code::ExitCode::Harness,
        }
    }
}

impl From<StageError> for StockKernelError {
    fn from(e: StageError) -> StockKernelError {
        match e {
            StageError::Interrupted => StockKernelError::Interrupted,
            StageError::Io { path, source, .. }
            | StageError::Lock(LockError::Io { path, source, .. }) => {
                StockKernelError::Io { path, source }
            }
            StageError::Lock(LockError::Held { path, .. }) => StockKernelError::Io {
                path,
                source: std::io::ErrorKind::WouldBlock.into(),
            },
            // Never asked for: `--no-build` is decided by the runner before it calls here.
            StageError::NotCached { key, .. } => StockKernelError::Io {
                path: PathBuf::from(key),
                source: std::io::ErrorKind::NotFound.into(),
            },
        }
    }
}

/// A fetched stock kernel.
#[derive(Clone, Debug)]
pub struct StockKernel {
    /// The image.
    pub vmlinuz: PathBuf,
    /// Package name, e.g. `linux-image-6.1.0-57-amd64`.
    pub package: String,
    /// Package version.
    pub version: String,
    /// `uname -r` of the image.
    pub release: String,
}

/// `apt-cache depends linux-image-amd64` (pure).
pub(crate) fn depends_cmd() -> Cmd {
    Cmd::new(["apt-cache", "depends", META_PACKAGE])
        .env("LC_ALL", "C")
        .deadline(Duration::from_secs(60))
}

/// `apt-cache show --no-all-versions PACKAGE` (pure).
pub(crate) fn show_cmd(package: &str) -> Cmd {
    Cmd::new(["apt-cache", "show", "--no-all-versions", package])
        .env("LC_ALL", "C")
        .deadline(Duration::from_secs(60))
}

/// `apt-get download PACKAGE=VERSION` in `dir` (pure).
pub(crate) fn download_cmd(package: &str, version: &str, dir: &Path) -> Cmd {
    Cmd::new(["apt-get", "download", "-q", &format!("{package}={version}")])
        .cwd(dir)
        .deadline(Duration::from_secs(900))
}

/// `dpkg-deb -x DEB DIR` (pure).
pub(crate) fn extract_cmd(deb: &Path, dir: &Path) -> Cmd {
    Cmd::new(vec![
        std::ffi::OsString::from("dpkg-deb"),
        "-x".into(),
        deb.into(),
        dir.into(),
    ])
    .deadline(Duration::from_secs(300))
}

/// Picks the linux-image package from `apt-cache depends` output.
pub(crate) fn parse_depends(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .map(str::trim)
        .find(|p| p.starts_with("linux-image-6.1"))
        .map(str::to_string)
}

/// The `Version:` field of `apt-cache show` output.
pub(crate) fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .map(|v| v.trim().to_string())
}

/// Returns the cached stock kernel, fetching it on a miss. `fetched` is set when it was
/// downloaded now (the caller says so to the user).
pub async fn ensure(cache: &Cache) -> Result<(StockKernel, bool), StockKernelError> {
    ensure_cancellable(cache, &Cancel::never()).await
}

/// [`ensure`] through the stage framework: two processes missing the cache at once fetch
/// once (the second waits for the stage lock and finds the first one's entry).
pub(crate) async fn ensure_cancellable(
    cache: &Cache,
    cancel: &Cancel,
) -> Result<(StockKernel, bool), StockKernelError> {
    let deps = process::run(&depends_cmd(), None).await?;
    let package = parse_depends(&deps.stdout).ok_or(StockKernelError::NoPackage)?;
    let show = process::run(&show_cmd(&package), None).await?;
    let version = parse_version(&show.stdout).ok_or(StockKernelError::NoPackage)?;
    let key = stock_key(&package, &version);
    let stage = Stage {
        name: STAGE,
        key: &key,
        lock: "stock-kernel.lock",
        log_dir: None,
    };
    let mut quiet = |_: &super::progress::BuildEvent| {};
    let got = stage::ensure(cache, stage, Policy::default(), cancel, &mut quiet, |job| {
        fetch(cache, &package, &version, job)
    })
    .await?;
    let kernel = from_entry(&got.entry).ok_or_else(|| StockKernelError::NoImage {
        package: package.clone(),
    })?;
    Ok((kernel, got.built_now))
}

/// The key: the exact package and version (a kernel update in the archive is a new entry).
/// The inputs are recorded as `package` and `version`.
fn stock_key(package: &str, version: &str) -> StageKey {
    let mut k = KeyBuilder::new();
    k.str("recipe", "stock-kernel-v1")
        .str("package", package)
        .str("version", version);
    let mut key = StageKey::from(&k);
    // entry.json has always listed just these two.
    key.inputs = vec![
        ("package".into(), package.to_string()),
        ("version".into(), version.to_string()),
    ];
    key
}

/// Downloads (unless the .deb is cached) and extracts the image into the staging entry.
async fn fetch(
    cache: &Cache,
    package: &str,
    version: &str,
    job: Job<'_>,
) -> Result<Product, StockKernelError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StockKernelError::Io { path, source }
    };
    let staged = job.staged;
    let downloads = cache.downloads();
    std::fs::create_dir_all(&downloads).map_err(io(&downloads))?;
    let deb_name = format!("{package}_{}_amd64.deb", version.replace(':', "%3a"));
    let deb = downloads.join(&deb_name);
    if !deb.is_file() {
        // Download beside the entry being staged, then rename: parallel runs never see a
        // half-written .deb.
        process::run(&download_cmd(package, version, &staged), None).await?;
        std::fs::rename(staged.join(&deb_name), &deb).map_err(io(&deb))?;
    }
    let root = staged.join("root");
    process::run(&extract_cmd(&deb, &root), None).await?;
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .map_err(io(&boot))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .find(|n| n.starts_with("vmlinuz-"))
        .ok_or_else(|| StockKernelError::NoImage {
            package: package.to_string(),
        })?;
    let release = vmlinuz.trim_start_matches("vmlinuz-").to_string();
    std::fs::copy(boot.join(&vmlinuz), staged.join("vmlinuz")).map_err(io(&boot))?;
    // Only the image is needed: the modules tree is 400 MB the tests never load.
    std::fs::remove_dir_all(&root).map_err(io(&root))?;
    Ok(Product::new(
        ["vmlinuz"],
        [
            ("package", package.to_string()),
            ("version", version.to_string()),
            ("release", release),
            ("deb", deb.display().to_string()),
        ],
    ))
}

fn from_entry(e: &crate::sys::cache::Entry) -> Option<StockKernel> {
    Some(StockKernel {
        vmlinuz: e.artifact("vmlinuz").filter(|p| p.is_file())?,
        package: e.info.facts.get("package")?.clone(),
        version: e.info.facts.get("version")?.clone(),
        release: e.info.facts.get("release")?.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_apt_output() {
        let deps = "linux-image-amd64\n  Depends: linux-image-6.1.0-57-amd64\n";
        assert_eq!(
            parse_depends(deps).as_deref(),
            Some("linux-image-6.1.0-57-amd64")
        );
        assert_eq!(parse_depends("linux-image-amd64\n  Depends: foo\n"), None);
        assert_eq!(
            parse_version("Package: x\nVersion: 6.1.158-1\n").as_deref(),
            Some("6.1.158-1")
        );
    }

    #[test]
    fn the_key_is_the_package_and_version_only() {
        let a = stock_key("linux-image-6.1.0-57-amd64", "6.1.158-1");
        assert_eq!(a, stock_key("linux-image-6.1.0-57-amd64", "6.1.158-1"));
        assert_ne!(
            a.key,
            stock_key("linux-image-6.1.0-57-amd64", "6.1.158-2").key
        );
        // The key of the recipe before the stage framework: cached entries stay valid.
        let old = KeyBuilder::new()
            .str("recipe", "stock-kernel-v1")
            .str("package", "linux-image-6.1.0-57-amd64")
            .str("version", "6.1.158-1")
            .finish();
        assert_eq!(a.key, old);
    }

    #[test]
    fn apt_argv_is_pinned_to_the_version() {
        let cmd = download_cmd(
            "linux-image-6.1.0-57-amd64",
            "6.1.158-1",
            Path::new("/c/dl"),
        );
        assert_eq!(
            cmd.to_string(),
            "(cd /c/dl && apt-get download -q linux-image-6.1.0-57-amd64=6.1.158-1)"
        );
    }
}
