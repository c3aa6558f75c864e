//! Ctrl-C during a kernel or glibc build, whether `test` started it through a scenario or
//! `build kernel|glibc` did: make's process group goes at once, nothing is stored, exit 130.
//!
//! No 10-minute build: a fixture repository pins tiny source tarballs whose makefiles
//! sleep in the step that would compile (the kernel's `make bzImage`, glibc's `make`),
//! after writing make's pid (the process group the harness gave it) to a marker file. The
//! harness runs its real stage code on them: key, lock, unpack, quilt, configure, make.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{text, wait};

/// How long a fixture's make sleeps: far longer than the test waits for the harness to
/// exit, so a harness that waits for make instead of stopping it fails the test.
const SLEEP: &str = "600";

/// A repository with an `xsc.toml` pinning the fixture sources, its own cache, empty patch
/// series, and two scenarios: `kernel` (the XSC kernel) and `glibc` (a program linked
/// against the XSC glibc, booting a file as its kernel).
struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cache: PathBuf,
    marker: PathBuf,
}

fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn executable(path: &Path, text: &str) {
    write(path, text);
    let out = Command::new("chmod").arg("+x").arg(path).status().unwrap();
    assert!(out.success());
}

fn tar(dir: &Path, top: &str, out: &Path) {
    let st = Command::new("tar")
        .arg("-cJf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(top)
        .status()
        .unwrap();
    assert!(st.success());
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().to_path_buf();
        let marker = base.join("make.pgid");
        // Make's pid is its process group (the harness starts every child as a group
        // leader); the recipe's shell is make's child, so `$PPID` is it.
        let sleeper = format!(
            "\techo $$PPID > {m}.tmp && mv {m}.tmp {m}; sleep {SLEEP}\n",
            m = marker.display()
        );
        let src = base.join("src");
        write(
            &src.join("linux/Makefile"),
            &format!(
                "tinyconfig olddefconfig:\n\ttouch .config\nkernelrelease:\n\t@echo 6.1.0-fixture\nbzImage:\n{sleeper}"
            ),
        );
        write(&src.join("linux/Kconfig"), "");
        executable(
            &src.join("linux/scripts/kconfig/merge_config.sh"),
            "#!/bin/sh\nexit 0\n",
        );
        // glibc's configure writes the build directory's makefile.
        let makefile = format!("all:\n{sleeper}")
            .replace('\n', "\\n")
            .replace('\t', "\\t");
        executable(
            &src.join("glibc-2.36/configure"),
            &format!("#!/bin/sh\nprintf '{makefile}' > Makefile\ntouch config.make\n"),
        );
        write(&src.join("glibc-2.36/libc-abis"), "");
        let (linux, glibc) = (base.join("linux.tar.xz"), base.join("glibc.tar.xz"));
        tar(&src, "linux", &linux);
        tar(&src, "glibc-2.36", &glibc);

        let root = base.join("repo");
        let cache = base.join("cache");
        let guest_tests = crate::support::repo().join("guest-tests");
        write(
            &root.join("xsc.toml"),
            &format!(
                r#"[paths]
cache = "{cache}"
guest-tests = "{guest_tests}"

[sources.linux]
package = "linux-source-6.1"
version = "0-fixture"
sha256 = "{linux_sha}"
tarball = "{linux}"

[sources.glibc]
package = "glibc-source"
version = "0-fixture"
sha256 = "{glibc_sha}"
tarball = "{glibc}"

[test]
accel = "tcg"
"#,
                cache = cache.display(),
                guest_tests = guest_tests.display(),
                linux_sha = sha256(&linux),
                linux = linux.display(),
                glibc_sha = sha256(&glibc),
                glibc = glibc.display(),
            ),
        );
        for f in [
            "patches/kernel/series",
            "patches/kernel/configs/qemu.config",
            "patches/kernel/configs/xsc.config",
            "patches/glibc/series",
        ] {
            write(&root.join(f), "");
        }
        write(
            &root.join("scenarios/kernel.toml"),
            "description = \"fixture\"\n[image]\nkind = \"xsc-kernel\"\n\
             [[program]]\nname = \"t\"\ncommand = [\"/bin/true\"]\n",
        );
        write(
            &root.join("scenarios/glibc.toml"),
            &format!(
                "description = \"fixture\"\n[image]\nkind = \"kernel\"\npath = \"{}\"\n\
                 [[program]]\nname = \"t\"\nsource = \"xsc_glibc_test.c\"\nlibc = \"xsc\"\n",
                linux.display()
            ),
        );
        Fixture {
            _dir: dir,
            root,
            cache,
            marker,
        }
    }

    /// Starts `xsc-release <args>` in the fixture repository (its xsc.toml found from the
    /// working directory, its cache in the fixture).
    fn start(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_xsc-release"))
            .args(args)
            .current_dir(&self.root)
            .env_remove("XSC_CONFIG")
            .env_remove("XSC_CACHE_DIR")
            .env_remove("SOURCE_DATE_EPOCH")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Make's process group, once the fixture's make is sleeping in its compile step.
    fn make_group(&self, child: &mut Child) -> i32 {
        let start = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&self.marker) {
                return s.trim().parse().unwrap();
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("xsc-release ended ({status}) before make started");
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "make never started"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Everything under `<cache>/stages/<stage>/`: entries and staging directories.
    fn stored(&self, stage: &str) -> Vec<String> {
        std::fs::read_dir(self.cache.join("stages").join(stage))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Live (not zombie) processes of the group `pgid`: a killed process that its parent has
/// not reaped yet still answers `kill -0`, so /proc decides.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp …; comm may hold spaces, so split after its ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
        fields.first().is_some_and(|s| *s != "Z" && *s != "X")
            && fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
    })
}

/// Kills the fixture's make group when a failed assertion unwinds (a harness that left it
/// behind would leave a sleeper on the machine).
struct KillGroup(i32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        if group_alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0)])
                .status();
        }
    }
}

/// Starts `args`, waits for make's compile step, sends SIGINT, and checks the outcome.
fn interrupt_during_make(args: &[&str], stage: &str) -> String {
    let fx = Fixture::new();
    let mut child = fx.start(args);
    let pgid = fx.make_group(&mut child);
    let _reap = KillGroup(pgid);
    assert!(group_alive(pgid), "make {pgid} is running");
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    // A harness that waited for make would sit here for SLEEP seconds: wait's limit fails
    // it long before.
    let out = wait(child, Duration::from_secs(120));
    let all = text(&out);
    assert_eq!(out.status.code(), Some(130), "{all}");
    assert!(
        !group_alive(pgid),
        "make's group {pgid} outlived the harness\n{all}"
    );
    assert_eq!(fx.stored(stage), Vec::<String>::new(), "{all}");
    all
}

#[test]
fn ctrl_c_during_the_kernel_make_of_a_test_run_stops_it_and_stores_nothing() {
    let all = interrupt_during_make(&["test", "kernel"], "kernel");
    assert!(all.contains("1 scenario(s) not run: interrupted"), "{all}");
    assert!(
        !all.contains("error:"),
        "an interrupt is not an error: {all}"
    );
}

#[test]
fn ctrl_c_during_the_glibc_make_of_a_test_run_stops_it_and_stores_nothing() {
    let all = interrupt_during_make(&["test", "glibc"], "glibc");
    assert!(all.contains("1 scenario(s) not run: interrupted"), "{all}");
}

#[test]
fn ctrl_c_during_build_kernel_stops_make_and_stores_nothing() {
    interrupt_during_make(&["build", "kernel"], "kernel");
}

#[test]
fn ctrl_c_during_build_glibc_stops_make_and_stores_nothing() {
    interrupt_during_make(&["build", "glibc"], "glibc");
}
