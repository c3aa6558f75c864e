//! The EL9 kickstarts are valid for RHEL9 (`ksvalidator -v RHEL9`, pykickstart from the
//! project's venv, `make deps`) and say what the installs rely on.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{repo, text};

/// `<cache>/host/venv/bin/ksvalidator`, where `make deps` installs .ci/requirements.txt.
fn ksvalidator() -> PathBuf {
    let cache = std::env::var_os("XSC_CACHE_DIR").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/xsc-release"),
        PathBuf::from,
    );
    let bin = cache.join("host/venv/bin/ksvalidator");
    assert!(bin.is_file(), "{} missing: run `make deps`", bin.display());
    bin
}

fn validate(ks: &std::path::Path) -> std::process::Output {
    Command::new(ksvalidator())
        .args(["-v", "RHEL9"])
        .arg(ks)
        .output()
        .unwrap()
}

#[test]
fn the_el9_kickstarts_validate_for_rhel9_and_exclude_the_distribution_kernel() {
    for (ks, host) in [
        ("recipes/alma/alma9-xsc.ks", "xsc-alma"),
        ("recipes/rocky/rocky9-xsc.ks", "xsc-rocky"),
    ] {
        let path = repo().join(ks);
        let out = validate(&path);
        assert!(out.status.success(), "{ks}:\n{}", text(&out));
        let t = std::fs::read_to_string(&path).unwrap();
        for line in [
            "text\n",
            "url --url=file:///run/install/repo/xsc/\n",
            "repo --name=BaseOS --baseurl=file:///run/install/repo/BaseOS/ --excludepkgs=kernel*\n",
            "repo --name=AppStream --baseurl=file:///run/install/repo/AppStream/ --excludepkgs=kernel*\n",
            "ignoredisk --only-use=vda\n",
            "rootpw --lock\n",
            "xsc-tests\n",
            "poweroff\n",
            // The installed system's .repo (`repo` has no gpgkey option); the block itself
            // runs in stages::repo_signing's tests.
            "%post --nochroot --erroronfail\n",
            "gpgkey=file:///etc/pki/rpm-gpg/RPM-GPG-KEY-xsc'\n",
        ] {
            assert!(t.contains(line), "{ks} lacks {line:?}");
        }
        assert!(t.contains("--append=\"console=tty0 console=ttyS0,115200n8\""));
        assert!(t.contains(&format!("--hostname={host}")));
    }
    // The validator does fail: --excludepkgs exists on `repo` only, not on `url`.
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.ks");
    std::fs::write(&bad, "url --url=file:///x --excludepkgs=kernel*\n").unwrap();
    assert!(!validate(&bad).status.success());
}
