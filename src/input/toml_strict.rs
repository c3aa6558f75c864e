//! Strict TOML reading shared by `xsc.toml` and `scenarios/*.toml`.
//!
//! serde's `deny_unknown_fields` stops at the first problem and loses the line. Users fixing
//! a scenario want every problem at once, each with `file:line: key`, so both files are read
//! through this small typed walker over `toml_edit`'s span-keeping document instead. It only
//! reads; what the values mean is checked by the owners (config, scenario).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

/// One thing wrong with an input file, with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted key path (`machine.memory`, `program[2].timeout`); empty for the whole file.
    pub key: String,
    /// What is wrong, as a lowercase fragment.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All problems of one or more files, reported together.
#[derive(Debug, Default, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{} found", if n == 1 { "" } else { "s" })?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

/// A parsed file plus the problems found while reading it.
pub(crate) struct Doc {
    file: PathBuf,
    text: String,
    doc: toml_edit::Document<String>,
    problems: std::cell::RefCell<Vec<Problem>>,
}

impl Doc {
    /// Parses `text` (the contents of `file`); a syntax error is returned as its problem.
    pub(crate) fn parse(file: &Path, text: String) -> Result<Doc, Problem> {
        match toml_edit::Document::parse(text.clone()) {
            Ok(doc) => Ok(Doc {
                file: file.to_path_buf(),
                text,
                doc,
                problems: std::cell::RefCell::default(),
            }),
            Err(e) => Err(Problem {
                file: file.to_path_buf(),
                line: e.span().map(|s| line_of(&text, s.start)),
                key: String::new(),
                message: format!("invalid TOML: {}", e.message()),
            }),
        }
    }

    /// Takes the problems collected so far.
    pub(crate) fn take_problems(&self) -> Vec<Problem> {
        std::mem::take(&mut self.problems.borrow_mut())
    }

    /// The top-level table.
    pub(crate) fn root(&self) -> Tbl<'_> {
        Tbl {
            table: self.doc.as_table(),
            path: String::new(),
            span: None,
        }
    }

    /// Records a problem at `span` (or the file when `None`).
    pub(crate) fn problem(
        &self,
        span: Option<Range<usize>>,
        key: &str,
        message: impl Into<String>,
    ) {
        let line = span.map(|s| line_of(&self.text, s.start));
        self.problems.borrow_mut().push(Problem {
            file: self.file.clone(),
            line,
            key: key.to_string(),
            message: message.into(),
        });
    }

    /// Reports every key of `t` that is not in `allowed` (strictness: typos are errors).
    pub(crate) fn only_keys(&self, t: &Tbl<'_>, allowed: &[&str]) {
        let unknown: Vec<(String, Option<Range<usize>>)> = t
            .table
            .iter()
            .filter(|(k, _)| !allowed.contains(k))
            .map(|(k, _)| (k.to_string(), t.key_span(k)))
            .collect();
        for (key, span) in unknown {
            let msg = format!("unknown key (expected one of: {})", allowed.join(", "));
            self.problem(span, &t.child(&key), msg);
        }
    }

    /// A string value, or a problem if present with another type.
    pub(crate) fn str(&self, t: &Tbl<'_>, key: &str) -> Option<String> {
        let v = t.value(key)?;
        match v.and_then(Value::as_str) {
            Some(s) => Some(s.to_string()),
            None => self.wrong_type(t, key, "a string"),
        }
    }

    /// A required string value.
    pub(crate) fn req_str(&self, t: &Tbl<'_>, key: &str) -> Option<String> {
        if t.table.get(key).is_none() {
            self.problem(t.span.clone(), &t.child(key), "missing required key");
            return None;
        }
        self.str(t, key)
    }

    /// A boolean.
    pub(crate) fn bool(&self, t: &Tbl<'_>, key: &str) -> Option<bool> {
        let v = t.value(key)?;
        match v.and_then(Value::as_bool) {
            Some(b) => Some(b),
            None => self.wrong_type(t, key, "true or false"),
        }
    }

    /// A non-negative integer.
    pub(crate) fn uint(&self, t: &Tbl<'_>, key: &str) -> Option<u64> {
        let v = t.value(key)?;
        match v
            .and_then(Value::as_integer)
            .and_then(|i| u64::try_from(i).ok())
        {
            Some(i) => Some(i),
            None => self.wrong_type(t, key, "a non-negative integer"),
        }
    }

    /// A humantime duration such as `"20s"` or `"2m"`.
    pub(crate) fn duration(&self, t: &Tbl<'_>, key: &str) -> Option<Duration> {
        let s = self.str(t, key)?;
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => {
                self.problem(
                    t.key_span(key),
                    &t.child(key),
                    "duration must be greater than zero",
                );
                None
            }
            Err(e) => {
                self.problem(
                    t.key_span(key),
                    &t.child(key),
                    format!("invalid duration {s:?}: {e} (e.g. \"20s\", \"2m\")"),
                );
                None
            }
        }
    }

    /// A list of strings.
    pub(crate) fn str_list(&self, t: &Tbl<'_>, key: &str) -> Option<Vec<String>> {
        let v = t.value(key)?;
        let Some(arr) = v.and_then(Value::as_array) else {
            return self.wrong_type(t, key, "an array of strings");
        };
        let mut out = Vec::new();
        for (i, item) in arr.iter().enumerate() {
            match item.as_str() {
                Some(s) => out.push(s.to_string()),
                None => self.problem(
                    item.span(),
                    &format!("{}[{i}]", t.child(key)),
                    "expected a string",
                ),
            }
        }
        Some(out)
    }

    /// A sub-table (`[a.b]` or an inline `{ … }`).
    pub(crate) fn table<'d>(&self, t: &Tbl<'d>, key: &str) -> Option<Tbl<'d>> {
        let item = t.table.get(key)?;
        match item.as_table_like() {
            Some(table) => Some(Tbl {
                table,
                path: t.child(key),
                span: item_span(item).or(t.key_span(key)),
            }),
            None => self.wrong_type(t, key, "a table"),
        }
    }

    /// An array of tables (`[[key]]` or `key = [{…}, {…}]`).
    pub(crate) fn tables<'d>(&self, t: &Tbl<'d>, key: &str) -> Vec<Tbl<'d>> {
        let Some(item) = t.table.get(key) else {
            return Vec::new();
        };
        if let Some(aot) = item.as_array_of_tables() {
            return aot
                .iter()
                .enumerate()
                .map(|(i, table)| Tbl {
                    table,
                    path: format!("{}[{i}]", t.child(key)),
                    span: table.span(),
                })
                .collect();
        }
        if let Some(arr) = item.as_array() {
            let mut out = Vec::new();
            for (i, v) in arr.iter().enumerate() {
                match v.as_inline_table() {
                    Some(table) => {
                        out.push(Tbl {
                            table,
                            path: format!("{}[{i}]", t.child(key)),
                            span: v.span(),
                        });
                    }
                    None => self.problem(
                        v.span(),
                        &format!("{}[{i}]", t.child(key)),
                        "expected a table",
                    ),
                }
            }
            return out;
        }
        self.wrong_type::<()>(t, key, "an array of tables");
        Vec::new()
    }

    fn wrong_type<T>(&self, t: &Tbl<'_>, key: &str, expected: &str) -> Option<T> {
        self.problem(
            t.key_span(key),
            &t.child(key),
            format!("expected {expected}"),
        );
        None
    }
}

/// A table inside a [`Doc`], with its dotted path for messages.
pub(crate) struct Tbl<'d> {
    table: &'d dyn TableLike,
    path: String,
    span: Option<Range<usize>>,
}

impl Tbl<'_> {
    /// The dotted path of `key` inside this table.
    pub(crate) fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// This table's own path.
    pub(crate) fn path(&self) -> &str {
        &self.path
    }

    /// The keys of this table, in file order (for tables whose keys are data, such as
    /// `fw-cfg = { "opt/x" = "1" }`).
    pub(crate) fn keys(&self) -> Vec<String> {
        self.table.iter().map(|(k, _)| k.to_string()).collect()
    }

    /// True when `key` is present.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The span of `key`'s value, for problems about it.
    pub(crate) fn key_span(&self, key: &str) -> Option<Range<usize>> {
        let (k, item) = self.table.get_key_value(key)?;
        item_span(item)
            .or_else(|| k.span())
            .or_else(|| self.span.clone())
    }

    /// The span of the table itself.
    pub(crate) fn span(&self) -> Option<Range<usize>> {
        self.span.clone()
    }

    /// `None` when absent; `Some(None)` when present but a table, so getters report the type.
    fn value(&self, key: &str) -> Option<Option<&Value>> {
        self.table.get(key).map(Item::as_value)
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Doc {
        Doc::parse(Path::new("x.toml"), text.to_string()).unwrap()
    }

    #[test]
    fn collects_every_problem_with_line_and_key() {
        let d = doc("name = 3\n[machine]\nmemory = \"512M\"\ncpus = \"two\"\ncolour = true\n");
        let root = d.root();
        assert_eq!(d.str(&root, "name"), None);
        let m = d.table(&root, "machine").unwrap();
        d.only_keys(&m, &["memory", "cpus"]);
        assert_eq!(d.uint(&m, "cpus"), None);
        let shown: Vec<String> = d.take_problems().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "x.toml:1: name: expected a string",
                "x.toml:5: machine.colour: unknown key (expected one of: memory, cpus)",
                "x.toml:4: machine.cpus: expected a non-negative integer",
            ]
        );
    }

    #[test]
    fn durations_are_humantime() {
        let d = doc("a = \"20s\"\nb = \"2m\"\nc = \"soon\"\nd = \"0s\"\n");
        let root = d.root();
        assert_eq!(d.duration(&root, "a"), Some(Duration::from_secs(20)));
        assert_eq!(d.duration(&root, "b"), Some(Duration::from_secs(120)));
        assert_eq!(d.duration(&root, "c"), None);
        assert_eq!(d.duration(&root, "d"), None);
        let problems = d.take_problems();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].message.contains("invalid duration \"soon\""));
    }

    #[test]
    fn arrays_of_tables_in_both_spellings() {
        let d = doc("[[p]]\nname = \"a\"\n[[p]]\nname = \"b\"\n");
        let root = d.root();
        let names: Vec<_> = d
            .tables(&root, "p")
            .iter()
            .map(|t| t.path().to_string())
            .collect();
        assert_eq!(names, ["p[0]", "p[1]"]);
        let d = doc("p = [{ name = \"a\" }, 3]\n");
        let root = d.root();
        assert_eq!(d.tables(&root, "p").len(), 1);
        assert_eq!(d.take_problems()[0].key, "p[1]");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = Doc::parse(Path::new("bad.toml"), "a = 1\nb = \n".to_string())
            .err()
            .unwrap();
        assert_eq!(err.line, Some(2));
        assert!(
            err.to_string().starts_with("bad.toml:2: invalid TOML"),
            "{err}"
        );
    }

    #[test]
    fn a_table_where_a_string_belongs_is_a_type_error() {
        let d = doc("[name]\nx = 1\n");
        let root = d.root();
        assert_eq!(d.str(&root, "name"), None);
        assert_eq!(d.take_problems()[0].message, "expected a string");
    }
}
