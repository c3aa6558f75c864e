//! The host tools the kernel stage needs, the check that they are there (exit 4 with the
//! `apt-get install` line when not), and the toolchain identity that goes into cache keys.
//!
//! Not owned here: running the tools (that is `process`), or `doctor`'s output format.

use std::path::Path;

use super::error::BuildError;
use crate::sys::process::{self, Cmd};

/// Binaries (and two libraries checked by header) the kernel build needs, with the Debian
/// package that provides each. `doctor` lists these; `build kernel` checks them first.
///
/// Entries starting with `/` are header files: kbuild needs libelf (objtool, with
/// CONFIG_STACK_VALIDATION/ORC) and OpenSSL (sign-file, certs) headers, which have no binary.
pub(crate) const KERNEL_TOOLS: &[(&str, &str)] = &[
    ("gcc", "gcc"),
    ("make", "make"),
    ("ld", "binutils"),
    ("bc", "bc"),
    ("bison", "bison"),
    ("flex", "flex"),
    ("perl", "perl"),
    ("quilt", "quilt"),
    ("tar", "tar"),
    ("xz", "xz-utils"),
    ("cpio", "cpio"),
    ("git", "git"),
    ("/usr/include/libelf.h", "libelf-dev"),
    ("/usr/include/openssl/opensslv.h", "libssl-dev"),
];

/// Tools only needed to fetch the pinned source when it is not installed.
pub(crate) const FETCH_TOOLS: &[(&str, &str)] = &[("apt-get", "apt"), ("dpkg-deb", "dpkg")];

/// Fails with [`BuildError::ToolMissing`] naming every missing tool of `tools` at once.
pub(crate) fn check_tools(tools: &[(&str, &str)]) -> Result<(), BuildError> {
    let missing: Vec<&(&str, &str)> = tools
        .iter()
        .filter(|(bin, _)| {
            if bin.starts_with('/') {
                !Path::new(bin).exists()
            } else {
                process::which(bin).is_none()
            }
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<String> = missing.iter().map(|(_, pkg)| (*pkg).to_string()).collect();
    packages.dedup();
    Err(BuildError::ToolMissing {
        tools: missing.iter().map(|(bin, _)| (*bin).to_string()).collect(),
        packages,
    })
}

/// The commands whose first output line identifies the toolchain for the cache key.
pub(crate) fn toolchain_cmds() -> Vec<(&'static str, Cmd)> {
    vec![
        ("toolchain/gcc", Cmd::new(["gcc", "--version"])),
        ("toolchain/ld", Cmd::new(["ld", "--version"])),
        ("toolchain/make", Cmd::new(["make", "--version"])),
    ]
}

/// Labelled first lines of `gcc --version`, `ld --version`, `make --version`.
pub(crate) async fn toolchain_identity() -> Result<Vec<(&'static str, String)>, BuildError> {
    let mut out = Vec::new();
    for (label, cmd) in toolchain_cmds() {
        let captured = process::run(&cmd, None)
            .await
            .map_err(BuildError::step(format!("{cmd}")))?;
        out.push((
            label,
            captured
                .stdout
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_string(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tools_name_the_apt_line() {
        let err = check_tools(&[
            ("sh", "dash"),
            ("xsc-no-such-binary", "xsc-pkg"),
            ("/no/such/header.h", "libno-dev"),
        ])
        .unwrap_err();
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::Harness);
        let text = err.to_string();
        assert!(
            text.contains("xsc-no-such-binary, /no/such/header.h"),
            "{text}"
        );
        assert!(
            text.ends_with("apt-get install -y xsc-pkg libno-dev"),
            "{text}"
        );
        check_tools(&[("sh", "dash")]).unwrap();
    }

    #[test]
    fn every_tool_has_a_package() {
        for (bin, pkg) in KERNEL_TOOLS {
            assert!(!bin.is_empty() && !pkg.is_empty());
        }
        assert!(KERNEL_TOOLS.iter().any(|(b, _)| *b == "quilt"));
    }
}
