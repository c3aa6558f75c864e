//! Progress lines of a long machine run: console lines a scenario phase marks as progress
//! (an installer's `Installing …` lines) and the phase boundaries, shown while the run
//! goes on, so an hour of installing is not an hour of silence. The app installs the
//! display (it prints); unset in unit tests and library use, where lines are dropped.

use std::sync::OnceLock;

use regex::Regex;

/// Where progress lines go.
pub(crate) type Display = Box<dyn Fn(&str) + Send + Sync>;

static DISPLAY: OnceLock<Display> = OnceLock::new();

/// Installs the process's display (the first call wins).
pub(crate) fn set_display(display: Display) {
    let _ = DISPLAY.set(display);
}

/// Shows one progress line, if a display is installed.
pub(crate) fn show(line: &str) {
    if let Some(d) = DISPLAY.get() {
        d(line);
    }
}

/// Which console lines of a run are progress, and the label they are shown with.
#[derive(Clone, Debug)]
pub(crate) struct ConsoleProgress {
    /// `<scenario>/<phase>`.
    pub label: String,
    /// Lines matching this are shown.
    pub pattern: Regex,
}

impl ConsoleProgress {
    /// The line to show for console line `line`, if it is progress.
    pub(crate) fn line_for(&self, line: &str) -> Option<String> {
        let text = crate::observe::crash::clean_console_line(line);
        let text = text.trim();
        (!text.is_empty() && self.pattern.is_match(text))
            .then(|| format!("  {}: {text}", self.label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_matching_lines_are_progress_and_they_are_cleaned() {
        let p = ConsoleProgress {
            label: "alma-install/install".into(),
            pattern: Regex::new(r"^(Installing|Configuring) ").unwrap(),
        };
        assert_eq!(
            p.line_for("\u{1b}[1mInstalling bash.x86_64 (12/345)\u{1b}[0m\r")
                .as_deref(),
            Some("  alma-install/install: Installing bash.x86_64 (12/345)")
        );
        assert_eq!(p.line_for("[    1.0] random kernel line"), None);
        assert_eq!(p.line_for("   "), None);
    }
}
