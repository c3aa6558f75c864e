//! The EL install ISO stage (`build alma`, `build rocky`): the configured base ISO
//! (`[sources.alma]` / `[sources.rocky]`, sha256 checked) remastered by `el_iso::remaster`
//! with the distribution's kickstart (`recipes/<distro>/<distro>9-xsc.ks`) and the RPM
//! repository of `rpm_package` (GPG-signed by `repo_signing` when `[packages]` names a
//! key), cached by content, published to `iso/<distro>/`.

use std::path::{Path, PathBuf};

use super::el_iso;
use super::error::BuildError;
use super::rpm_package::RpmArtifacts;
use super::source;
use super::stage::{self, Cancel, Job, Policy, Product, Progress, Stage, StageKey, repo_root};
use super::tools::check_tools;
use crate::input::config::{BaseIso, Config};
use crate::sys::cache::{Cache, KeyBuilder, sha256_file};
use crate::sys::process;

/// Stage name in the cache.
pub(crate) const STAGE: &str = "el-iso";
/// Version of this recipe (here and el_iso.rs); bump on any change of output.
pub(crate) const RECIPE: &str = "el-iso-1";

/// An EL distribution `build` remasters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Distro {
    /// AlmaLinux 9.
    Alma,
    /// Rocky Linux 9.
    Rocky,
}

impl Distro {
    /// `alma`, `rocky`: the config table, the recipe and output directories.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Distro::Alma => "alma",
            Distro::Rocky => "rocky",
        }
    }

    /// The product name in messages.
    pub(crate) fn title(self) -> &'static str {
        match self {
            Distro::Alma => "AlmaLinux 9",
            Distro::Rocky => "Rocky Linux 9",
        }
    }

    /// The kickstart's file name (recipe and medium).
    pub(crate) fn ks_name(self) -> String {
        format!("{}9-xsc.ks", self.name())
    }

    /// The published ISO's file name.
    pub(crate) fn iso_name(self) -> String {
        format!("xsc-{}9-x86_64.iso", self.name())
    }

    /// The base ISO the config pins, if any.
    pub(crate) fn base(self, cfg: &Config) -> Option<&BaseIso> {
        match self {
            Distro::Alma => cfg.alma.as_ref(),
            Distro::Rocky => cfg.rocky.as_ref(),
        }
    }
}

/// The one line `build alma|rocky` ends with when the base ISO is not configured.
pub(crate) fn not_configured(d: Distro) -> BuildError {
    BuildError::NotConfigured {
        what: format!("the {} base ISO", d.title()),
        how: format!(
            "add [sources.{}] iso = \"<path or URL of the {} DVD or boot ISO>\" and sha256 = \"<its sha256>\" \
             to xsc.toml (docs/el-iso.md); the packages were built",
            d.name(),
            d.title()
        ),
    }
}

/// The base ISO as a local file whose sha256 is the pinned one: a path as it is, a URL
/// downloaded once into `<cache>/downloads/`.
pub(crate) async fn base_file(cfg: &Config, base: &BaseIso) -> Result<PathBuf, BuildError> {
    let path = if base.iso.contains("://") {
        let dir = Cache::new(&cfg.cache_dir).downloads();
        std::fs::create_dir_all(&dir).map_err(BuildError::io("failed to create", &dir))?;
        let file = dir.join(format!("el-base-{}.iso", &base.sha256[..16]));
        if !file.is_file() {
            let part = file.with_extension("part");
            process::run(&source::curl_cmd(&base.iso, &part), None)
                .await
                .map_err(BuildError::step(format!("downloading {}", base.iso)))?;
            std::fs::rename(&part, &file).map_err(BuildError::io("failed to move", &part))?;
        }
        file
    } else {
        PathBuf::from(&base.iso)
    };
    let got = sha256_file(&path).map_err(|source| BuildError::Input {
        what: "base ISO",
        path: path.clone(),
        source,
    })?;
    if got != base.sha256 {
        return Err(BuildError::BadSource {
            source_arg: base.iso.clone(),
            reason: format!("sha256 is {got}, xsc.toml pins {}", base.sha256),
        });
    }
    Ok(path)
}

/// What the stage produced.
#[derive(Clone, Debug)]
pub(crate) struct ElIso {
    /// The published ISO (`iso/<distro>/…`).
    pub iso: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// The volume id (kept from the base).
    pub volid: String,
    /// The cache key.
    pub key: String,
    /// True when built by this call.
    pub built_now: bool,
}

/// The medium's signed copy of the RPM repository when `[packages]` names a key: made in
/// the stage's work directory (one per process, removed on drop), its fingerprint part of
/// the ISO's key.
pub(crate) struct SignedMedium {
    dir: PathBuf,
    fingerprint: Option<String>,
}

impl SignedMedium {
    /// Signs a copy of `rpms` when a key is configured; otherwise nothing.
    pub(crate) async fn make(
        cfg: &Config,
        d: Distro,
        rpms: &RpmArtifacts,
        sde: i64,
    ) -> Result<SignedMedium, BuildError> {
        let dir = Cache::new(&cfg.cache_dir).work_dir(
            STAGE,
            &format!("{}-signed-repo-{}", d.name(), std::process::id()),
        );
        let Some(config) = &cfg.repo_signing else {
            return Ok(SignedMedium {
                dir,
                fingerprint: None,
            });
        };
        let pass = super::repo_signing::passphrase_file();
        let key = super::repo_signing::Key {
            config,
            passphrase: pass.as_deref(),
        };
        let log = dir.with_extension("log");
        let mut medium = SignedMedium {
            dir,
            fingerprint: None,
        };
        let signing =
            super::repo_signing::medium_repo(&rpms.repo, &medium.dir, Some(key), sde, &log).await?;
        if let super::repo_signing::Signing::Signed { fingerprint, .. } = signing {
            medium.fingerprint = Some(fingerprint);
        }
        let _ = std::fs::remove_file(&log);
        Ok(medium)
    }

    /// For [`ElInputs::signed`].
    pub(crate) fn signed(&self) -> Option<(&Path, &str)> {
        self.fingerprint.as_deref().map(|f| (self.dir.as_path(), f))
    }

    /// One phrase for the output.
    pub(crate) fn describe(&self) -> String {
        match &self.fingerprint {
            Some(f) => format!("GPG-signed by {f}"),
            None => super::repo_signing::Signing::Unsigned.describe(),
        }
    }
}

impl Drop for SignedMedium {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a distribution's ISO is made from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ElInputs<'a> {
    /// The checked base ISO ([`base_file`]).
    pub base: &'a Path,
    /// Its pinned sha256.
    pub base_sha: &'a str,
    /// The RPM repository.
    pub rpms: &'a RpmArtifacts,
    /// SOURCE_DATE_EPOCH (the packages').
    pub sde: i64,
    /// The medium's repository when it is a signed copy of `rpms` (`repo_signing`), with
    /// the signing key's fingerprint; `None`: `rpms` as built.
    pub signed: Option<(&'a Path, &'a str)>,
}

/// The remastered ISO of `d` through the stage framework, published to `iso/<distro>/`.
pub(crate) async fn ensure_el_iso(
    cfg: &Config,
    d: Distro,
    input: ElInputs<'_>,
    policy: Policy,
    cancel: &Cancel,
    progress: Progress<'_>,
) -> Result<ElIso, BuildError> {
    check_tools(el_iso::EL_ISO_TOOLS)?;
    let ElInputs {
        base,
        base_sha,
        rpms,
        sde,
        signed,
    } = input;
    let repo = signed.map_or(rpms.repo.as_path(), |(dir, _)| dir);
    let ks = repo_root(cfg)
        .join("recipes")
        .join(d.name())
        .join(d.ks_name());
    let mut k = KeyBuilder::new();
    k.str("recipe", RECIPE)
        .str("distro", d.name())
        .str("base", base_sha)
        .str("rpms", &rpms.key)
        .str("sde", &sde.to_string());
    if let Some((_, fingerprint)) = signed {
        k.str("signed-by", fingerprint);
    }
    k.file("kickstart", &ks)
        .map_err(|source| BuildError::Input {
            what: "kickstart",
            path: ks.clone(),
            source,
        })?;
    let v = process::run(
        &crate::sys::process::Cmd::new(["xorriso", "-version"]),
        None,
    )
    .await
    .map_err(BuildError::step("xorriso -version"))?;
    k.str("xorriso", v.stdout.lines().next().unwrap_or_default());
    let key = StageKey::from(&k);
    let cache = Cache::new(&cfg.cache_dir);
    let stage = Stage {
        name: STAGE,
        key: &key,
        lock: "el-iso.lock",
        log_dir: None,
    };
    let iso_name = d.iso_name();
    let got = stage::ensure(&cache, stage, policy, cancel, progress, |job: Job<'_>| {
        let (cache, ks, iso_name) = (cache.clone(), ks.clone(), iso_name.clone());
        let previous = policy
            .force
            .then(|| cache.lookup(STAGE, &key.key))
            .flatten();
        async move {
            let log = job.staged.join("build.log");
            std::fs::write(&log, "").map_err(BuildError::io("failed to create", &log))?;
            let work = cache.work_dir(STAGE, d.name());
            let out = job.staged.join(&iso_name);
            let ks_name = d.ks_name();
            let r = el_iso::Remaster {
                base,
                ks: &ks,
                ks_name: &ks_name,
                repo,
                out: &out,
                sde,
            };
            let volid = el_iso::remaster(&r, &work, &log).await?;
            let _ = std::fs::remove_dir_all(&work);
            // `--force` over an entry: the same bytes again, or exit 3. Not for a signed
            // medium: a GPG signature carries its time (docs/el-iso.md).
            let previous = previous.filter(|_| signed.is_none());
            super::package_set::check_same(
                &cache,
                STAGE,
                previous.as_ref(),
                &job.staged,
                std::slice::from_ref(&out),
            )?;
            let sha = sha256_file(&out).map_err(BuildError::io("cannot read", &out))?;
            let mut p = Product::new(["build.log"], [("volid", volid), ("iso.sha256", sha)]);
            p.artifacts.insert("iso".into(), iso_name.clone());
            Ok::<_, BuildError>(p)
        }
    })
    .await?;
    let built = got.entry.dir.join(&iso_name);
    let dir = repo_root(cfg).join("iso").join(d.name());
    std::fs::create_dir_all(&dir).map_err(BuildError::io("failed to create", &dir))?;
    let dest = dir.join(&iso_name);
    let tmp = dir.join(format!(".{iso_name}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    if std::fs::hard_link(&built, &tmp).is_err() {
        std::fs::copy(&built, &tmp).map_err(BuildError::io("failed to copy", &built))?;
    }
    std::fs::rename(&tmp, &dest).map_err(BuildError::io("failed to write", &dest))?;
    let fact = |k: &str| got.entry.info.facts.get(k).cloned().unwrap_or_default();
    Ok(ElIso {
        iso: dest,
        sha256: fact("iso.sha256"),
        volid: fact("volid"),
        key: key.key,
        built_now: got.built_now,
    })
}
