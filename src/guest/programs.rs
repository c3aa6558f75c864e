//! Guest programs: the C files under `guest-tests/`, compiled statically on the host and
//! cached by content, and the initramfs that carries them with PID 1 and the plan.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::guest::initramfs::{Archive, Member, PlanEntry, plan_text};
use crate::sys::cache::{Cache, EntryInfo, KeyBuilder};
use crate::sys::process::{self, Cmd, ProcessError};

/// Compiler flags for every guest program: static so the initramfs needs no libc.
pub(crate) const CFLAGS: &[&str] = &["-static", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread"];

/// Path of PID 1's source, relative to `guest-tests/`.
pub(crate) const INIT_SOURCE: &str = "init/xsc-init.c";

/// Why a guest program or the initramfs could not be made.
#[derive(Debug, thiserror::Error)]
pub enum GuestBuildError {
    /// The compiler failed or is missing.
    #[error("failed to compile guest program {source_file}")]
    Compile {
        /// The C file.
        source_file: PathBuf,
        /// The compiler run.
        #[source]
        source: ProcessError,
    },
    /// The cache could not be written or read.
    #[error("guest build cache i/o on {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

impl GuestBuildError {
    /// Build failures are 3; a missing compiler is the host's problem (4).
    pub fn exit_code(&self) -> crate::exit_code::ExitCode {
        match self {
            GuestBuildError::Compile { source, .. } if source.is_not_found() => {
                crate::exit_code::ExitCode::Harness
            }
            GuestBuildError::Compile { .. } => crate::exit_code::ExitCode::BuildFailed,
            GuestBuildError::Io { .. } => crate::exit_code::ExitCode::Harness,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GuestBuildError + '_ {
    move |source| GuestBuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A C library to link guest programs against other than the host's: the XSC glibc's
/// sysroot (glibc stage) and the key that identifies its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Sysroot {
    /// Passed as `--sysroot`: headers, crt files and `libc.a` below it.
    pub dir: PathBuf,
    /// The glibc stage's cache key.
    pub key: String,
}

/// The compiler command line for one program (pure). With a sysroot, gcc takes headers,
/// start files and `libc.a` from it instead of the host's glibc. `--sysroot` alone moves
/// only the headers: Debian's gcc is built without sysroot support and finds `crt1.o`
/// and `libc.a` through its own prefix, so `-B` (start files) and `-L` (libraries) point
/// at the sysroot's libdir too.
pub(crate) fn compile_cmd(
    source: &Path,
    include_dir: &Path,
    output: &Path,
    sysroot: Option<&Path>,
) -> Cmd {
    let mut argv: Vec<std::ffi::OsString> = vec!["gcc".into()];
    if let Some(root) = sysroot {
        let libdir = root.join("usr/lib64");
        argv.push(format!("--sysroot={}", root.display()).into());
        argv.push(format!("-B{}/", libdir.display()).into());
        argv.push(format!("-L{}", libdir.display()).into());
    }
    argv.extend(CFLAGS.iter().map(Into::into));
    argv.push(format!("-I{}", include_dir.display()).into());
    argv.push("-o".into());
    argv.push(output.into());
    argv.push(source.into());
    // C locale: plain quotes in diagnostics, the same log text on every host.
    Cmd::new(argv)
        .env("LC_ALL", "C")
        .deadline(Duration::from_secs(300))
}

async fn toolchain_id() -> String {
    match process::run(&Cmd::new(["gcc", "--version"]), None).await {
        Ok(out) => out.stdout.lines().next().unwrap_or_default().to_string(),
        Err(_) => "gcc: unavailable".into(),
    }
}

/// Compiles `guest-tests/<rel>` (cached by its content, the headers beside it, the flags,
/// the compiler version and the C library) and returns the binary.
pub(crate) async fn compile(
    cache: &Cache,
    guest_tests: &Path,
    rel: &Path,
    sysroot: Option<&Sysroot>,
) -> Result<PathBuf, GuestBuildError> {
    let source = guest_tests.join(rel);
    let mut key = KeyBuilder::new();
    key.str("recipe", "guest-program-v1")
        .str("cflags", &CFLAGS.join(" "))
        .str("toolchain", &toolchain_id().await);
    if let Some(root) = sysroot {
        key.str("libc", &format!("xsc-glibc {}", root.key));
    }
    key.file("source", &source).map_err(io(&source))?;
    for header in crate::sys::cache::walk_sorted(guest_tests).map_err(io(guest_tests))? {
        if header.extension().is_some_and(|e| e == "h") {
            key.file(
                &format!("header/{}", header.display()),
                &guest_tests.join(&header),
            )
            .map_err(io(guest_tests))?;
        }
    }
    let key = key.finish();
    let name = rel
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "prog".into());
    if let Some(entry) = cache.lookup("guest-program", &key) {
        if let Some(bin) = entry.artifact(&name) {
            return Ok(bin);
        }
    }
    let staged = cache
        .staging("guest-program", &key)
        .map_err(io(cache.root()))?;
    let cmd = compile_cmd(
        &source,
        guest_tests,
        &staged.join(&name),
        sysroot.map(|r| r.dir.as_path()),
    );
    process::run(&cmd, None)
        .await
        .map_err(|e| GuestBuildError::Compile {
            source_file: source.clone(),
            source: e,
        })?;
    let info = EntryInfo {
        stage: "guest-program".into(),
        key,
        created: 0,
        inputs: vec![("source".into(), rel.display().to_string())],
        artifacts: [(name.clone(), name.clone())].into(),
        facts: BTreeMap::new(),
    };
    let entry = cache.commit(&staged, info).map_err(io(cache.root()))?;
    Ok(entry.artifact(&name).expect("artifact recorded above"))
}

/// A program to put in the initramfs.
#[derive(Clone, Debug)]
pub(crate) enum GuestProgram {
    /// A compiled binary, installed as `/xsc/bin/<name>`.
    Binary {
        /// KTAP name.
        name: String,
        /// Host path of the binary.
        path: PathBuf,
        /// Arguments.
        args: Vec<String>,
        /// Clock.
        timeout: Duration,
    },
    /// A command already in the initramfs (busybox applets).
    Command {
        /// KTAP name.
        name: String,
        /// argv.
        argv: Vec<String>,
        /// Clock.
        timeout: Duration,
    },
}

/// Busybox applets linked into `/bin` when a scenario asks for a shell. Fixed, rather than
/// `busybox --list`, so the archive does not change with the host's busybox build.
pub(crate) const BUSYBOX_APPLETS: &[&str] = &[
    "cat", "cp", "dd", "dmesg", "echo", "grep", "head", "ls", "mkdir", "mount", "poweroff",
    "printf", "ps", "rm", "sh", "sleep", "sync", "tail", "true", "false", "uname", "umount",
];

/// A host directory copied into the initramfs under a guest path (files keep their mode,
/// symlinks stay links).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ExtraTree {
    /// Absolute path in the guest, e.g. `/xsc/glibc`.
    pub guest: String,
    /// The host directory.
    pub host: PathBuf,
}

/// Assembles the initramfs for `programs` and `trees` (cached by content) and returns its
/// path.
pub(crate) async fn initramfs(
    cache: &Cache,
    init: &Path,
    programs: &[GuestProgram],
    trees: &[ExtraTree],
    busybox: Option<&Path>,
    mtime: u32,
) -> Result<PathBuf, GuestBuildError> {
    let mut archive = Archive::skeleton();
    archive.add(
        "init",
        Member::File {
            mode: 0o755,
            data: std::fs::read(init).map_err(io(init))?,
        },
    );
    let mut plan = Vec::new();
    for p in programs {
        match p {
            GuestProgram::Binary {
                name,
                path,
                args,
                timeout,
            } => {
                // By program name: one source may be built twice (host and XSC libc).
                let guest_path = format!("/xsc/bin/{name}");
                archive.add(
                    &guest_path,
                    Member::File {
                        mode: 0o755,
                        data: std::fs::read(path).map_err(io(path))?,
                    },
                );
                let mut argv = vec![guest_path];
                argv.extend(args.iter().cloned());
                plan.push(PlanEntry {
                    name: name.clone(),
                    timeout: *timeout,
                    argv,
                });
            }
            GuestProgram::Command {
                name,
                argv,
                timeout,
            } => {
                plan.push(PlanEntry {
                    name: name.clone(),
                    timeout: *timeout,
                    argv: argv.clone(),
                });
            }
        }
    }
    for tree in trees {
        add_tree(&mut archive, tree)?;
    }
    if let Some(bb) = busybox {
        archive.add(
            "bin/busybox",
            Member::File {
                mode: 0o755,
                data: std::fs::read(bb).map_err(io(bb))?,
            },
        );
        for applet in BUSYBOX_APPLETS {
            archive.add(&format!("bin/{applet}"), Member::Symlink("busybox".into()));
        }
    }
    archive.add(
        "xsc/plan",
        Member::File {
            mode: 0o644,
            data: plan_text(&plan).into_bytes(),
        },
    );
    let bytes = archive.to_newc(mtime);
    let key = KeyBuilder::new()
        .str("recipe", "initramfs-v1")
        .str("content", &crate::sys::cache::sha256_bytes(&bytes))
        .finish();
    if let Some(entry) = cache.lookup("initramfs", &key) {
        if let Some(p) = entry.artifact("initramfs.cpio") {
            return Ok(p);
        }
    }
    let staged = cache.staging("initramfs", &key).map_err(io(cache.root()))?;
    std::fs::write(staged.join("initramfs.cpio"), &bytes).map_err(io(&staged))?;
    let info = EntryInfo {
        stage: "initramfs".into(),
        key,
        created: 0,
        inputs: plan
            .iter()
            .map(|p| (p.name.clone(), p.argv.join(" ")))
            .collect(),
        artifacts: [("initramfs.cpio".to_string(), "initramfs.cpio".to_string())].into(),
        facts: BTreeMap::new(),
    };
    let entry = cache.commit(&staged, info).map_err(io(cache.root()))?;
    Ok(entry
        .artifact("initramfs.cpio")
        .expect("artifact recorded above"))
}

fn add_tree(archive: &mut Archive, tree: &ExtraTree) -> Result<(), GuestBuildError> {
    use std::os::unix::fs::PermissionsExt;
    let base = tree.guest.trim_end_matches('/');
    for rel in crate::sys::cache::walk_sorted(&tree.host).map_err(io(&tree.host))? {
        let host = tree.host.join(&rel);
        let meta = std::fs::symlink_metadata(&host).map_err(io(&host))?;
        let guest = format!("{base}/{}", rel.display());
        let member = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host).map_err(io(&host))?;
            Member::Symlink(target.to_string_lossy().to_string())
        } else {
            Member::File {
                mode: meta.permissions().mode() & 0o7777,
                data: std::fs::read(&host).map_err(io(&host))?,
            }
        };
        archive.add(&guest, member);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_argv_is_static_and_strict() {
        let cmd = compile_cmd(
            Path::new("gt/sanity.c"),
            Path::new("gt"),
            Path::new("/c/sanity"),
            None,
        );
        assert_eq!(
            cmd.to_string(),
            "LC_ALL=C gcc -static -O2 -Wall -Wextra -Werror -pthread -Igt -o /c/sanity gt/sanity.c"
        );
        let xsc = compile_cmd(
            Path::new("gt/t.c"),
            Path::new("gt"),
            Path::new("/c/t"),
            Some(Path::new("/g/sysroot")),
        );
        assert_eq!(
            xsc.to_string(),
            "LC_ALL=C gcc --sysroot=/g/sysroot -B/g/sysroot/usr/lib64/ -L/g/sysroot/usr/lib64 -static -O2 -Wall -Wextra -Werror -pthread -Igt -o /c/t gt/t.c"
        );
    }

    #[tokio::test]
    async fn compiles_once_and_reports_errors_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let gt = dir.path().join("gt");
        std::fs::create_dir_all(&gt).unwrap();
        std::fs::write(gt.join("ok.c"), "int main(void) { return 0; }\n").unwrap();
        let a = compile(&cache, &gt, Path::new("ok.c"), None).await.unwrap();
        let b = compile(&cache, &gt, Path::new("ok.c"), None).await.unwrap();
        assert_eq!(a, b);
        assert!(a.is_file());
        std::fs::write(gt.join("bad.c"), "int main(void) { return x; }\n").unwrap();
        let err = compile(&cache, &gt, Path::new("bad.c"), None)
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), crate::exit_code::ExitCode::BuildFailed);
        let GuestBuildError::Compile { source, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(
            source.tail().unwrap_or_default().contains("'x' undeclared"),
            "{source:?}"
        );
    }
}
