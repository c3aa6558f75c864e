//! Build stages: the XSC kernel, the XSC glibc and the Debian ISO. Each stage turns its inputs
//! into a content-addressed cache key, and either returns the cached artifacts or builds
//! them with the host's tools and seals them in the cache.
//!
//! ```text
//! cli ─► kernel ─► source (tarball/apt/tree) ─► quilt (series) ─► kconfig + fragment ─► make
//!           └────► cache (key → entry)                     progress ◄─ make log follower
//! ```
//! Only re-exports live here.

pub mod chroot;
pub mod debian;
pub mod error;
pub mod fragment;
pub mod glibc;
pub mod iso;
pub mod kconfig;
pub mod kernel;
pub mod make;
pub mod progress;
pub mod quilt;
pub mod source;
pub mod stock_kernel;
pub mod tools;

pub use chroot::{ChrootMounts, unmount_all};
pub use debian::{
    DEBIAN_TOOLS, DebianArtifacts, DebianBuildOptions, ISO_NAME, build_debian, cached_debian,
    debian_key,
};
pub use error::{BuildError, HunkFailure, IsoMismatch, OptionMismatch};
pub use fragment::{
    Requested, has_modules, parse_dot_config, parse_fragment, read_fragments, verify,
};
pub use glibc::{
    GLIBC_TOOLS, GlibcArtifacts, GlibcBuildOptions, GlibcTest, GlibcVariant, build_glibc,
    cached_glibc, glibc_key, parse_tests_list,
};
pub use iso::{VOLUME_LABEL, grub_embedded_cfg, isolinux_cfg};
pub use kconfig::{ConfigBase, KernelProfile, PROFILES};
pub use kernel::{
    KERNEL_RECIPE, KernelArtifacts, KernelBuildOptions, KernelKey, Progress, ReproReport, STAGE,
    build_kernel, cached_kernel, check_reproducible, kernel_key, key_from_parts, patches_dir,
};
pub use make::{BuildEnv, kbuild_timestamp};
pub use progress::{BuildEvent, no_progress, stderr_progress};
pub use quilt::{PushFailure, parse_push_output, series_patches};
pub use source::SourceSpec;
pub use tools::{FETCH_TOOLS, KERNEL_TOOLS, check_tools};
