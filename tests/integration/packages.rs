//! `build packages` on the real kernel and glibc stages (a cache hit after the kernel and
//! glibc tests; cold, it builds them): the distributions' own tools check what users get.
//! lintian on the real `.deb`s, an install into a scratch root, the shipped kernel is the
//! gates' bzImage byte for byte, the stripped XSC loader runs a host program, `rpm -K`, an
//! `rpm --root` install, and `--force` gives the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{repo, run, text, xsc};

/// Cold: the kernel and glibc builds (~45 min on 2 cores); warm: seconds.
const BUILD: Duration = Duration::from_secs(90 * 60);

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}:\n{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_packages_of_the_real_stages_install_and_pass_the_distributions_checks() {
    let mut cmd = xsc();
    cmd.args(["build", "packages"]);
    let out = run(cmd, BUILD);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let apt = repo().join("packages/apt");
    let rpm = repo().join("packages/rpm");
    let debs = files(&apt, "deb");
    let rpms = files(&rpm, "rpm");
    assert_eq!(debs.len(), 3, "{debs:?}");
    assert_eq!(rpms.len(), 3, "{rpms:?}");
    let sums = |v: &[PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| ok(Command::new("sha256sum").arg(p)))
            .collect()
    };
    let before = (sums(&debs), sums(&rpms));

    ok(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .args(&debs));
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for dir in ["var/lib/dpkg/updates", "var/lib/dpkg/info"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    ok(Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-script-chrootless", "--log=/dev/null", "-i"])
        .args(&debs));
    // What users install is what the gates boot.
    let kr = std::fs::read_dir(root.join("boot"))
        .unwrap()
        .filter_map(Result::ok)
        .find_map(|e| {
            e.file_name()
                .to_string_lossy()
                .strip_prefix("vmlinuz-")
                .map(str::to_string)
        })
        .expect("a vmlinuz in /boot");
    let status = ok(xsc().args(["status", "--json"]));
    let shipped = ok(Command::new("sha256sum").arg(root.join(format!("boot/vmlinuz-{kr}"))));
    let shipped = shipped.split_whitespace().next().unwrap();
    // The qemu profile's entry (the first kernel line of `status --json`).
    let dir = status
        .split('"')
        .find(|s| s.contains("/stages/kernel/") && Path::new(s).join("bzImage").is_file())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no built kernel in:\n{status}"));
    let gate = ok(Command::new("sha256sum").arg(dir.join("bzImage")));
    assert!(gate.starts_with(shipped), "shipped {shipped}, gate {gate}");
    // The stripped XSC loader and libc run a host program (routing off: no /dev/xsc here).
    let lib = root.join("opt/xsc-glibc/lib64");
    let note = root.join("note");
    std::fs::write(&note, "read by the XSC glibc\n").unwrap();
    let cat = ok(Command::new(lib.join("ld-linux-x86-64.so.2"))
        .arg("--library-path")
        .arg(&lib)
        .arg("/bin/cat")
        .arg(&note));
    assert_eq!(cat, "read by the XSC glibc\n");
    let plan = std::fs::read_to_string(root.join("usr/lib/xsc/plan")).unwrap();
    assert!(plan.contains("/usr/lib/xsc/xsc_ring_test"), "{plan}");

    let k = ok(Command::new("rpm").arg("-K").args(&rpms));
    assert_eq!(k.matches("digests OK").count(), 3, "{k}");
    let info = ok(Command::new("rpm").arg("-qip").arg(&rpms[0]));
    assert!(info.contains("Name        : kernel"), "{info}");
    let list = ok(Command::new("rpm").arg("-qlp").arg(&rpms[0]));
    assert!(
        list.contains(&format!("/lib/modules/{kr}/vmlinuz")),
        "{list}"
    );
    let r = tempfile::tempdir().unwrap();
    // --nodeps: the scratch root has no EL9 (kernel-install, dracut); --noscripts: the
    // kernel's %posttrans belongs to an EL9 system.
    ok(Command::new("rpm")
        .arg("--root")
        .arg(r.path())
        .args(["--dbpath", "/var/lib/rpm", "--nodeps", "--noscripts", "-i"])
        .args(&rpms));
    assert!(r.path().join(format!("lib/modules/{kr}/vmlinuz")).is_file());
    assert!(rpm.join("repodata/repomd.xml").is_file());
    assert!(apt.join("Packages.gz").is_file() && apt.join("Release").is_file());

    // --force rebuilds from the same inputs: the same bytes, or exit 3.
    let mut cmd = xsc();
    cmd.args(["build", "packages", "--force"]);
    let again = run(cmd, BUILD);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert_eq!(
        before,
        (sums(&files(&apt, "deb")), sums(&files(&rpm, "rpm")))
    );
}
