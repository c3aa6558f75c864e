//! Kconfig fragments (`patches/kernel/configs/*.config`) and the final `.config`: parsing
//! both, and checking that every option a fragment asked for survived `olddefconfig`.
//!
//! `merge_config.sh` only warns about a dropped option and `olddefconfig` drops silently
//! any option whose dependencies are unmet, so without this check a kernel "with XSC"
//! could be built without it. Merging itself is the kernel's own script, not this module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::{BuildError, OptionMismatch};

/// One option a fragment sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Requested {
    /// `CONFIG_…` name.
    pub option: String,
    /// Normalised value: `n` for `# … is not set` and `=n`, else the text after `=`.
    pub value: String,
    /// The fragment.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
}

/// Parses one line of a fragment or `.config`: `Some((name, value))` for a setting, `None`
/// for blanks and comments. `# CONFIG_X is not set` and `CONFIG_X=n` both give `n`.
pub(crate) fn parse_line(line: &str) -> Result<Option<(String, String)>, ()> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    if let Some(rest) = line.strip_prefix("# ") {
        if let Some(name) = rest.strip_suffix(" is not set") {
            if is_symbol(name) {
                return Ok(Some((name.to_string(), "n".to_string())));
            }
        }
        return Ok(None);
    }
    if line.starts_with('#') {
        return Ok(None);
    }
    let (name, value) = line.split_once('=').ok_or(())?;
    if !is_symbol(name) || value.is_empty() {
        return Err(());
    }
    Ok(Some((name.to_string(), value.to_string())))
}

fn is_symbol(name: &str) -> bool {
    name.strip_prefix("CONFIG_")
        .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

/// Parses fragment text that came from `file`.
pub(crate) fn parse_fragment(file: &Path, text: &str) -> Result<Vec<Requested>, BuildError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        match parse_line(raw) {
            Ok(Some((option, value))) => out.push(Requested {
                option,
                value,
                file: file.to_path_buf(),
                line: i + 1,
            }),
            Ok(None) => {}
            Err(()) => {
                return Err(BuildError::FragmentSyntax {
                    file: file.to_path_buf(),
                    line: i + 1,
                    text: raw.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Reads and parses fragments in merge order; a later setting of an option overrides an
/// earlier one, as with `merge_config.sh`, so only the last request per option is kept.
pub(crate) fn read_fragments(files: &[PathBuf]) -> Result<Vec<Requested>, BuildError> {
    let mut last: BTreeMap<String, Requested> = BTreeMap::new();
    let mut order = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| BuildError::Input {
            what: "config fragment",
            path: file.clone(),
            source,
        })?;
        for req in parse_fragment(file, &text)? {
            if !last.contains_key(&req.option) {
                order.push(req.option.clone());
            }
            last.insert(req.option.clone(), req);
        }
    }
    Ok(order.into_iter().filter_map(|o| last.remove(&o)).collect())
}

/// The settings of a `.config` (`n` for `is not set`).
pub(crate) fn parse_dot_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| parse_line(l).ok().flatten())
        .collect()
}

/// Every requested option whose final value differs. A request for `n` is met by an
/// absent symbol too (an unselectable option is off).
pub(crate) fn verify(
    requested: &[Requested],
    dot_config: &BTreeMap<String, String>,
) -> Vec<OptionMismatch> {
    requested
        .iter()
        .filter_map(|r| {
            let actual = dot_config.get(&r.option);
            let ok = match actual {
                Some(v) => same_value(&r.value, v),
                None => r.value == "n",
            };
            (!ok).then(|| OptionMismatch {
                option: r.option.clone(),
                requested: r.value.clone(),
                actual: actual.cloned(),
                file: r.file.clone(),
                line: r.line,
            })
        })
        .collect()
}

/// Kconfig writes hex in lower case with `0x`; accept `0X10` for `0x10`.
fn same_value(requested: &str, actual: &str) -> bool {
    requested == actual
        || (requested.starts_with("0x") || requested.starts_with("0X"))
            && requested.eq_ignore_ascii_case(actual)
}

/// Verifies a built tree's `.config` against the fragments.
pub(crate) fn verify_file(requested: &[Requested], dot_config: &Path) -> Result<(), BuildError> {
    let text = std::fs::read_to_string(dot_config)
        .map_err(BuildError::io("failed to read", dot_config))?;
    let mismatches = verify(requested, &parse_dot_config(&text));
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(BuildError::ConfigDropped { mismatches })
    }
}

/// True when the config builds anything as a module (then `make modules` is needed).
pub(crate) fn has_modules(dot_config: &BTreeMap<String, String>) -> bool {
    dot_config.get("CONFIG_MODULES").is_some_and(|v| v == "y")
        && dot_config.values().any(|v| v == "m")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAGMENT: &str = "\
# XSC options
CONFIG_XSC=y
# CONFIG_XSC_DEBUG is not set
CONFIG_PANIC_ON_OOPS=n
CONFIG_VIRTIO_NET=m
CONFIG_CMDLINE=\"console=ttyS0 panic=-1\"
CONFIG_LOG_BUF_SHIFT=17
CONFIG_PHYSICAL_START=0x1000000

";

    fn dot(text: &str) -> BTreeMap<String, String> {
        parse_dot_config(text)
    }

    #[test]
    fn fragment_lines_parse_with_their_places() {
        let reqs = parse_fragment(Path::new("configs/xsc.config"), FRAGMENT).unwrap();
        let shown: Vec<(&str, &str, usize)> = reqs
            .iter()
            .map(|r| (r.option.as_str(), r.value.as_str(), r.line))
            .collect();
        assert_eq!(
            shown,
            [
                ("CONFIG_XSC", "y", 2),
                ("CONFIG_XSC_DEBUG", "n", 3),
                ("CONFIG_PANIC_ON_OOPS", "n", 4),
                ("CONFIG_VIRTIO_NET", "m", 5),
                ("CONFIG_CMDLINE", "\"console=ttyS0 panic=-1\"", 6),
                ("CONFIG_LOG_BUF_SHIFT", "17", 7),
                ("CONFIG_PHYSICAL_START", "0x1000000", 8),
            ]
        );
    }

    #[test]
    fn a_malformed_line_is_reported_with_file_and_line() {
        let err =
            parse_fragment(Path::new("configs/qemu.config"), "CONFIG_A=y\nXSC=y\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "configs/qemu.config:2: not a config line: \"XSC=y\""
        );
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BadInput);
        assert!(parse_fragment(Path::new("f"), "CONFIG_A=\n").is_err());
    }

    #[test]
    fn a_fully_honoured_fragment_verifies() {
        let reqs = parse_fragment(Path::new("f.config"), FRAGMENT).unwrap();
        let config = dot(
            "CONFIG_XSC=y\n# CONFIG_XSC_DEBUG is not set\nCONFIG_VIRTIO_NET=m\n\
             CONFIG_CMDLINE=\"console=ttyS0 panic=-1\"\nCONFIG_LOG_BUF_SHIFT=17\nCONFIG_PHYSICAL_START=0x1000000\n",
        );
        // PANIC_ON_OOPS=n is met by its absence.
        assert_eq!(verify(&reqs, &config), vec![]);
    }

    #[test]
    fn every_kind_of_drop_is_reported_with_requested_and_actual() {
        let reqs = parse_fragment(Path::new("configs/xsc.config"), FRAGMENT).unwrap();
        let config = dot(
            "# CONFIG_XSC is not set\nCONFIG_XSC_DEBUG=y\nCONFIG_PANIC_ON_OOPS=y\nCONFIG_VIRTIO_NET=y\n\
             CONFIG_CMDLINE=\"console=ttyS0\"\nCONFIG_LOG_BUF_SHIFT=14\n",
        );
        let found = verify(&reqs, &config);
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "configs/xsc.config:2: CONFIG_XSC requested y but .config has n",
                "configs/xsc.config:3: CONFIG_XSC_DEBUG requested n but .config has y",
                "configs/xsc.config:4: CONFIG_PANIC_ON_OOPS requested n but .config has y",
                "configs/xsc.config:5: CONFIG_VIRTIO_NET requested m but .config has y",
                "configs/xsc.config:6: CONFIG_CMDLINE requested \"console=ttyS0 panic=-1\" but .config has \"console=ttyS0\"",
                "configs/xsc.config:7: CONFIG_LOG_BUF_SHIFT requested 17 but .config has 14",
                "configs/xsc.config:8: CONFIG_PHYSICAL_START requested 0x1000000 but .config has absent (dependencies not met?)",
            ]
        );
        let err = BuildError::ConfigDropped { mismatches: found };
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BuildFailed);
        assert!(err.to_string().starts_with(
            "7 requested config options not in the final .config:\n  configs/xsc.config:2"
        ));
    }

    #[test]
    fn later_fragments_override_earlier_ones_and_keep_their_own_place() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("qemu.config"),
            dir.path().join("xsc.config"),
        );
        std::fs::write(&a, "CONFIG_A=y\nCONFIG_B=y\n").unwrap();
        std::fs::write(&b, "\n# CONFIG_A is not set\n").unwrap();
        let reqs = read_fragments(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            (
                reqs[0].option.as_str(),
                reqs[0].value.as_str(),
                &reqs[0].file,
                reqs[0].line
            ),
            ("CONFIG_A", "n", &b, 2)
        );
        assert_eq!(
            (reqs[1].option.as_str(), &reqs[1].file, reqs[1].line),
            ("CONFIG_B", &a, 2)
        );
        let missing = read_fragments(&[dir.path().join("nope.config")]).unwrap_err();
        assert_eq!(missing.exit_code(), crate::exit_code::ExitCode::BadInput);
    }

    #[test]
    fn modules_are_needed_only_with_an_m_and_module_support() {
        assert!(has_modules(&dot("CONFIG_MODULES=y\nCONFIG_E1000=m\n")));
        assert!(!has_modules(&dot("CONFIG_MODULES=y\nCONFIG_E1000=y\n")));
        assert!(!has_modules(&dot("# CONFIG_MODULES is not set\n")));
    }
}
