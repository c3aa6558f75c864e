//! The XSC glibc: the real glibc stage (pinned glibc-source, quilt series, `--enable-xsc`,
//! make, install; cached by content) and its release gate in a real XSC guest under TCG.
//! The first run on a machine builds glibc (~8 min on 2 cores); later runs hit the cache.

use std::time::Duration;

use crate::support::{cases, junit, run, text, xsc};

/// A cold glibc build plus the XSC kernel, then the guest run.
const GLIBC: Duration = Duration::from_secs(60 * 60);

fn build_glibc() -> std::process::Output {
    let mut cmd = xsc();
    cmd.args(["build", "glibc"]);
    run(cmd, GLIBC)
}

fn field(stdout: &str, name: &str) -> std::path::PathBuf {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(name))
        .map(|v| std::path::PathBuf::from(v.trim().split(' ').next().unwrap_or_default()))
        .unwrap_or_else(|| panic!("no {name} line in:\n{stdout}"))
}

fn contains(path: &std::path::Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_glibc_stage_builds_once_and_carries_the_series() {
    let out = build_glibc();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let sysroot = field(&stdout, "sysroot:");
    let runtime = field(&stdout, "runtime:");
    let tests = field(&stdout, "tests:");
    // The routing code is in both the static and the shared library.
    assert!(contains(&sysroot.join("usr/lib64/libc.a"), b"/dev/xsc"));
    assert!(contains(&runtime.join("lib64/libc.so.6"), b"/dev/xsc"));
    assert!(runtime.join("lib64/ld-linux-x86-64.so.2").exists());
    assert!(runtime.join("lib64/libgcc_s.so.1").is_file());
    assert!(sysroot.join("usr/include/linux/types.h").is_file());
    assert!(sysroot.join("usr/include/asm/unistd_64.h").is_file());
    let list = std::fs::read_to_string(tests.join("list")).unwrap();
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.split('#').next().unwrap().split_whitespace().next())
        .collect();
    assert!(names.len() >= 5, "{list}");
    for t in names {
        assert!(tests.join(t).is_file(), "{t} listed but missing");
    }
    assert!(tests.join("xsc_counters.so").is_file());
    // The same inputs again: a cache hit, nothing built.
    let again = build_glibc();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).starts_with("glibc: cache hit"),
        "{}",
        text(&again)
    );
    let mut cmd = xsc();
    cmd.arg("status");
    let status = run(cmd, Duration::from_secs(120));
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("glibc       xsc      built"),
        "{}",
        text(&status)
    );
}

#[test]
fn the_glibc_gate_routes_calls_and_a_stock_binary_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let mut cmd = xsc();
    cmd.args(["test", "xsc-glibc", "--accel", "tcg", "--junit"])
        .arg(&xml);
    let out = run(cmd, GLIBC);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let all = cases(&junit(&xml));
    let of = |prefix: &str| {
        all.iter()
            .filter(|(_, c, _)| c.starts_with(prefix))
            .collect::<Vec<_>>()
    };
    let routed = of("xsc_glibc_test.");
    let own = of("glibc_tests.");
    let stock = of("stock_glibc_binary.");
    let disabled = of("xsc_disabled_binary.");
    assert!(routed.len() >= 25, "{all:#?}");
    assert!(own.len() >= 5, "{all:#?}");
    assert!(!stock.is_empty(), "{all:#?}");
    assert!(!disabled.is_empty(), "{all:#?}");
    assert!(all.iter().all(|(_, _, k)| k == "pass"), "{all:#?}");
}

/// The series applies with quilt without fuzz to the pinned tarball (`patches edit
/// --glibc`, real quilt), and `quilt pop -a` gives back the pristine tree byte for byte
/// (every file; directories a patch created stay behind empty, as quilt leaves them).
#[test]
fn the_glibc_series_applies_without_fuzz_and_pops_back_to_pristine() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(
        crate::support::repo().join("xsc.toml"),
        root.join("xsc.toml"),
    )
    .unwrap();
    let copy = std::process::Command::new("cp")
        .args(["-r"])
        .arg(crate::support::repo().join("patches"))
        .arg(root)
        .status()
        .unwrap();
    assert!(copy.success());
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_xsc-release"));
    cmd.arg("--config")
        .arg(root.join("xsc.toml"))
        .args(["patches", "edit", "--glibc"])
        .stdin(std::process::Stdio::null());
    let out = run(cmd, Duration::from_secs(600));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let tree = root.join("glibc-2.36");
    let series = std::fs::read_to_string(root.join("patches/glibc/series")).unwrap();
    let applied = std::fs::read_to_string(tree.join(".pc/applied-patches")).unwrap();
    let want: Vec<&str> = series
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(applied.lines().collect::<Vec<_>>(), want);
    assert!(
        tree.join("sysdeps/unix/sysv/linux/x86_64/xsc-abi.h")
            .is_file()
            || want.is_empty()
    );
    let pop = std::process::Command::new("quilt")
        .args(["pop", "-a", "-q"])
        .current_dir(&tree)
        .output()
        .unwrap();
    assert!(pop.status.success(), "{}", text(&pop));
    let pristine = root.join("pristine");
    std::fs::create_dir_all(&pristine).unwrap();
    let untar = std::process::Command::new("tar")
        .args([
            "-xf",
            "/usr/src/glibc/glibc-2.36.tar.xz",
            "--strip-components=1",
            "-C",
        ])
        .arg(&pristine)
        .status()
        .unwrap();
    assert!(untar.success());
    // quilt pop restores files from its backups but leaves directories a patch created
    // (empty now, e.g. `sys/` for <sys/xsc.h>): compare files, so drop empty directories on
    // both sides (`-delete` implies depth-first, so nested empty ones go too).
    for t in [&pristine, &tree] {
        let empty = std::process::Command::new("find")
            .arg(t)
            .args(["-mindepth", "1", "-type", "d", "-empty", "-delete"])
            .status()
            .unwrap();
        assert!(empty.success());
    }
    let diff = std::process::Command::new("diff")
        .args(["-r", "-q", "--no-dereference", "-x", ".pc", "-x", "patches"])
        .arg(&pristine)
        .arg(&tree)
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "not pristine after pop:\n{}",
        text(&diff)
    );
}

/// A host without gawk (Debian's default awk is mawk) learns it from the stage before
/// configure runs — with the apt line — instead of from glibc's configure ("critical
/// programs are missing or too old").
#[test]
fn a_missing_gawk_is_named_with_the_apt_line_before_configure() {
    let bin = tempfile::tempdir().unwrap();
    for tool in [
        "gcc",
        "make",
        "ld",
        "strip",
        "bison",
        "python3",
        "quilt",
        "tar",
        "xz",
        "dpkg-query",
    ] {
        let real = crate::support::which(tool).unwrap_or_else(|| panic!("{tool} not installed"));
        std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
    }
    let mut cmd = xsc();
    cmd.env("PATH", bin.path())
        .args(["build", "glibc", "--force"]);
    let out = run(cmd, Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("gawk"), "{err}");
    assert!(err.contains("apt-get install -y gawk"), "{err}");
    assert!(!err.contains("configure"), "{err}");
}

/// Ctrl-C during the glibc stage's make: exit 130 at once, no make or compiler left
/// running, the stage lock released, the cached entry untouched (the next run is a hit).
#[test]
fn sigint_during_the_glibc_make_stops_it_cleanly() {
    // Make sure there is an entry first (a no-op when another test built it).
    assert_eq!(build_glibc().status.code(), Some(0));
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr");
    let mut cmd = xsc();
    cmd.args(["build", "glibc", "--force"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let child = cmd.spawn().unwrap();
    // Another test may hold the machine's build lock for a while.
    assert!(
        crate::support::wait_for_text(&err_path, "glibc: make -j", GLIBC),
        "{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    std::thread::sleep(Duration::from_secs(3));
    // Ours: we hold the stage lock, so every make in the kept tree belongs to this build.
    let pgrep = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", "work/glibc/xsc/build"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let ours = pgrep();
    assert!(!ours.is_empty(), "no make running in the kept tree");
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = crate::support::wait(child, Duration::from_secs(60));
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    // Alive = present and not a zombie waiting for init to reap it.
    let alive = |pid: &String| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|r| !r.trim_start().starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ours.iter().any(alive) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let left: Vec<&String> = ours.iter().filter(|p| alive(p)).collect();
    assert!(left.is_empty(), "make left behind: {left:?}");
    let again = build_glibc();
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("glibc: cache hit"));
}
