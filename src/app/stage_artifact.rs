//! `build … --stage-artifact DIR` and `cache import DIR…`: a built stage carried between CI
//! jobs. Both sides take the stage's key from the one place `status` takes it
//! (`build::stage_status`), so an export is of exactly the entry this checkout would look
//! up, and an import is accepted only for it. The checks themselves are
//! `stages::artifact`'s.

use std::path::{Path, PathBuf};

use crate::app::build::stage_status;
use crate::error::Error;
use crate::exit_code::ExitCode;
use crate::input::config::Config;
use crate::stages::artifact::{self, ArtifactError};
use crate::stages::stage::stage_cache;

/// This checkout's key for `stage` `variant`, as `status` computes it.
async fn checkout_key(
    cfg: &Config,
    dir: &Path,
    stage: &str,
    variant: &str,
) -> Result<String, ArtifactError> {
    let rows = stage_status(cfg).await;
    let row = rows
        .into_iter()
        .find(|r| r.stage == stage && r.variant == variant)
        .ok_or_else(|| ArtifactError::UnknownStage {
            dir: dir.to_path_buf(),
            stage: stage.into(),
            variant: variant.into(),
        })?;
    row.key.ok_or_else(|| ArtifactError::KeyUnknown {
        stage: stage.into(),
        variant: variant.into(),
        why: row.state,
    })
}

/// Exports the entry of `stage` `variant` for the current inputs into `dir` (after the
/// build that made or found it) and says where.
pub(crate) async fn export(
    cfg: &Config,
    stage: &str,
    variant: &str,
    dir: &Path,
) -> Result<ExitCode, Error> {
    let key = checkout_key(cfg, dir, stage, variant).await?;
    let entry = stage_cache(cfg)
        .lookup(stage, &key)
        .ok_or_else(|| ArtifactError::NotCached {
            stage: stage.into(),
            variant: variant.into(),
            key: key.clone(),
        })?;
    let seal = artifact::export(&entry, variant, dir)?;
    println!(
        "stage artifact: {stage} {variant} key {} ({} files) in {}",
        &key[..12],
        seal.files.len(),
        dir.display()
    );
    Ok(ExitCode::Success)
}

/// `cache import DIR…`: every artifact checked and imported, or the first refusal.
pub(crate) async fn import(cfg: &Config, dirs: &[PathBuf]) -> Result<ExitCode, Error> {
    let cache = stage_cache(cfg);
    for dir in dirs {
        let seal = artifact::read_seal(dir)?;
        let key = checkout_key(cfg, dir, &seal.stage, &seal.variant).await?;
        let cache = cache.clone();
        let (d, s) = (dir.clone(), seal.clone());
        let got = tokio::task::spawn_blocking(move || artifact::import(&cache, &d, &s, &key))
            .await
            .map_err(Error::task("stage artifact import"))??;
        let how = if got.was_there {
            "checked, already in the cache"
        } else {
            "imported"
        };
        println!(
            "{} {} key {}: {how}: {}",
            seal.stage,
            seal.variant,
            &seal.key[..12],
            got.entry.dir.display()
        );
    }
    Ok(ExitCode::Success)
}
