//! Build stages: the XSC kernel, the XSC glibc and the Debian ISO. Each stage turns its inputs
//! into a content-addressed cache key, and either returns the cached artifacts or builds
//! them with the host's tools and seals them in the cache.
//!
//! ```text
//! cli ─► kernel ─► source (tarball/apt/tree) ─► quilt (series) ─► kconfig + fragment ─► make
//!           └────► cache (key → entry)                     progress ◄─ make log follower
//! ```
//! Every stage runs through one skeleton, `stage::ensure` (key → cache → lock → build →
//! seal, cancellable); shared helpers live in `stage`, not in another stage.
//! Only re-exports live here.

pub(crate) mod chroot;
pub(crate) mod deb_package;
pub(crate) mod debian;
pub(crate) mod el_install_iso;
pub(crate) mod el_iso;
pub(crate) mod error;
pub(crate) mod fragment;
pub(crate) mod glibc;
pub(crate) mod harness;
pub(crate) mod iso;
pub(crate) mod kconfig;
pub(crate) mod kernel;
pub(crate) mod make;
pub(crate) mod package_set;
pub(crate) mod progress;
pub(crate) mod quilt;
pub(crate) mod repo_signing;
pub(crate) mod rpm_package;
pub(crate) mod source;
pub(crate) mod stage;
pub(crate) mod stock_kernel;
pub(crate) mod tools;

pub(crate) use debian::ISO_NAME;
pub(crate) use error::BuildError;
pub(crate) use glibc::{GLIBC_TOOLS, GlibcArtifacts, GlibcBuildOptions, GlibcVariant};
pub(crate) use kernel::{KernelBuildOptions, patches_dir};
pub(crate) use tools::{FETCH_TOOLS, KERNEL_TOOLS};
