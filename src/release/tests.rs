//! End-to-end tests of the release half with real files and real tools: candidate →
//! verify (and the tamper matrix) → promote; never-overwrite, lock, crash and disk-full
//! cleanup; `sha256sum -c` and the `minisign` CLI on a published directory.

// Test code: it says why it skips (clippy.toml is for product code).
#![allow(clippy::disallowed_macros)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};

use zeroize::Zeroizing;

use super::checksums::{Digests, SumEntry, parse_sums, render_sums};
use super::error::ReleaseError;
use super::keys::{self, PasswordSource, Protection, ReleaseKey, TrustedKeys};
use super::manifest::{
    InputDigest, InputKind, Manifest, ReleaseInputs, SignedBy, SourceVersions, TestSummary, names,
};
use super::promote::{PromoteOptions, create_candidate, promote};
use super::publish::{FAULT, Published, Release, publish};
use super::sign::{TrustedComment, minisig};
use super::verify::{FailureKind, verify_release};
use crate::exit_code::ExitCode;
use crate::sys::process::{Cmd, run};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const KERNEL: &str = "xsc-kernel-bzImage";
const ISO: &str = "xsc-debian12-amd64.iso";

struct Fixture {
    tmp: tempfile::TempDir,
    inputs: ReleaseInputs,
    dev: ReleaseKey,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("build");
        fs::create_dir(&src).unwrap();
        let pseudo = |n: usize, seed: u8| -> Vec<u8> {
            (0..n)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect()
        };
        fs::write(src.join(KERNEL), pseudo(300 * 1024, 1)).unwrap();
        fs::write(src.join(ISO), pseudo(1024 * 1024 + 17, 2)).unwrap();
        fs::write(src.join("results.xml"), "<testsuites name=\"xsc\"/>\n").unwrap();
        fs::write(src.join("0001-xsc.patch"), "--- a\n+++ b\n").unwrap();
        fs::write(src.join("config-6.1"), "CONFIG_XSC=y\n").unwrap();
        let inputs = ReleaseInputs {
            version: "0.1.0".into(),
            commit: COMMIT.into(),
            artifacts: vec![src.join(KERNEL), src.join(ISO)],
            artifact_paths: Vec::new(),
            junit: Some(src.join("results.xml")),
            sources: SourceVersions {
                kernel: "6.1.192".into(),
                glibc: "2.36".into(),
                debian_suite: "bookworm".into(),
            },
            inputs: vec![
                InputDigest::from_file(InputKind::Patch, &src.join("0001-xsc.patch"), None)
                    .unwrap(),
                InputDigest::from_file(InputKind::Config, &src.join("config-6.1"), None).unwrap(),
            ],
            toolchain: [("gcc".to_string(), "12.2.0".to_string())].into(),
            tests: TestSummary {
                passed: 12,
                failed: 0,
                skipped: 1,
            },
            flaky: Vec::new(),
            allowed_regressions: Vec::new(),
            profile: "debian".into(),
            source_date_epoch: Some(1_700_000_000),
            builder_id: None,
            not_built: Default::default(),
            repository_signing: None,
        };
        let dev = keys::dev_key(&tmp.path().join("cache")).unwrap();
        Fixture { tmp, inputs, dev }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn candidate(&self) -> Published {
        create_candidate(&self.inputs, &self.dev, &self.path("candidates")).unwrap()
    }

    fn dev_trust(&self) -> TrustedKeys {
        TrustedKeys::new(vec![self.dev.trusted()])
    }

    fn release_key(&self) -> ReleaseKey {
        let pw = PasswordSource::Given(Zeroizing::new("release-pw".into()));
        let made =
            keys::generate(&self.path("relkeys"), &Protection::Password(pw.clone())).unwrap();
        keys::load_secret_key(&made.secret, &pw).unwrap()
    }
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[tokio::test]
async fn candidate_verifies_with_our_verifier_sha256sum_and_minisign_cli() {
    let fx = Fixture::new();
    let cand = fx.candidate();
    assert!(
        cand.name.starts_with("0.1.0-g0123456789ab-"),
        "{}",
        cand.name
    );
    let report = verify_release(&cand.dir, &fx.dev_trust()).unwrap();
    assert!(report.passed(), "{}", report.render());
    assert_eq!(report.exit_code(), ExitCode::Success);

    let m = report.manifest.as_ref().unwrap();
    assert_eq!(m.signed_by, SignedBy::Dev);
    assert_eq!(m.key_id, fx.dev.id().to_string());
    assert_eq!(m.sources.glibc, "2.36");
    assert_eq!(m.inputs.len(), 2);
    assert_eq!(m.artifacts().count(), 2);
    assert!(entries(&cand.dir).contains(&"junit.xml".to_string()));
    let readme = fs::read_to_string(cand.dir.join(names::README)).unwrap();
    assert!(
        readme.contains("sha256sum -c SHA256SUMS")
            && readme.contains("minisign -Vm SHA256SUMS -P RW"),
        "{readme}"
    );
    assert!(readme.contains("DEVELOPMENT key"), "{readme}");

    // Stock tools, as the README tells a user.
    let out = run(
        &Cmd::new(["sha256sum", "--strict", "-c", "SHA256SUMS"]).cwd(&cand.dir),
        None,
    )
    .await
    .unwrap();
    assert!(out.stdout.contains(&format!("{ISO}: OK")), "{}", out.stdout);
    let pubkey = fx.dev.public_key_base64();
    for file in [names::SUMS, KERNEL, ISO, names::MANIFEST, names::PROVENANCE] {
        run(
            &Cmd::new(["minisign", "-V", "-H", "-m", file, "-P", &pubkey]).cwd(&cand.dir),
            None,
        )
        .await
        .unwrap();
    }
    // And a lock file or temp dir is all that may remain beside it.
    let root = entries(&fx.path("candidates"));
    assert_eq!(root, vec![".lock".to_string(), cand.name.clone()]);
}

/// The package repositories ship as directories: every file listed, signed and checked
/// by `sha256sum -c`, kept by promote; a file slipped into them is unlisted; a name that
/// would leave the directory is refused.
#[tokio::test]
async fn repository_directories_are_listed_verified_and_promoted() {
    let mut fx = Fixture::new();
    let apt = fx.path("build/apt");
    let repodata = fx.path("build/rpm/repodata");
    fs::create_dir_all(&apt).unwrap();
    fs::create_dir_all(&repodata).unwrap();
    fs::write(apt.join("xsc-tests_1.0+xsc1_amd64.deb"), "deb").unwrap();
    fs::write(apt.join("InRelease"), "signed").unwrap();
    fs::write(repodata.join("repomd.xml"), "<repomd/>").unwrap();
    fs::write(fx.path("build/rpm/kernel-6.1-1.x86_64.rpm"), "rpm").unwrap();
    let build = fx.path("build");
    fx.inputs.artifact_paths = [
        "apt/xsc-tests_1.0+xsc1_amd64.deb",
        "apt/InRelease",
        "rpm/repodata/repomd.xml",
        "rpm/kernel-6.1-1.x86_64.rpm",
    ]
    .iter()
    .map(|n| ((*n).to_string(), build.join(n)))
    .collect();
    fx.inputs.repository_signing = Some("GPG-signed by 8737…F656".into());
    let cand = fx.candidate();
    let report = verify_release(&cand.dir, &fx.dev_trust()).unwrap();
    assert!(report.passed(), "{}", report.render());
    let m = report.manifest.as_ref().unwrap();
    let names: Vec<&str> = m.artifacts().map(|a| a.name.as_str()).collect();
    assert!(names.contains(&"apt/InRelease"), "{names:?}");
    assert!(names.contains(&"rpm/repodata/repomd.xml"), "{names:?}");
    assert_eq!(
        fs::read_to_string(cand.dir.join("rpm/repodata/repomd.xml")).unwrap(),
        "<repomd/>"
    );
    let out = run(
        &Cmd::new(["sha256sum", "--strict", "-c", "SHA256SUMS"]).cwd(&cand.dir),
        None,
    )
    .await
    .unwrap();
    assert!(
        out.stdout.contains("rpm/repodata/repomd.xml: OK"),
        "{}",
        out.stdout
    );

    let rel = fx.release_key();
    let root = fx.path("releases");
    let trusted = fx.dev_trust();
    promote(&cand.dir, "1.0.0", &rel, &opts(&fx, &root, &trusted)).unwrap();
    let dir = root.join("1.0.0");
    let report = verify_release(&dir, &TrustedKeys::new(vec![rel.trusted()])).unwrap();
    assert!(report.passed(), "{}", report.render());
    assert_eq!(fs::read(dir.join("apt/InRelease")).unwrap(), b"signed");
    // The promoted manifest still says how the repositories are signed.
    let promoted: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        promoted["repository-signing"], "GPG-signed by 8737…F656",
        "{promoted:#}"
    );

    // A file slipped into a repository is not part of the release.
    fs::write(cand.dir.join("rpm/repodata/extra.xml"), "x").unwrap();
    let report = verify_release(&cand.dir, &fx.dev_trust()).unwrap();
    assert!(
        report.failure_kinds().contains(&FailureKind::UnlistedFile),
        "{}",
        report.render()
    );
    // A hidden or escaping name is refused before anything is written.
    fs::write(apt.join(".hidden"), "x").unwrap();
    fx.inputs
        .artifact_paths
        .push(("apt/.hidden".into(), apt.join(".hidden")));
    let err = create_candidate(&fx.inputs, &fx.dev, &fx.path("candidates2")).unwrap_err();
    assert!(matches!(err, ReleaseError::BadArtifactName { .. }), "{err}");
    fx.inputs.artifact_paths.pop();
    fx.inputs
        .artifact_paths
        .push(("apt/../x".into(), apt.join("InRelease")));
    let err = create_candidate(&fx.inputs, &fx.dev, &fx.path("candidates3")).unwrap_err();
    assert!(matches!(err, ReleaseError::BadArtifactName { .. }), "{err}");
}

/// Re-signs `file` in `dir` (and SHA256SUMS) as a buggy but honest signer would, so the
/// semantic checks are exercised rather than the signature checks.
fn resign(dir: &Path, key: &ReleaseKey, file: &str) {
    let m: Manifest =
        serde_json::from_slice(&fs::read(dir.join(names::MANIFEST)).unwrap()).unwrap();
    let sign = |name: &str| {
        let d = Digests::of_bytes(&fs::read(dir.join(name)).unwrap());
        let tc = TrustedComment {
            timestamp: 1,
            file: name.into(),
            sha256: d.sha256_hex(),
            version: m.version.clone(),
            commit: m.commit.clone(),
        };
        fs::write(
            dir.join(format!("{name}.minisig")),
            minisig(key, &d.blake2b, &tc.to_string()),
        )
        .unwrap();
    };
    let mut sums = parse_sums(&fs::read_to_string(dir.join(names::SUMS)).unwrap()).unwrap();
    for e in &mut sums {
        if e.name == file {
            e.sha256 = Digests::of_bytes(&fs::read(dir.join(file)).unwrap()).sha256_hex();
        }
    }
    fs::write(dir.join(names::SUMS), render_sums(&sums)).unwrap();
    sign(file);
    sign(names::SUMS);
}

#[test]
fn tamper_matrix_reports_the_right_kind_and_exit_1() {
    let fx = Fixture::new();
    let cand = fx.candidate();
    let other = keys::dev_key(&fx.path("other-cache")).unwrap();
    type Tamper<'a> = Box<dyn Fn(&Path) + 'a>;
    let cases: Vec<(&str, Tamper<'_>, TrustedKeys, BTreeSet<FailureKind>)> = vec![
        (
            "missing file",
            Box::new(|d: &Path| fs::remove_file(d.join(ISO)).unwrap()),
            fx.dev_trust(),
            [FailureKind::MissingFile].into(),
        ),
        (
            "changed byte",
            Box::new(|d: &Path| {
                let mut b = fs::read(d.join(ISO)).unwrap();
                b[4096] ^= 1;
                fs::write(d.join(ISO), b).unwrap();
            }),
            fx.dev_trust(),
            [FailureKind::ChangedFile].into(),
        ),
        (
            "wrong key",
            Box::new(|_: &Path| {}),
            TrustedKeys::new(vec![other.trusted()]),
            [FailureKind::UntrustedKey].into(),
        ),
        (
            "truncated signature",
            Box::new(|d: &Path| {
                let p = d.join(format!("{KERNEL}.minisig"));
                let t = fs::read_to_string(&p).unwrap();
                fs::write(&p, &t[..t.len() * 2 / 3]).unwrap();
            }),
            fx.dev_trust(),
            [FailureKind::BadSignature].into(),
        ),
        (
            "swapped signatures",
            Box::new(|d: &Path| {
                let (a, b) = (
                    d.join(format!("{KERNEL}.minisig")),
                    d.join(format!("{ISO}.minisig")),
                );
                let (ta, tb) = (fs::read(&a).unwrap(), fs::read(&b).unwrap());
                fs::write(&a, tb).unwrap();
                fs::write(&b, ta).unwrap();
            }),
            fx.dev_trust(),
            [FailureKind::SwappedSignature].into(),
        ),
        (
            "manifest mismatch",
            Box::new(|d: &Path| {
                let mut m: Manifest =
                    serde_json::from_slice(&fs::read(d.join(names::MANIFEST)).unwrap()).unwrap();
                m.files.iter_mut().find(|f| f.name == ISO).unwrap().sha256 = "00".repeat(32);
                fs::write(d.join(names::MANIFEST), m.to_json()).unwrap();
                resign(d, &fx.dev, names::MANIFEST);
            }),
            fx.dev_trust(),
            [
                FailureKind::ManifestMismatch,
                FailureKind::ProvenanceMismatch,
            ]
            .into(),
        ),
        (
            "unlisted file",
            Box::new(|d: &Path| fs::write(d.join("extra.bin"), b"sneaky").unwrap()),
            fx.dev_trust(),
            [FailureKind::UnlistedFile].into(),
        ),
        (
            "edited checksum list",
            Box::new(|d: &Path| {
                let t = fs::read_to_string(d.join(names::SUMS)).unwrap();
                let sums: Vec<SumEntry> = parse_sums(&t)
                    .unwrap()
                    .into_iter()
                    .filter(|e| e.name != KERNEL)
                    .collect();
                fs::write(d.join(names::SUMS), render_sums(&sums)).unwrap();
            }),
            fx.dev_trust(),
            // The list no longer matches its signature, and the kernel became unlisted.
            [
                FailureKind::ChangedFile,
                FailureKind::UnlistedFile,
                FailureKind::ManifestMismatch,
            ]
            .into(),
        ),
    ];
    for (i, (what, tamper, trusted, expected)) in cases.into_iter().enumerate() {
        let dir = fx.path(&format!("case{i}"));
        copy_dir(&cand.dir, &dir);
        assert!(
            verify_release(&dir, &fx.dev_trust()).unwrap().passed(),
            "{what}: copy should verify"
        );
        tamper(&dir);
        let report = verify_release(&dir, &trusted).unwrap();
        assert_eq!(
            report.failure_kinds(),
            expected,
            "{what}:\n{}",
            report.render()
        );
        assert_eq!(report.exit_code(), ExitCode::ProductFailed, "{what}");
        assert!(report.render().contains("DOES NOT VERIFY"), "{what}");
    }
}

#[test]
fn verify_argument_errors_exit_2() {
    let fx = Fixture::new();
    let err = verify_release(&fx.path("nowhere"), &fx.dev_trust()).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
    let err = verify_release(fx.tmp.path(), &TrustedKeys::default()).unwrap_err();
    assert!(matches!(err, ReleaseError::NoTrustedKey), "{err}");
    let err = crate::app::release::trusted_keys(Some(&fx.path("missing.pub")), None).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
    let err = crate::app::release::trusted_keys(None, None).unwrap_err();
    assert_eq!(err.exit_code(), ExitCode::BadInput, "{err}");
}

fn opts<'a>(fx: &'a Fixture, root: &'a Path, trusted: &'a TrustedKeys) -> PromoteOptions<'a> {
    PromoteOptions {
        publish_root: root,
        trusted,
        allow_flaky: false,
        dev_key_id: Some(fx.dev.id()),
        keyring: None,
    }
}

#[tokio::test]
async fn promote_resigns_with_the_release_key_and_never_overwrites() {
    let fx = Fixture::new();
    let cand = fx.candidate();
    let rel = fx.release_key();
    let root = fx.path("releases");
    let trusted = fx.dev_trust();

    let promoted = promote(&cand.dir, "1.0.0", &rel, &opts(&fx, &root, &trusted)).unwrap();
    let dir = root.join("1.0.0");
    assert_eq!(promoted.published.dir, dir);
    let report = verify_release(&dir, &TrustedKeys::new(vec![rel.trusted()])).unwrap();
    assert!(report.passed(), "{}", report.render());
    let m = report.manifest.unwrap();
    assert_eq!(
        (m.signed_by, m.version.as_str(), m.key_id),
        (SignedBy::Release, "1.0.0", rel.id().to_string())
    );
    let from = m.promoted_from.unwrap();
    assert_eq!(
        (from.id.as_str(), from.key_id),
        (cand.name.as_str(), fx.dev.id().to_string())
    );
    // The dev key does not vouch for the release.
    let by_dev = verify_release(&dir, &fx.dev_trust()).unwrap();
    assert!(by_dev.failure_kinds().contains(&FailureKind::UntrustedKey));
    // Same artifact bytes as the candidate.
    assert_eq!(
        fs::read(dir.join(ISO)).unwrap(),
        fs::read(cand.dir.join(ISO)).unwrap()
    );
    run(
        &Cmd::new(["sha256sum", "--strict", "-c", "SHA256SUMS"]).cwd(&dir),
        None,
    )
    .await
    .unwrap();
    run(
        &Cmd::new([
            "minisign",
            "-Vm",
            "SHA256SUMS",
            "-P",
            &rel.public_key_base64(),
        ])
        .cwd(&dir),
        None,
    )
    .await
    .unwrap();

    let before = fs::read(dir.join(names::MANIFEST)).unwrap();
    let err = promote(&cand.dir, "1.0.0", &rel, &opts(&fx, &root, &trusted)).unwrap_err();
    assert!(matches!(err, ReleaseError::VersionExists { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::ReleaseRefused);
    assert!(
        err.to_string().contains("version 1.0.0 already exists"),
        "{err}"
    );
    assert_eq!(fs::read(dir.join(names::MANIFEST)).unwrap(), before);

    let err = promote(&cand.dir, "1.0.1", &fx.dev, &opts(&fx, &root, &trusted)).unwrap_err();
    assert!(
        matches!(err, ReleaseError::DevKeyForRelease { .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), ExitCode::ReleaseRefused);
    for bad in ["1.0", "1.0.0-rc1", "01.0.0", "v1.0.0", "1.0.0.0"] {
        let err = promote(&cand.dir, bad, &rel, &opts(&fx, &root, &trusted)).unwrap_err();
        assert_eq!(err.exit_code(), ExitCode::BadInput, "{bad}: {err}");
    }
    assert_eq!(
        entries(&root),
        vec![".lock".to_string(), "1.0.0".to_string()]
    );
}

#[test]
fn promote_applies_the_gates() {
    let mut fx = Fixture::new();
    let rel = fx.release_key();
    let root = fx.path("releases");
    let trusted = fx.dev_trust();

    fx.inputs.flaky = vec!["boot/uefi-disk".into()];
    let flaky = fx.candidate();
    let err = promote(&flaky.dir, "1.1.0", &rel, &opts(&fx, &root, &trusted)).unwrap_err();
    assert!(matches!(err, ReleaseError::FlakyCandidate { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::ReleaseRefused);
    assert!(
        err.to_string().contains("boot/uefi-disk") && err.to_string().contains("--allow-flaky"),
        "{err}"
    );
    let allow = PromoteOptions {
        allow_flaky: true,
        ..opts(&fx, &root, &trusted)
    };
    let p = promote(&flaky.dir, "1.1.0", &rel, &allow).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.published.dir.join(names::MANIFEST)).unwrap())
            .unwrap();
    assert_eq!(manifest["flaky"], serde_json::json!(["boot/uefi-disk"]));

    fx.inputs.flaky.clear();
    fx.inputs.tests.failed = 2;
    fx.inputs.version = "0.1.1".into(); // a different candidate id
    let red = fx.candidate();
    let err = promote(&red.dir, "1.2.0", &rel, &opts(&fx, &root, &trusted)).unwrap_err();
    assert!(
        matches!(err, ReleaseError::RedGate { failed: 2, .. }),
        "{err}"
    );

    fx.inputs.tests.failed = 0;
    fx.inputs.version = "0.1.2".into();
    let tampered = fx.candidate();
    let mut b = fs::read(tampered.dir.join(KERNEL)).unwrap();
    b[0] ^= 0xff;
    fs::write(tampered.dir.join(KERNEL), b).unwrap();
    let err = promote(&tampered.dir, "1.3.0", &rel, &opts(&fx, &root, &trusted)).unwrap_err();
    assert!(
        matches!(err, ReleaseError::CandidateDidNotVerify { .. }),
        "{err}"
    );
    assert_eq!(err.exit_code(), ExitCode::ProductFailed);
    assert_eq!(
        entries(&root),
        vec![".lock".to_string(), "1.1.0".to_string()]
    );

    // The keyring gate: a key that is not listed as current may not sign.
    let ring = fx.path("keys.json");
    fs::write(&ring, r#"{"keys": []}"#).unwrap();
    let with_ring = PromoteOptions {
        keyring: Some(&ring),
        ..opts(&fx, &root, &trusted)
    };
    let err = promote(&flaky.dir, "1.4.0", &rel, &with_ring).unwrap_err();
    assert!(matches!(err, ReleaseError::KeyNotCurrent { .. }), "{err}");
}

#[test]
fn concurrent_publishes_of_one_version_exactly_one_wins() {
    let fx = Fixture::new();
    let root = fx.path("releases");
    let threads = 4;
    let barrier = Arc::new(Barrier::new(threads));
    let results: Vec<Result<Published, ReleaseError>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let barrier = Arc::clone(&barrier);
                let fx = &fx;
                let root = &root;
                s.spawn(move || {
                    let release = Release {
                        inputs: &fx.inputs,
                        key: &fx.dev,
                        signed_by: SignedBy::Dev,
                        promoted_from: None,
                        expect_sha256: None,
                        timestamp: None,
                    };
                    barrier.wait();
                    publish(&release, root, "2.0.0")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for r in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(matches!(r, ReleaseError::VersionExists { .. }), "{r}");
    }
    assert_eq!(
        entries(&root),
        vec!["2.0.0".to_string()],
        "temp dirs left behind"
    );
    assert!(
        verify_release(&root.join("2.0.0"), &fx.dev_trust())
            .unwrap()
            .passed()
    );
}

#[test]
fn interrupted_publish_leaves_nothing() {
    let fx = Fixture::new();
    let root = fx.path("releases");
    let release = Release {
        inputs: &fx.inputs,
        key: &fx.dev,
        signed_by: SignedBy::Dev,
        promoted_from: None,
        expect_sha256: None,
        timestamp: None,
    };
    for point in ["after-artifacts", "after-sums", "before-rename"] {
        FAULT.with(|f| f.set(Some(point)));
        let err = publish(&release, &root, "3.0.0").unwrap_err();
        FAULT.with(|f| f.set(None));
        assert!(err.to_string().contains("injected fault"), "{point}: {err}");
        assert_eq!(
            entries(&root),
            Vec::<String>::new(),
            "{point}: partial release left"
        );
    }
    // A missing input also fails cleanly, before anything is written.
    let mut inputs = fx.inputs.clone();
    inputs.artifacts.push(fx.path("build/not-there.iso"));
    let bad = Release {
        inputs: &inputs,
        key: &fx.dev,
        signed_by: SignedBy::Dev,
        promoted_from: None,
        expect_sha256: None,
        timestamp: None,
    };
    let err = publish(&bad, &root, "3.0.0").unwrap_err();
    assert!(matches!(err, ReleaseError::MissingInput { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert_eq!(entries(&root), Vec::<String>::new());
    // A promote whose source changed after verification stops and cleans up too.
    let changed = Release {
        expect_sha256: Some(
            [
                (KERNEL.to_string(), "00".repeat(32)),
                (ISO.to_string(), "00".repeat(32)),
            ]
            .into(),
        ),
        ..bad
    };
    let changed = Release {
        inputs: &fx.inputs,
        ..changed
    };
    let err = publish(&changed, &root, "3.0.0").unwrap_err();
    assert!(
        matches!(err, ReleaseError::CandidateDidNotVerify { .. }),
        "{err}"
    );
    assert_eq!(entries(&root), Vec::<String>::new());
    publish(&release, &root, "3.0.0").unwrap();
}

#[test]
fn lock_held_refuses_a_second_candidate() {
    let fx = Fixture::new();
    let _held = super::lock::PublishLock::acquire(&fx.path("candidates")).unwrap();
    let err = create_candidate(&fx.inputs, &fx.dev, &fx.path("candidates")).unwrap_err();
    assert!(matches!(err, ReleaseError::LockHeld { .. }), "{err}");
    assert_eq!(err.exit_code(), ExitCode::ReleaseRefused);
}

#[test]
fn bad_inputs_are_refused_before_writing() {
    let fx = Fixture::new();
    let root = fx.path("releases");
    let try_with = |edit: &dyn Fn(&mut ReleaseInputs)| {
        let mut inputs = fx.inputs.clone();
        edit(&mut inputs);
        let release = Release {
            inputs: &inputs,
            key: &fx.dev,
            signed_by: SignedBy::Dev,
            promoted_from: None,
            expect_sha256: None,
            timestamp: None,
        };
        publish(&release, &root, "4.0.0").unwrap_err()
    };
    let renamed = |name: &str| {
        let p = fx.path(&format!("build/{name}"));
        fs::write(&p, b"x").unwrap();
        p
    };
    let sums = renamed("SHA256SUMS");
    let err = try_with(&|i| i.artifacts.push(sums.clone()));
    assert!(matches!(err, ReleaseError::BadArtifactName { .. }), "{err}");
    let spaced = renamed("my kernel");
    let err = try_with(&|i| i.artifacts.push(spaced.clone()));
    assert!(matches!(err, ReleaseError::BadArtifactName { .. }), "{err}");
    let err = try_with(&|i| i.artifacts.push(i.artifacts[0].clone()));
    assert!(matches!(err, ReleaseError::BadArtifactName { .. }), "{err}");
    let err = try_with(&|i| i.commit = "not a commit".into());
    assert!(
        matches!(
            err,
            ReleaseError::BadField {
                field: "commit",
                ..
            }
        ),
        "{err}"
    );
    let err = try_with(&|i| i.version = "1.0 beta".into());
    assert!(
        matches!(
            err,
            ReleaseError::BadField {
                field: "version",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(err.exit_code(), ExitCode::BadInput);
    assert_eq!(entries(&root), Vec::<String>::new());
}

/// Mounts a tmpfs and unmounts it on drop, even when the test fails.
struct TinyTmpfs {
    dir: PathBuf,
}

impl TinyTmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Self> {
        fs::create_dir_all(dir).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let arg = format!("size={size}");
        let cmd = Cmd::new([
            "mount",
            "-t",
            "tmpfs",
            "-o",
            &arg,
            "tmpfs",
            &dir.to_string_lossy(),
        ]);
        match rt.block_on(run(&cmd, None)) {
            Ok(_) => Some(TinyTmpfs {
                dir: dir.to_path_buf(),
            }),
            // Only root may mount; anywhere else the test cannot run, so it says so.
            Err(e) if !is_root() => {
                eprintln!("skipping disk-full test: not root ({e})");
                None
            }
            Err(e) => panic!("mount tmpfs as root failed: {e}"),
        }
    }
}

impl Drop for TinyTmpfs {
    fn drop(&mut self) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = rt.block_on(run(
            &Cmd::new(["umount", "-l", &self.dir.to_string_lossy()]),
            None,
        ));
    }
}

fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn disk_full_leaves_nothing_and_exits_4() {
    let fx = Fixture::new();
    let mnt = fx.path("tiny");
    let Some(_mount) = TinyTmpfs::mount(&mnt, "256k") else {
        return;
    };
    let root = mnt.join("releases");
    let release = Release {
        inputs: &fx.inputs,
        key: &fx.dev,
        signed_by: SignedBy::Dev,
        promoted_from: None,
        expect_sha256: None,
        timestamp: None,
    };
    let err = publish(&release, &root, "5.0.0").unwrap_err();
    let ReleaseError::Io { source, .. } = &err else {
        panic!("{err}")
    };
    assert!(super::error::is_disk_full(source), "{err}: {source}");
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(err.exit_code(), ExitCode::Harness);
    assert_eq!(
        entries(&root),
        Vec::<String>::new(),
        "partial release left on a full disk"
    );
}
