//! Project roots for the prefixes of one quilt series (`bisect --series`, `patchcheck`).
//! A prefix root is a small directory, `out/bisect/<id>/<prefix>/`, holding a copy of
//! `patches/` whose one series file lists only the first n patches, and an `xsc.toml`
//! that is the project's with every path made absolute (scenarios, guest tests, cache and
//! outputs stay the clone's). The stages read patches from the config's root, so a prefix
//! is built by the ordinary stage, keyed by its content, in the shared kept work tree; the
//! root stays behind as the step's record (its `logs/` has the build log) and as what the
//! `reproduce:` line points `--config` at.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::input::config::Config;

/// Which quilt series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Series {
    /// `patches/kernel`.
    Kernel,
    /// `patches/glibc`.
    Glibc,
}

impl Series {
    /// The series directory relative to the project root.
    pub(crate) fn dir(self) -> &'static str {
        match self {
            Series::Kernel => "patches/kernel",
            Series::Glibc => "patches/glibc",
        }
    }

    /// The word on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Series::Kernel => "kernel",
            Series::Glibc => "glibc",
        }
    }
}

/// The patch names of `series` in the project at `cfg`, in order.
pub(crate) fn patches(cfg: &Config, series: Series) -> Result<Vec<String>, Error> {
    let file = cfg.root.join(series.dir()).join("series");
    let text = std::fs::read_to_string(&file).map_err(|_| Error::InputMissing {
        what: "series",
        path: file.clone(),
    })?;
    Ok(crate::stages::quilt::series_patches(&text))
}

/// The index of the prefix that ends with `patch` (a name, or a unique leading part such
/// as `0004`); prefix 0 is the empty series.
pub(crate) fn prefix_ending_with(names: &[String], patch: &str) -> Result<usize, String> {
    let hits: Vec<usize> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| *n == patch || n.starts_with(patch))
        .map(|(i, _)| i + 1)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(format!("no patch {patch:?} in the series")),
        _ => Err(format!("{patch:?} names more than one patch of the series")),
    }
}

/// The series file text of the first `n` patches.
pub(crate) fn series_text(names: &[String], n: usize) -> String {
    names[..n].iter().map(|p| format!("{p}\n")).collect()
}

/// The project config text with every `[paths]` entry absolute (pure): the prefix root
/// gets its own `patches/` but shares everything else with the clone.
pub(crate) fn config_text(original: &str, cfg: &Config) -> Result<String, String> {
    let mut doc: toml_edit::DocumentMut = original.parse().map_err(|e| format!("{e}"))?;
    if doc.get("paths").is_none() {
        doc["paths"] = toml_edit::table();
    }
    let paths = [
        ("cache", &cfg.cache_dir),
        ("out", &cfg.out_dir),
        ("publish", &cfg.publish_dir),
        ("scenarios", &cfg.scenarios_dir),
        ("guest-tests", &cfg.guest_tests_dir),
    ];
    for (key, path) in paths {
        doc["paths"][key] = toml_edit::value(path.display().to_string());
    }
    Ok(doc.to_string())
}

/// Writes the root of the first `n` patches of `series` at `dest` and loads its config.
pub(crate) fn write_root(
    cfg: &Config,
    series: Series,
    names: &[String],
    n: usize,
    dest: &Path,
) -> Result<Config, Error> {
    let patches = dest.join("patches");
    if patches.exists() {
        std::fs::remove_dir_all(&patches).map_err(Error::io(&patches))?;
    }
    copy_tree(&cfg.root.join("patches"), &patches)?;
    let series_file = dest.join(series.dir()).join("series");
    std::fs::write(&series_file, series_text(names, n)).map_err(Error::io(&series_file))?;
    let original = std::fs::read_to_string(&cfg.file).map_err(Error::io(&cfg.file))?;
    let text = config_text(&original, cfg).map_err(|e| {
        Error::Usage(format!(
            "{}: cannot rewrite for a prefix: {e}",
            cfg.file.display()
        ))
    })?;
    let file = dest.join("xsc.toml");
    std::fs::write(&file, text).map_err(Error::io(&file))?;
    Ok(Config::load(&file)?)
}

/// Copies a directory of plain files and directories.
fn copy_tree(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(to).map_err(Error::io(to))?;
    for entry in std::fs::read_dir(from).map_err(Error::io(from))? {
        let entry = entry.map_err(Error::io(from))?;
        let (src, dst): (PathBuf, PathBuf) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(Error::io(&src))?.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(Error::io(&src))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["0001-a.patch", "0002-b.patch", "0003-c.patch"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn prefixes_are_named_by_their_last_patch() {
        let n = names();
        assert_eq!(prefix_ending_with(&n, "0002-b.patch"), Ok(2));
        assert_eq!(prefix_ending_with(&n, "0003"), Ok(3));
        assert!(
            prefix_ending_with(&n, "000")
                .unwrap_err()
                .contains("more than one")
        );
        assert!(
            prefix_ending_with(&n, "0009")
                .unwrap_err()
                .contains("no patch")
        );
        assert_eq!(series_text(&n, 0), "");
        assert_eq!(series_text(&n, 2), "0001-a.patch\n0002-b.patch\n");
    }

    #[test]
    fn a_prefix_root_has_the_short_series_and_shares_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("clone");
        for s in ["patches/kernel/configs", "patches/glibc", "scenarios"] {
            std::fs::create_dir_all(root.join(s)).unwrap();
        }
        std::fs::write(root.join("patches/kernel/series"), series_text(&names(), 3)).unwrap();
        std::fs::write(
            root.join("patches/kernel/configs/qemu.config"),
            "CONFIG_X=y\n",
        )
        .unwrap();
        std::fs::write(root.join("patches/glibc/series"), "g.patch\n").unwrap();
        let project =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("xsc.toml"))
                .unwrap();
        std::fs::write(root.join("xsc.toml"), format!("# the project\n{project}")).unwrap();
        let cfg = Config::load(&root.join("xsc.toml")).unwrap();
        let dest = dir.path().join("prefix-1");
        let p = write_root(&cfg, Series::Kernel, &names(), 1, &dest).unwrap();
        assert_eq!(p.root, dest);
        assert_eq!(p.out_dir, root.join("out"));
        assert_eq!(p.scenarios_dir, root.join("scenarios"));
        assert_eq!(p.cache_dir, cfg.cache_dir);
        assert_eq!(p.kernel_profile, "qemu");
        let s = std::fs::read_to_string(dest.join("patches/kernel/series")).unwrap();
        assert_eq!(s, "0001-a.patch\n");
        assert!(dest.join("patches/kernel/configs/qemu.config").is_file());
        assert_eq!(
            std::fs::read_to_string(dest.join("patches/glibc/series")).unwrap(),
            "g.patch\n"
        );
        let text = std::fs::read_to_string(dest.join("xsc.toml")).unwrap();
        assert!(text.starts_with("# the project\n"), "{text}");
        // Written again over itself (a rerun of the same bisect id) it stays the same.
        write_root(&cfg, Series::Kernel, &names(), 1, &dest).unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.join("xsc.toml")).unwrap(),
            text
        );
    }
}
