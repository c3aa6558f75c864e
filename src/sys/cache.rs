//! The content-addressed stage cache: `<cache>/stages/<stage>/<key>/`, where the key is a
//! SHA-256 over every input of the stage (sources, patches, configs, toolchain, recipe).
//!
//! An entry is complete only once its `entry.json` exists; it is built under a temporary
//! name and renamed into place, so an interrupted build never leaves a half entry that a
//! later run would trust. Kept work trees for incremental rebuilds live in `<cache>/work/`.
//! The cache is shared by every clone and CI run on a machine (see docs/cache.md).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Version of the cache layout; bumping it invalidates every key.
const LAYOUT: &str = "xsc-cache-v1";

/// Builds a cache key from labelled inputs. Labels keep `a`+`bc` apart from `ab`+`c`.
#[derive(Clone)]
pub(crate) struct KeyBuilder {
    hasher: Sha256,
    inputs: Vec<(String, String)>,
}

impl Default for KeyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl KeyBuilder {
    /// A key for the current cache layout.
    pub(crate) fn new() -> Self {
        let mut k = KeyBuilder {
            hasher: Sha256::new(),
            inputs: Vec::new(),
        };
        k.str("layout", LAYOUT);
        k
    }

    /// Adds a labelled string input.
    pub(crate) fn str(&mut self, label: &str, value: &str) -> &mut Self {
        self.hasher.update((label.len() as u64).to_le_bytes());
        self.hasher.update(label.as_bytes());
        self.hasher.update((value.len() as u64).to_le_bytes());
        self.hasher.update(value.as_bytes());
        self.inputs.push((label.to_string(), value.to_string()));
        self
    }

    /// Adds a file's contents (by digest).
    pub(crate) fn file(&mut self, label: &str, path: &Path) -> std::io::Result<&mut Self> {
        let digest = sha256_file(path)?;
        Ok(self.str(label, &digest))
    }

    /// Adds every regular file below `dir`, in sorted order, by relative path and digest.
    pub(crate) fn dir(&mut self, label: &str, dir: &Path) -> std::io::Result<&mut Self> {
        for rel in walk_sorted(dir)? {
            let digest = sha256_file(&dir.join(&rel))?;
            self.str(&format!("{label}/{}", rel.display()), &digest);
        }
        Ok(self)
    }

    /// The inputs recorded so far (for `entry.json` and the release manifest).
    pub(crate) fn inputs(&self) -> &[(String, String)] {
        &self.inputs
    }

    /// The key: hex SHA-256.
    pub(crate) fn finish(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

/// Regular files below `dir`, relative, sorted; symlinks are followed as files.
pub(crate) fn walk_sorted(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let child = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                stack.push(child);
            } else {
                out.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Hex SHA-256 of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Hex SHA-256 of bytes.
pub(crate) fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What a complete entry records about itself.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct EntryInfo {
    /// Stage name, e.g. `kernel`.
    pub stage: String,
    /// The key.
    pub key: String,
    /// Seconds since the epoch when it was stored.
    pub created: u64,
    /// Labelled inputs that made the key.
    pub inputs: Vec<(String, String)>,
    /// Artifact name → path relative to the entry directory.
    pub artifacts: BTreeMap<String, String>,
    /// Free-form facts (kernel release, build seconds, log path …).
    pub facts: BTreeMap<String, String>,
}

/// A complete cache entry.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its directory.
    pub dir: PathBuf,
    /// Its recorded information.
    pub info: EntryInfo,
}

impl Entry {
    /// Absolute path of a named artifact.
    pub fn artifact(&self, name: &str) -> Option<PathBuf> {
        self.info.artifacts.get(name).map(|rel| self.dir.join(rel))
    }
}

/// The cache root.
#[derive(Clone, Debug)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// A cache rooted at `root` (created lazily).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_dir(&self, stage: &str, key: &str) -> PathBuf {
        self.root.join("stages").join(stage).join(key)
    }

    /// A complete entry, if one exists for this key.
    pub fn lookup(&self, stage: &str, key: &str) -> Option<Entry> {
        let dir = self.entry_dir(stage, key);
        let info: EntryInfo =
            serde_json::from_slice(&std::fs::read(dir.join("entry.json")).ok()?).ok()?;
        Some(Entry { dir, info })
    }

    /// The newest complete entry of a stage (for `status`).
    pub fn latest(&self, stage: &str) -> Option<Entry> {
        let dir = self.root.join("stages").join(stage);
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .filter_map(|e| self.lookup(stage, &e.file_name().to_string_lossy()))
            .max_by_key(|e| e.info.created)
    }

    /// A fresh temporary directory to build an entry in; pass it to [`Cache::commit`].
    pub fn staging(&self, stage: &str, key: &str) -> std::io::Result<PathBuf> {
        let dir = self
            .root
            .join("stages")
            .join(stage)
            .join(format!(".tmp-{key}-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Seals a staged directory as the entry for `info.key`: writes `entry.json` and renames
    /// it into place. A concurrent writer that won the race is kept; ours is discarded.
    pub fn commit(&self, staged: &Path, mut info: EntryInfo) -> std::io::Result<Entry> {
        info.created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let json = serde_json::to_vec_pretty(&info).map_err(std::io::Error::other)?;
        std::fs::write(staged.join("entry.json"), json)?;
        let dir = self.entry_dir(&info.stage, &info.key);
        if dir.exists() {
            std::fs::remove_dir_all(staged)?;
        } else if let Err(e) = std::fs::rename(staged, &dir) {
            std::fs::remove_dir_all(staged).ok();
            // Another process committed the same key meanwhile: same inputs, same entry.
            if !dir.join("entry.json").is_file() {
                return Err(e);
            }
        }
        Ok(Entry { dir, info })
    }

    /// A kept work tree for incremental builds of a stage (`<cache>/work/<stage>/<name>`).
    pub fn work_dir(&self, stage: &str, name: &str) -> PathBuf {
        self.root.join("work").join(stage).join(name)
    }

    /// Downloads and other fetched inputs (`<cache>/downloads`).
    pub fn downloads(&self) -> PathBuf {
        self.root.join("downloads")
    }

    /// Host-scoped facts such as the KVM probe result (`<cache>/host`).
    pub fn host_dir(&self) -> PathBuf {
        self.root.join("host")
    }

    /// Removes stage entries, oldest first, until the stages use at most `max_bytes`;
    /// keeps the newest entry of every stage. Returns (entries removed, bytes freed).
    pub fn gc(&self, max_bytes: u64) -> std::io::Result<(usize, u64)> {
        let stages = self.root.join("stages");
        let mut entries = Vec::new();
        let mut newest: BTreeMap<String, u64> = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&stages) {
            for stage in rd.filter_map(Result::ok) {
                let stage_name = stage.file_name().to_string_lossy().to_string();
                for e in std::fs::read_dir(stage.path())?.filter_map(Result::ok) {
                    let name = e.file_name().to_string_lossy().to_string();
                    let Some(entry) = self.lookup(&stage_name, &name) else {
                        continue;
                    };
                    let size = du(&entry.dir);
                    let n = newest.entry(stage_name.clone()).or_default();
                    *n = (*n).max(entry.info.created);
                    entries.push((entry.info.created, stage_name.clone(), entry.dir, size));
                }
            }
        }
        let mut total: u64 = entries.iter().map(|e| e.3).sum();
        entries.sort();
        let (mut removed, mut freed) = (0, 0);
        for (created, stage, dir, size) in entries {
            if total <= max_bytes {
                break;
            }
            if newest.get(&stage) == Some(&created) {
                continue;
            }
            std::fs::remove_dir_all(&dir)?;
            total -= size;
            freed += size;
            removed += 1;
        }
        Ok((removed, freed))
    }
}

/// Disk usage of a directory tree in bytes (apparent sizes).
pub(crate) fn du(dir: &Path) -> u64 {
    walk_sorted(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|rel| std::fs::symlink_metadata(dir.join(rel)).ok())
        .map(|m| m.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_labels_and_values() {
        let k = |pairs: &[(&str, &str)]| {
            let mut b = KeyBuilder::new();
            for (l, v) in pairs {
                b.str(l, v);
            }
            b.finish()
        };
        assert_eq!(k(&[("a", "1")]), k(&[("a", "1")]));
        assert_ne!(k(&[("a", "1")]), k(&[("a", "2")]));
        assert_ne!(k(&[("a", "bc")]), k(&[("ab", "c")]));
        assert_ne!(k(&[("a", "1"), ("b", "2")]), k(&[("b", "2"), ("a", "1")]));
    }

    #[test]
    fn dir_keys_see_content_and_names() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a.patch"), "one").unwrap();
        let key = || KeyBuilder::new().dir("p", d.path()).unwrap().finish();
        let k1 = key();
        std::fs::write(d.path().join("sub/a.patch"), "two").unwrap();
        let k2 = key();
        assert_ne!(k1, k2);
        std::fs::rename(d.path().join("sub/a.patch"), d.path().join("sub/b.patch")).unwrap();
        assert_ne!(k2, key());
    }

    #[test]
    fn entries_appear_only_when_committed_and_gc_keeps_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let cache = Cache::new(d.path());
        assert!(cache.lookup("kernel", "k1").is_none());
        let staged = cache.staging("kernel", "k1").unwrap();
        std::fs::write(staged.join("bzImage"), vec![0u8; 1000]).unwrap();
        assert!(
            cache.lookup("kernel", "k1").is_none(),
            "a staged entry must not be visible"
        );
        let mut info = EntryInfo {
            stage: "kernel".into(),
            key: "k1".into(),
            created: 0,
            inputs: vec![],
            artifacts: [("bzImage".to_string(), "bzImage".to_string())].into(),
            facts: BTreeMap::new(),
        };
        let entry = cache.commit(&staged, info.clone()).unwrap();
        assert!(entry.artifact("bzImage").unwrap().is_file());
        assert!(cache.lookup("kernel", "k1").is_some());
        std::thread::sleep(std::time::Duration::from_millis(1100));
        info.key = "k2".into();
        let staged = cache.staging("kernel", "k2").unwrap();
        std::fs::write(staged.join("bzImage"), vec![0u8; 1000]).unwrap();
        cache.commit(&staged, info).unwrap();
        let (removed, freed) = cache.gc(0).unwrap();
        assert_eq!(removed, 1);
        assert!(freed >= 1000);
        assert!(cache.lookup("kernel", "k1").is_none());
        assert_eq!(cache.latest("kernel").unwrap().info.key, "k2");
    }
}
