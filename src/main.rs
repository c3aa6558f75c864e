//! The `xsc-release` binary: parse the command line, set up logging and signals, run,
//! print an error chain once, and exit with the documented code.

// The binary prints the one error chain and the interrupt notice (clippy.toml).
#![allow(clippy::disallowed_macros)]

use std::sync::atomic::{AtomicI32, Ordering};

use clap::Parser;
use tracing_subscriber::EnvFilter;
use xsc_release::Cli;
use xsc_release::ExitCode;

/// The first termination signal received (0 = none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

fn main() -> std::process::ExitCode {
    restore_sigpipe();
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::Harness.into();
        }
    };
    let code = runtime.block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(watch_signals(tx));
        match xsc_release::run(cli, rx).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{}", xsc_release::chain(&e));
                e.exit_code()
            }
        }
    });
    // Nothing we started may outlive us, whatever path got here.
    xsc_release::kill_all_groups();
    // Nor may a chroot's /proc, /sys or /dev stay mounted.
    xsc_release::unmount_all();
    // A signal decides the code whatever the runs concluded: the caller asked us to stop.
    let code = match SIGNAL.load(Ordering::SeqCst) {
        libc::SIGINT => ExitCode::Interrupted,
        libc::SIGTERM => ExitCode::Terminated,
        _ => code,
    };
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code.into()
}

/// `xsc-release test | head` should end quietly like any Unix tool, not panic in
/// `println!`: Rust ignores SIGPIPE by default, so restore the default action.
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL for SIGPIPE
    // has no memory-safety implications.
    #[expect(
        unsafe_code,
        reason = "libc::signal to restore the default SIGPIPE action"
    )]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// First SIGINT/SIGTERM: ask every run to stop (guards kill QEMU, partial JUnit is
/// written). Second: kill every child group and leave at once.
async fn watch_signals(tx: tokio::sync::watch::Sender<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    loop {
        let sig = tokio::select! {
            _ = int.recv() => libc::SIGINT,
            _ = term.recv() => libc::SIGTERM,
        };
        if SIGNAL
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            xsc_release::kill_all_groups();
            xsc_release::unmount_all();
            let code = if SIGNAL.load(Ordering::SeqCst) == libc::SIGTERM {
                ExitCode::Terminated
            } else {
                ExitCode::Interrupted
            };
            std::process::exit(i32::from(code.code()));
        }
        eprintln!("\ninterrupted: stopping runs (again to kill at once)");
        let _ = tx.send(true);
    }
}
