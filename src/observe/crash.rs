//! Kernel crash scanner: recognises panics, BUGs, oopses, WARNs, lockups, RCU stalls, hung
//! tasks, sanitizer reports, OOM kills and user-space segfaults in the guest's printk output,
//! and cuts an excerpt of each trace for the report.
//!
//! It also owns the console-line hygiene every observer shares ([`clean_console_line`],
//! [`split_printk`]), because deciding what is a printk line is the heart of this module: only
//! printk lines are scanned, so a guest program that prints "Kernel panic" cannot fail a run.
//!
//! The patterns follow harness-anchors §3.5 (syzkaller, kola, LAVA and openQA lists, trimmed for
//! a 6.1 x86_64 kernel). The scanner is streaming: [`CrashScanner::feed`] reports a fatal crash
//! on the line that proves it, so the runner can stop the VM at once, and keeps collecting the
//! excerpt afterwards.

use regex::{Regex, RegexSet};

use crate::input::scenario::CrashPatterns;
use crate::observe::verdict::Crash;

/// Remove what a serial console adds around text: `\r` (ONLCR), ANSI escape sequences (colour,
/// cursor moves, the `ESC c` reset firmware likes to print), other control characters and
/// U+FFFD (what invalid UTF-8 was turned into). Tabs become one space. Trailing whitespace goes;
/// leading whitespace stays because KTAP nesting is read from it.
pub(crate) fn clean_console_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI, the 8-bit form of `ESC [`.
            '\u{9b}' => skip_csi(&mut chars),
            '\t' => out.push(' '),
            '\u{fffd}' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    let kept = out.trim_end().len();
    out.truncate(kept);
    out
}

/// Skip one escape sequence whose `ESC` was just consumed.
fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.next() {
        Some('[') => skip_csi(chars),
        // OSC, DCS, SOS, PM, APC: a string terminated by BEL or `ESC \`.
        Some(']' | 'P' | 'X' | '^' | '_') => {
            while let Some(c) = chars.next() {
                if c == '\u{7}' {
                    break;
                }
                if c == '\u{1b}' {
                    chars.next_if_eq(&'\\');
                    break;
                }
            }
        }
        // Character-set designations take one more byte: `ESC ( B`.
        Some('(' | ')' | '*' | '+' | '#' | '%') => {
            chars.next();
        }
        // Two-byte sequences (`ESC c`, `ESC 7`, `ESC =` …) or a lone ESC at the end.
        _ => {}
    }
}

/// Skip a CSI body: parameter and intermediate bytes, then one final byte.
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(&c) = chars.peek() {
        chars.next();
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
        if !('\u{20}'..='\u{3f}').contains(&c) {
            // Not a CSI byte at all: the sequence was cut; stop eating text.
            break;
        }
    }
}

/// Split a cleaned console line into its printk prefix and the message, if the line is in
/// printk format: an optional `<level>`, the timestamp `[ <secs>.<usecs>]`, an optional caller
/// id `[ T123]`/`[ C0]`, and the single space printk puts before the message. The message keeps
/// any further indentation (KUnit and stack traces use it).
pub(crate) fn split_printk(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    let mut i = 0;
    if bytes.first() == Some(&b'<') {
        i = 1;
        let digits = count(&bytes[i..], |b| b.is_ascii_digit());
        if digits == 0 || bytes.get(i + digits) != Some(&b'>') {
            return None;
        }
        i += digits + 1;
    }
    i = bracket(bytes, i, |b| {
        let secs = count(b, |c| c.is_ascii_digit());
        if secs == 0 || b.get(secs) != Some(&b'.') {
            return None;
        }
        let usecs = count(&b[secs + 1..], |c| c.is_ascii_digit());
        (usecs > 0).then_some(secs + 1 + usecs)
    })?;
    // The caller id (CONFIG_PRINTK_CALLER): `[    T1]` or `[  C0]`.
    if let Some(j) = bracket(bytes, i, |b| {
        b.first().filter(|c| matches!(c, b'T' | b'C'))?;
        let digits = count(&b[1..], |c| c.is_ascii_digit());
        (digits > 0).then_some(1 + digits)
    }) {
        i = j;
    }
    let prefix = &line[..i];
    let msg = line[i..].strip_prefix(' ').unwrap_or(&line[i..]);
    Some((prefix, msg))
}

/// Parse `[` spaces `<inner>` `]` at `start`; returns the index after `]`.
fn bracket(bytes: &[u8], start: usize, inner: impl Fn(&[u8]) -> Option<usize>) -> Option<usize> {
    if bytes.get(start) != Some(&b'[') {
        return None;
    }
    let mut i = start + 1;
    i += count(&bytes[i..], |b| b == b' ');
    i += inner(&bytes[i..])?;
    (bytes.get(i) == Some(&b']')).then_some(i + 1)
}

fn count(bytes: &[u8], pred: impl Fn(u8) -> bool) -> usize {
    bytes.iter().take_while(|b| pred(**b)).count()
}

/// Built-in rules, first match wins: fatal ones first, specific `BUG:` forms before the generic.
/// (regex on the printk message, kind, fatal)
const BUILTIN_RULES: &[(&str, &str, bool)] = &[
    (r"^Kernel panic - not syncing", "panic", true),
    (r"^PANIC: double fault", "double-fault", true),
    (
        r"^BUG: (?:unable to handle|kernel NULL pointer dereference)",
        "bug",
        true,
    ),
    (r"^kernel BUG at ", "bug", true),
    // A user program killed by #GP is logged as `traps: prog[123] general protection fault
    // ip:… error:0 in prog[…]`: a user-space crash (SIGSEGV), not a kernel one.
    (
        r"^traps: \S+ general protection fault ip:",
        "segfault",
        false,
    ),
    // 6.1 prints `general protection fault, probably for non-canonical address …: 0000 [#1]`;
    // newer kernels put `Oops: ` in front.
    (r"(?:^|: )general protection fault\b", "gpf", true),
    // The kernel form carries the die counter `[#1]`; `traps: … trap invalid opcode` does not.
    (
        r"(?:^|: )invalid opcode: [0-9a-fA-F]+ \[#\d+\]",
        "invalid-opcode",
        true,
    ),
    (r"^Internal error: ", "oops", true),
    (r"^BUG: KASAN: ", "kasan", false),
    (r"^BUG: KFENCE: ", "kfence", false),
    // 6.1 prints `watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [comm:pid]`.
    (r"(?:^|: )BUG: soft lockup", "soft-lockup", false),
    (
        r"^(?:rcu: )?INFO: rcu_(?:sched|preempt|bh) (?:self-)?detected(?: expedited)? stalls?",
        "rcu-stall",
        false,
    ),
    (r"rcu_\w*.*detected.*stall", "rcu-stall", false),
    (
        r"^INFO: task .* blocked for more than \d+ seconds",
        "hung-task",
        false,
    ),
    (r"^UBSAN: ", "ubsan", false),
    (r"^Oops(?::| -)", "oops", false),
    (r"^WARNING: CPU: \d+ PID: \d+ at ", "warning", false),
    (r"\bsegfault at [0-9a-fA-F]+ ip ", "segfault", false),
    (r"\binvoked oom-killer\b", "oom", false),
    (r"^BUG: ", "bug", false),
];

/// False-positive guards from syzkaller's ignore lists.
const BUILTIN_IGNORE: &[&str] = &[r"^ODEBUG:", r"^Boot_DEBUG:", r"^WARNING: See https"];

/// The start of every WARN/BUG report; the kind is decided by the lines that follow.
const CUT_HERE: &str = "[ cut here ]";

/// Lines that close a trace excerpt.
const END_MARKERS: &[&str] = &["---[ end trace", "---[ end Kernel panic"];

/// An excerpt stops after this many lines if no end marker comes.
const EXCERPT_MAX_LINES: usize = 60;

/// A segfault report is the segfault line plus the `Code:` line after it.
const SEGFAULT_EXCERPT_LINES: usize = 2;

/// A match this close to the start of an open report is part of that report (the `Oops: 0000
/// [#1]` after `BUG: kernel NULL pointer dereference`, the `invalid opcode: 0000 [#1]` after
/// `kernel BUG at`), not a new crash — unless it is fatal and the open one is not.
const ABSORB_WINDOW: usize = 6;

/// A console flooding with WARNs must not grow memory without bound; fatal crashes are always
/// kept because they end the run.
const MAX_CRASHES: usize = 128;

struct Rule {
    re: Regex,
    /// `None` for a scenario pattern: the kind is borrowed from a matching built-in.
    kind: Option<&'static str>,
    fatal: bool,
}

/// A crash whose excerpt is still being collected.
struct Open {
    idx: usize,
    max_lines: usize,
    /// False for a `cut here` report not yet told apart by its next lines.
    classified: bool,
}

/// Streaming scanner over console lines; see the module docs.
pub(crate) struct CrashScanner {
    /// Scenario rules first (they may escalate a built-in to fatal), then the built-ins.
    rules: Vec<Rule>,
    ignore: RegexSet,
    crashes: Vec<Crash>,
    open: Vec<Open>,
}

impl CrashScanner {
    /// Build a scanner from the built-in patterns plus a scenario's extras. Fails only if an
    /// extra pattern is not a valid regex.
    pub(crate) fn new(extra: &CrashPatterns) -> Result<Self, regex::Error> {
        let mut rules = Vec::new();
        for (pats, fatal) in [(&extra.fatal, true), (&extra.fail, false)] {
            for p in pats {
                rules.push(Rule {
                    re: Regex::new(p)?,
                    kind: None,
                    fatal,
                });
            }
        }
        for (p, kind, fatal) in BUILTIN_RULES {
            let re = Regex::new(p).expect("invariant: built-in crash patterns are valid regexes");
            rules.push(Rule {
                re,
                kind: Some(kind),
                fatal: *fatal,
            });
        }
        let ignore = RegexSet::new(
            BUILTIN_IGNORE
                .iter()
                .copied()
                .chain(extra.ignore.iter().map(String::as_str)),
        )?;
        Ok(CrashScanner {
            rules,
            ignore,
            crashes: Vec::new(),
            open: Vec::new(),
        })
    }

    /// Feed one console line (terminator stripped; CR, ANSI and garbage allowed). Returns the
    /// crash the moment a fatal one is recognised; its excerpt is completed by later lines and
    /// by [`CrashScanner::finish`].
    pub(crate) fn feed(&mut self, line: &str) -> Option<Crash> {
        let cleaned = clean_console_line(line);
        let (_, msg) = split_printk(&cleaned)?;
        let mut fatal_now = None;
        // Kernel reports are never indented; indented messages are trace bodies or KUnit output.
        let scannable = !msg.starts_with(' ') && !self.ignore.is_match(msg);
        if scannable {
            if msg.contains(CUT_HERE) {
                self.start(&cleaned, "warning", false, false);
            } else if let Some((kind, fatal)) = self.classify(msg) {
                fatal_now = self.on_match(&cleaned, kind, fatal);
            }
        }
        self.append(&cleaned);
        fatal_now.map(|idx| self.crashes[idx].clone())
    }

    /// All crashes seen, in console order, excerpts as far as the console went.
    pub(crate) fn finish(self) -> Vec<Crash> {
        self.crashes
    }

    /// The first rule matching a printk message: its kind and whether it is fatal.
    fn classify(&self, msg: &str) -> Option<(&'static str, bool)> {
        let rule = self.rules.iter().find(|r| r.re.is_match(msg))?;
        let kind = match rule.kind {
            Some(kind) => kind,
            None => self
                .rules
                .iter()
                .filter(|r| r.kind.is_some())
                .find(|r| r.re.is_match(msg))
                .and_then(|r| r.kind)
                .unwrap_or("custom"),
        };
        Some((kind, rule.fatal))
    }

    /// Decide whether a matching line is a new crash, the classification of an open `cut here`
    /// report, or part of a report already open. Returns the crash index if it is fatal news.
    fn on_match(&mut self, line: &str, kind: &'static str, fatal: bool) -> Option<usize> {
        if let Some(open) = self.open.last_mut() {
            let crash = &mut self.crashes[open.idx];
            if crash.excerpt.len() < ABSORB_WINDOW {
                if !open.classified {
                    open.classified = true;
                    crash.kind = kind.to_string();
                    crash.fatal = fatal;
                    crash.line = line.to_string();
                    return fatal.then_some(open.idx);
                }
                // Absorbed unless it escalates a non-fatal report to a fatal one.
                if !fatal || crash.fatal {
                    return None;
                }
            }
        }
        let idx = self.start(line, kind, fatal, true)?;
        fatal.then_some(idx)
    }

    fn start(&mut self, line: &str, kind: &str, fatal: bool, classified: bool) -> Option<usize> {
        if self.crashes.len() >= MAX_CRASHES && !fatal {
            return None;
        }
        let max_lines = if kind == "segfault" {
            SEGFAULT_EXCERPT_LINES
        } else {
            EXCERPT_MAX_LINES
        };
        self.crashes.push(Crash {
            kind: kind.to_string(),
            fatal,
            line: line.to_string(),
            excerpt: Vec::new(),
        });
        let idx = self.crashes.len() - 1;
        self.open.push(Open {
            idx,
            max_lines,
            classified,
        });
        Some(idx)
    }

    /// Add a printk line to every open excerpt and close those that are done.
    fn append(&mut self, line: &str) {
        let ends = END_MARKERS.iter().any(|m| line.contains(m));
        let crashes = &mut self.crashes;
        self.open.retain(|open| {
            let excerpt = &mut crashes[open.idx].excerpt;
            excerpt.push(line.to_string());
            !ends && excerpt.len() < open.max_lines
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> (Vec<Crash>, Vec<Crash>) {
        scan_with(text, &CrashPatterns::default())
    }

    /// Returns (what feed reported as fatal, what finish returned).
    fn scan_with(text: &str, extra: &CrashPatterns) -> (Vec<Crash>, Vec<Crash>) {
        let mut s = CrashScanner::new(extra).expect("patterns compile");
        let mut fatal = Vec::new();
        for line in text.lines() {
            if let Some(c) = s.feed(line) {
                fatal.push(c);
            }
        }
        (fatal, s.finish())
    }

    fn kinds(crashes: &[Crash]) -> Vec<(&str, bool)> {
        crashes.iter().map(|c| (c.kind.as_str(), c.fatal)).collect()
    }

    const SYSRQ_PANIC: &str = "\
[   12.341022] sysrq: Trigger a crash
[   12.341510] Kernel panic - not syncing: sysrq triggered crash
[   12.342047] CPU: 1 PID: 1 Comm: init Not tainted 6.1.0-xsc1 #1
[   12.342716] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[   12.343534] Call Trace:
[   12.343781]  <TASK>
[   12.343995]  dump_stack_lvl+0x44/0x5c
[   12.344368]  panic+0x118/0x2e4
[   12.344680]  sysrq_handle_crash+0x16/0x20
[   12.345077]  __handle_sysrq.cold+0x43/0x11b
[   12.345489]  write_sysrq_trigger+0x24/0x40
[   12.345893]  proc_reg_write+0x51/0x90
[   12.346263]  vfs_write+0xc3/0x3d0
[   12.346600]  ksys_write+0x5f/0xe0
[   12.346928]  do_syscall_64+0x58/0xc0
[   12.347278]  entry_SYSCALL_64_after_hwframe+0x64/0xce
[   12.347745] RIP: 0033:0x4590a3
[   12.348062] Code: 00 00 00 48 c7 c0 ff ff ff ff eb ba 0f 1f 80 00 00 00 00 64 8b 04 25 18 00 00 00 85 c0 75 14 b8 01 00 00 00 0f 05 <48> 3d 00 f0 ff ff 77 55 c3
[   12.349782] RSP: 002b:00007ffd2c8c2a38 EFLAGS: 00000246 ORIG_RAX: 0000000000000001
[   12.350461] RAX: ffffffffffffffda RBX: 0000000000000002 RCX: 00000000004590a3
[   12.351090]  </TASK>
[   12.351304] Kernel Offset: disabled
[   12.351609] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---
[   12.352000] this line is after the end marker";

    #[test]
    fn sysrq_panic_is_fatal_with_full_excerpt() {
        let (fatal, all) = scan(SYSRQ_PANIC);
        assert_eq!(fatal.len(), 1);
        assert_eq!(fatal[0].kind, "panic");
        assert!(fatal[0].fatal);
        assert_eq!(
            fatal[0].line,
            "[   12.341510] Kernel panic - not syncing: sysrq triggered crash"
        );
        // Reported at once: the excerpt so far is the matching line only.
        assert_eq!(fatal[0].excerpt.len(), 1);
        assert_eq!(kinds(&all), vec![("panic", true)]);
        let ex = &all[0].excerpt;
        assert!(ex.first().is_some_and(|l| l.contains("Kernel panic")));
        assert!(
            ex.last()
                .is_some_and(|l| l.contains("---[ end Kernel panic"))
        );
        assert!(ex.iter().any(|l| l.contains("sysrq_handle_crash")));
        assert!(!ex.iter().any(|l| l.contains("after the end marker")));
    }

    #[test]
    fn sysrq_panic_with_crlf_ansi_and_caller_id() {
        let text: String = SYSRQ_PANIC
            .lines()
            .map(|l| format!("\x1b[0m{}\r\n", l.replacen("] ", "][    T1] ", 1)))
            .collect();
        let (fatal, all) = scan(&text);
        assert_eq!(kinds(&fatal), vec![("panic", true)]);
        assert_eq!(
            fatal[0].line,
            "[   12.341510][    T1] Kernel panic - not syncing: sysrq triggered crash"
        );
        assert_eq!(all[0].excerpt.len(), 22);
    }

    const WARN: &str = "\
[    5.101010] ------------[ cut here ]------------
[    5.101400] WARNING: CPU: 0 PID: 74 at drivers/xsc/ring.c:412 xsc_ring_enter+0x1a3/0x1f0
[    5.102015] Modules linked in:
[    5.102270] CPU: 0 PID: 74 Comm: xsc_ring_test Not tainted 6.1.0-xsc1 #1
[    5.102881] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014
[    5.103702] RIP: 0010:xsc_ring_enter+0x1a3/0x1f0
[    5.104101] Code: 48 8b 45 00 48 85 c0 74 0b <0f> 0b 31 c0 5b 5d c3 cc cc cc cc
[    5.104800] RSP: 0018:ffffb0a3c01bfe58 EFLAGS: 00010246
[    5.105201] Call Trace:
[    5.105399]  <TASK>
[    5.105601]  __x64_sys_ioctl+0x8d/0xd0
[    5.105990]  do_syscall_64+0x58/0xc0
[    5.106350]  entry_SYSCALL_64_after_hwframe+0x64/0xce
[    5.106801]  </TASK>
[    5.107000] ---[ end trace 0000000000000000 ]---
[    5.107400] xsc: ring 3 torn down";

    #[test]
    fn warn_with_cut_here_is_a_non_fatal_warning() {
        let (fatal, all) = scan(WARN);
        assert!(fatal.is_empty());
        assert_eq!(kinds(&all), vec![("warning", false)]);
        let c = &all[0];
        assert!(
            c.line
                .contains("WARNING: CPU: 0 PID: 74 at drivers/xsc/ring.c:412")
        );
        assert!(c.excerpt[0].contains("cut here"));
        assert!(
            c.excerpt
                .last()
                .is_some_and(|l| l.contains("---[ end trace"))
        );
        assert_eq!(c.excerpt.len(), 15);
    }

    #[test]
    fn cut_here_followed_by_kernel_bug_is_fatal() {
        let text = "\
[    7.000001] ------------[ cut here ]------------
[    7.000002] kernel BUG at mm/slub.c:379!
[    7.000003] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI
[    7.000004] CPU: 1 PID: 80 Comm: xsc_ring_test Not tainted 6.1.0-xsc1 #1
[    7.000005] RIP: 0010:__slab_free+0x2c1/0x2d0
[    7.000006] ---[ end trace 0000000000000000 ]---";
        let (fatal, all) = scan(text);
        assert_eq!(kinds(&fatal), vec![("bug", true)]);
        // The invalid opcode line is part of the same BUG report, not a second crash.
        assert_eq!(kinds(&all), vec![("bug", true)]);
        assert_eq!(all[0].excerpt.len(), 6);
        assert!(all[0].line.contains("kernel BUG at mm/slub.c:379!"));
    }

    #[test]
    fn oops_then_fatal_exception_panic() {
        let text = "\
[    8.112233] BUG: kernel NULL pointer dereference, address: 0000000000000008
[    8.112500] #PF: supervisor read access in kernel mode
[    8.112700] #PF: error_code(0x0000) - not-present page
[    8.112900] PGD 0 P4D 0
[    8.113000] Oops: 0000 [#1] PREEMPT SMP NOPTI
[    8.113200] CPU: 0 PID: 77 Comm: xsc_ring_test Not tainted 6.1.0-xsc1 #1
[    8.113400] RIP: 0010:xsc_sq_consume+0x2f/0x120
[    8.113600] Call Trace:
[    8.113700]  <TASK>
[    8.113800]  xsc_ring_enter+0x95/0x1f0
[    8.113900]  </TASK>
[    8.114000] ---[ end trace 0000000000000000 ]---
[    8.114100] Kernel panic - not syncing: Fatal exception
[    8.114200] Kernel Offset: disabled
[    8.114300] ---[ end Kernel panic - not syncing: Fatal exception ]---";
        let (fatal, all) = scan(text);
        assert_eq!(kinds(&fatal), vec![("bug", true), ("panic", true)]);
        assert_eq!(kinds(&all), vec![("bug", true), ("panic", true)]);
        assert_eq!(all[0].excerpt.len(), 12);
        assert_eq!(all[1].excerpt.len(), 3);
    }

    #[test]
    fn plain_oops_line_then_panic_escalates() {
        let text = "\
[    9.000001] Oops: 0002 [#1] PREEMPT SMP NOPTI
[    9.000002] Kernel panic - not syncing: Fatal exception";
        let (fatal, all) = scan(text);
        assert_eq!(kinds(&fatal), vec![("panic", true)]);
        assert_eq!(kinds(&all), vec![("oops", false), ("panic", true)]);
    }

    #[test]
    fn soft_lockup() {
        let text = "\
[   48.204112] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [xsc_sqpoll:91]
[   48.204950] Modules linked in:
[   48.205200] CPU: 1 PID: 91 Comm: xsc_sqpoll Not tainted 6.1.0-xsc1 #1
[   48.205800] RIP: 0010:xsc_sqpoll_thread+0x61/0x140";
        let (fatal, all) = scan(text);
        assert!(fatal.is_empty());
        assert_eq!(kinds(&all), vec![("soft-lockup", false)]);
        assert_eq!(all[0].excerpt.len(), 4);
        let (_, bare) =
            scan("[   48.204112] BUG: soft lockup - CPU#1 stuck for 26s! [xsc_sqpoll:91]");
        assert_eq!(kinds(&bare), vec![("soft-lockup", false)]);
    }

    #[test]
    fn rcu_stall_and_hung_task() {
        let (_, a) = scan("[   60.000000] rcu: INFO: rcu_preempt self-detected stall on CPU");
        assert_eq!(kinds(&a), vec![("rcu-stall", false)]);
        let (_, b) = scan("[   60.000000] rcu: INFO: rcu_sched detected stalls on CPUs/tasks:");
        assert_eq!(kinds(&b), vec![("rcu-stall", false)]);
        let (_, c) =
            scan("[  245.001234] INFO: task xsc_ring_test:80 blocked for more than 122 seconds.");
        assert_eq!(kinds(&c), vec![("hung-task", false)]);
    }

    #[test]
    fn sanitizers_oom_segfault() {
        let (_, k) = scan("[    3.3] BUG: KASAN: slab-out-of-bounds in xsc_cq_post+0x5e/0x90");
        assert_eq!(kinds(&k), vec![("kasan", false)]);
        let (_, f) = scan("[    3.3] BUG: KFENCE: use-after-free read in xsc_ring_free+0x2a/0x60");
        assert_eq!(kinds(&f), vec![("kfence", false)]);
        let (_, u) = scan("[    3.3] UBSAN: shift-out-of-bounds in drivers/xsc/ring.c:88:17");
        assert_eq!(kinds(&u), vec![("ubsan", false)]);
        let (_, o) = scan(
            "[   20.5] xsc_ring_test invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
        );
        assert_eq!(kinds(&o), vec![("oom", false)]);
        let text = "\
[    3.100000] fault[75]: segfault at 0 ip 0000000000401136 sp 00007ffc6c1c2e50 error 6 in fault[401000+95000]
[    3.100100] Code: 48 89 e5 c7 45 fc 00 00 00 00 48 8b 45 f0 <c7> 00 2a 00 00 00 b8 00 00 00 00 5d c3
[    3.100200] random: crng init done";
        let (fatal, s) = scan(text);
        assert!(fatal.is_empty());
        assert_eq!(kinds(&s), vec![("segfault", false)]);
        assert_eq!(s[0].excerpt.len(), 2);
    }

    #[test]
    fn gpf_kernel_vs_user() {
        let (fatal, _) = scan(
            "[   11.2] general protection fault, probably for non-canonical address 0xdead000000000100: 0000 [#1] PREEMPT SMP NOPTI",
        );
        assert_eq!(kinds(&fatal), vec![("gpf", true)]);
        let (fatal, all) = scan(
            "[   11.2] traps: fault[81] general protection fault ip:401136 sp:7ffe5f0b6b80 error:0 in fault[401000+95000]",
        );
        assert!(fatal.is_empty());
        assert_eq!(kinds(&all), vec![("segfault", false)]);
    }

    #[test]
    fn invalid_opcode_double_fault_internal_error() {
        let (f, _) = scan("[ 1.0] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI");
        assert_eq!(kinds(&f), vec![("invalid-opcode", true)]);
        let (f, a) = scan(
            "[ 1.0] traps: prog[90] trap invalid opcode ip:401136 sp:7ffe5f0b6b80 error:0 in prog[401000+95000]",
        );
        assert!(f.is_empty() && a.is_empty());
        let (f, _) = scan("[ 1.0] PANIC: double fault, error_code: 0x0");
        assert_eq!(kinds(&f), vec![("double-fault", true)]);
        let (f, _) = scan("[ 1.0] Internal error: Oops: 96000005 [#1] PREEMPT SMP");
        assert_eq!(kinds(&f), vec![("oops", true)]);
        let (f, _) = scan("[ 1.0] BUG: unable to handle page fault for address: ffffffffff600000");
        assert_eq!(kinds(&f), vec![("bug", true)]);
    }

    #[test]
    fn generic_bug_is_non_fatal() {
        let (f, a) = scan(
            "[    4.0] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580",
        );
        assert!(f.is_empty());
        assert_eq!(kinds(&a), vec![("bug", false)]);
    }

    #[test]
    fn user_output_and_indented_lines_never_match() {
        let text = "\
Kernel panic - not syncing: I am a user program
  Kernel panic - not syncing: indented guest output
  [    1.0] Kernel panic - not syncing: indented printk-looking text
  # segfault at 0 ip 0 expected here
BUG: unable to handle this
[    1.5]  Kernel panic - not syncing: an indented trace line
[    1.6]     WARNING: CPU: 0 PID: 1 at lib/kunit/test.c:1 kunit
[    1.7] xsc: Kernel panic - not syncing appears mid-message";
        let (f, a) = scan(text);
        assert!(f.is_empty(), "{f:?}");
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn ignore_list() {
        let text = "\
[    0.2] ODEBUG: object is on stack, but not annotated
[    0.3] WARNING: See https://www.kernel.org/doc/html/latest/admin-guide/hw-vuln/ for mitigation options.
[    0.4] Boot_DEBUG: early page tables";
        let (_, a) = scan(text);
        assert!(a.is_empty(), "{a:?}");
    }

    #[test]
    fn extra_patterns() {
        let extra = CrashPatterns {
            fatal: vec![r"^WARNING: CPU".into(), r"^xsc: ring corrupted".into()],
            fail: vec![r"^xsc: slow path".into()],
            ignore: vec![r"^BUG: sleeping function".into()],
        };
        let text = "\
[    1.0] BUG: sleeping function called from invalid context at kernel/locking/mutex.c:580
[    1.1] xsc: slow path taken 3 times
[    1.2] xsc: ring corrupted at head=5
[    1.3] xsc: ring 3 dump follows
[    1.4] xsc:  head=5 tail=9
[    1.5] xsc:  flags=0x3
[    1.6] xsc:  sq_entries=64
[    1.7] xsc:  cq_entries=128
[    9.0] WARNING: CPU: 1 PID: 80 at drivers/xsc/ring.c:412 xsc_ring_enter+0x1a3/0x1f0";
        let (f, a) = scan_with(text, &extra);
        assert_eq!(kinds(&f), vec![("custom", true), ("warning", true)]);
        assert_eq!(
            kinds(&a),
            vec![("custom", false), ("custom", true), ("warning", true)]
        );
        let bad = CrashPatterns {
            fatal: vec!["(".into()],
            ..CrashPatterns::default()
        };
        assert!(CrashScanner::new(&bad).is_err());
    }

    #[test]
    fn excerpt_caps_at_sixty_lines() {
        let mut text =
            String::from("[ 1.0] INFO: task xsc_ring_test:80 blocked for more than 122 seconds.\n");
        for i in 0..100 {
            text.push_str(&format!("[ 1.{i}]  some_function+0x{i:x}/0x100\n"));
        }
        let (_, a) = scan(&text);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].excerpt.len(), EXCERPT_MAX_LINES);
    }

    #[test]
    fn warning_flood_is_bounded() {
        let mut s = CrashScanner::new(&CrashPatterns::default()).expect("compiles");
        for i in 0..1000 {
            s.feed(&format!(
                "[ {i}.0] WARNING: CPU: 0 PID: 1 at a.c:{i} f+0x0/0x1"
            ));
            for _ in 0..ABSORB_WINDOW {
                s.feed(&format!("[ {i}.1] filler"));
            }
        }
        assert!(
            s.feed("[ 9999.0] Kernel panic - not syncing: still seen")
                .is_some()
        );
        assert_eq!(s.finish().len(), MAX_CRASHES + 1);
    }

    #[test]
    fn split_printk_forms() {
        assert_eq!(
            split_printk("[    1.234567] random: crng init done"),
            Some(("[    1.234567]", "random: crng init done"))
        );
        assert_eq!(
            split_printk("[    1.234567][    T1] Run /init"),
            Some(("[    1.234567][    T1]", "Run /init"))
        );
        assert_eq!(
            split_printk("[    1.2][  C0]     KTAP version 1"),
            Some(("[    1.2][  C0]", "    KTAP version 1"))
        );
        assert_eq!(split_printk("<4>[ 0.5] x"), Some(("<4>[ 0.5]", "x")));
        assert_eq!(split_printk("[  1.2]"), Some(("[  1.2]", "")));
        assert_eq!(split_printk("  [ 1.2] x"), None);
        assert_eq!(split_printk("[ 1] x"), None);
        assert_eq!(split_printk("[ a.b] x"), None);
        assert_eq!(split_printk("ok 1 x"), None);
    }

    #[test]
    fn clean_console_line_strips_noise() {
        assert_eq!(clean_console_line("\x1b[1;31mok 1 x\x1b[0m\r"), "ok 1 x");
        assert_eq!(clean_console_line("\x1bc\x1b[?7l\x1b[2JXSC"), "XSC");
        assert_eq!(
            clean_console_line("\x1b]0;title\x07  a\tb\u{0}\u{fffd}c  "),
            "  a bc"
        );
        assert_eq!(clean_console_line("\x1b(Bx\u{9b}2Ky"), "xy");
        assert_eq!(clean_console_line("tail\x1b"), "tail");
    }
}
