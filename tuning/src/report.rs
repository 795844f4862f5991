//! Rendering findings and plans for people (a table) and for automation (JSON).

use std::fmt::Write as _;

use serde::Serialize;

use crate::judge::{Finding, Severity, anything_important};
use crate::plan::Plan;

/// `check --json`: the findings and the verdict that sets the exit status.
#[derive(Debug, Serialize)]
pub struct CheckReport<'a> {
    /// True when a finding is [`Severity::Important`] (exit status 1).
    pub important: bool,
    /// Every finding, in the judge's order.
    pub findings: &'a [Finding],
}

impl<'a> CheckReport<'a> {
    /// The report of `findings`.
    pub fn new(findings: &'a [Finding]) -> Self {
        Self {
            important: anything_important(findings),
            findings,
        }
    }
}

/// The findings as a table: one row per setting (status, setting, current, wanted), then its
/// why and fix indented beneath, so long values stay readable in a terminal.
pub fn table(findings: &[Finding]) -> String {
    let w_set = width(findings.iter().map(|f| f.setting.as_str()), 36);
    let w_cur = width(findings.iter().map(|f| f.current.as_str()), 44);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<9} {:<w_set$} {:<w_cur$} WANTED",
        "STATUS", "SETTING", "CURRENT"
    );
    for f in findings {
        let _ = writeln!(
            out,
            "{:<9} {:<w_set$} {:<w_cur$} {}",
            label(f.severity),
            f.setting,
            f.current,
            f.wanted
        );
        if f.severity != Severity::Ok {
            let _ = writeln!(out, "          why: {}", f.why);
        }
        if !f.fix.is_empty() {
            let _ = writeln!(out, "          fix: {}", f.fix);
        }
    }
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    let _ = writeln!(
        out,
        "\n{} important, {} advice, {} info, {} ok",
        count(Severity::Important),
        count(Severity::Advice),
        count(Severity::Info),
        count(Severity::Ok)
    );
    out
}

/// A plan for `--dry-run` (or before applying): each file, its current and new content.
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    if plan.changes.is_empty() {
        out.push_str("nothing to change\n");
    }
    for c in &plan.changes {
        let _ = writeln!(out, "/{}  ({})", c.path, c.why);
        let now = c.current.as_deref().unwrap_or("(no file)");
        if now.contains('\n') || c.new.contains('\n') {
            let _ = writeln!(out, "  now:\n{}", indent(now));
            let _ = writeln!(out, "  new:\n{}", indent(&c.new));
        } else {
            let _ = writeln!(out, "  {now} -> {}", c.new);
        }
    }
    for n in &plan.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

fn label(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "ok",
        Severity::Info => "info",
        Severity::Advice => "ADVICE",
        Severity::Important => "IMPORTANT",
    }
}

fn width<'a>(items: impl Iterator<Item = &'a str>, cap: usize) -> usize {
    items.map(|s| s.chars().count()).max().unwrap_or(0).min(cap)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
