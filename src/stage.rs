//! Where the test runner asks the build stages for images (the XSC kernel now; the
//! Debian ISO and glibc as they land).

use std::path::PathBuf;

use crate::config::Config;
use crate::error::Error;

/// The XSC kernel of `profile`, from the cache or built now (unless `no_build`).
pub async fn xsc_kernel(
    _cfg: &Config,
    profile: &str,
    _no_build: bool,
) -> Result<(PathBuf, Vec<(String, String)>), Error> {
    Err(Error::Unavailable(format!(
        "the XSC kernel stage (profile {profile}) is not wired yet"
    )))
}
