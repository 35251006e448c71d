//! Reading values out of statements, with errors that name the keyword, the expected
//! form and what was found.

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::diagnostic::Diagnostic;
use crate::tree::{Block, Stmt, Word};

/// Collects what went wrong while turning statements into the model.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Rules written without a preference so far (IPv4, IPv6): keepalived numbers them
    /// down from 16384 across the whole file.
    pub rules_without_preference: [u32; 2],
}

impl Ctx {
    /// An error pointing at `word`.
    pub fn error(&mut self, word: &Word, message: impl Into<String>) {
        self.errors
            .push(Diagnostic::error(word.loc.clone(), word.width, message));
    }

    /// A warning pointing at `word`.
    pub fn warn(&mut self, word: &Word, message: impl Into<String>) {
        self.warnings
            .push(Diagnostic::warning(word.loc.clone(), word.width, message));
    }

    /// A keyword keepalived knows and tandem ignores.
    pub fn unsupported(&mut self, stmt: &Stmt) {
        let k = &stmt.key.text;
        self.warn(
            &stmt.key,
            format!("`{k}` is not supported by tandem (ignored)"),
        );
    }

    /// A block keyword keepalived knows and tandem does not implement yet.
    pub fn not_yet(&mut self, stmt: &Stmt) {
        let k = &stmt.key.text;
        self.warn(
            &stmt.key,
            format!("`{k}` is not yet supported by tandem (ignored)"),
        );
    }

    /// A keyword nobody knows in this block.
    pub fn unknown(&mut self, stmt: &Stmt, within: &str) {
        let k = &stmt.key.text;
        self.error(&stmt.key, format!("unknown keyword `{k}` in {within}"));
    }

    /// Errors when a keyword that takes no block has one; returns whether all is well.
    pub fn no_block(&mut self, stmt: &Stmt) -> bool {
        match &stmt.block {
            Some(b) => {
                let k = &stmt.key.text;
                self.errors.push(Diagnostic::error(
                    b.open.clone(),
                    1,
                    format!("`{k}` does not take a `{{ ... }}` block"),
                ));
                false
            }
            None => true,
        }
    }

    /// The block of a keyword that needs one, with no values before the `{`.
    pub fn block<'s>(&mut self, stmt: &'s Stmt) -> Option<&'s Block> {
        let k = &stmt.key.text;
        if let Some(extra) = stmt.args.first() {
            let found = &extra.text;
            self.error(
                extra,
                format!("`{k}` takes no value before its `{{`, found `{found}`"),
            );
        }
        if stmt.block.is_none() {
            self.error(&stmt.key, format!("`{k}` expects a block `{{ ... }}`"));
        }
        stmt.block.as_ref()
    }

    /// A keyword with no value (`nopreempt`), or with an optional on/off value as
    /// keepalived 2 accepts for most switches.
    pub fn flag(&mut self, stmt: &Stmt) -> Option<bool> {
        if !self.no_block(stmt) {
            return None;
        }
        let k = &stmt.key.text;
        match stmt.args.as_slice() {
            [] => Some(true),
            [w] => match w.text.to_ascii_lowercase().as_str() {
                "on" | "true" | "yes" => Some(true),
                "off" | "false" | "no" => Some(false),
                _ => {
                    let found = &w.text;
                    self.error(w, format!("`{k}` takes no value (or one of on|off|true|false|yes|no), found `{found}`"));
                    None
                }
            },
            [_, extra, ..] => {
                let found = &extra.text;
                self.error(
                    extra,
                    format!("`{k}` takes at most one value, found extra `{found}`"),
                );
                None
            }
        }
    }

    /// A switch keepalived sets whatever follows it (`nopreempt`, `vrrp_strict`, ...): a value
    /// after it is ignored, as keepalived ignores it (so `nopreempt off` still sets
    /// nopreempt), with a warning saying so. `None` only when it wrongly has a block.
    pub fn switch(&mut self, stmt: &Stmt) -> Option<bool> {
        if !self.no_block(stmt) {
            return None;
        }
        if let Some(w) = stmt.args.first() {
            let k = &stmt.key.text;
            let found = &w.text;
            self.warn(
                w,
                format!("`{k}` takes no value: `{found}` is ignored, as keepalived ignores it, and `{k}` is set"),
            );
        }
        Some(true)
    }

    /// The single value of a keyword; `expects` describes it for the error message.
    pub fn one<'s>(&mut self, stmt: &'s Stmt, expects: &str) -> Option<&'s Word> {
        if !self.no_block(stmt) {
            return None;
        }
        let k = &stmt.key.text;
        match stmt.args.as_slice() {
            [] => {
                self.error(
                    &stmt.key,
                    format!("`{k}` expects {expects}, found end of line"),
                );
                None
            }
            [w] => Some(w),
            [_, extra, ..] => {
                let found = &extra.text;
                self.error(
                    extra,
                    format!("`{k}` takes one value, found extra `{found}` (put each setting on its own line)"),
                );
                None
            }
        }
    }

    /// An integer in `lo..=hi`, from the single value of `stmt`.
    pub fn int<T>(&mut self, stmt: &Stmt, lo: T, hi: T) -> Option<T>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let expects = format!("{lo}..={hi}");
        let w = self.one(stmt, &expects)?;
        self.int_word(&stmt.key.text, w, lo, hi)
    }

    /// An integer in `lo..=hi` from `word`, for keyword `key`.
    pub fn int_word<T>(&mut self, key: &str, w: &Word, lo: T, hi: T) -> Option<T>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        match w.text.parse::<T>() {
            Ok(v) if v >= lo && v <= hi => Some(v),
            _ => {
                let found = &w.text;
                self.error(w, format!("`{key}` expects {lo}..={hi}, found `{found}`"));
                None
            }
        }
    }

    /// A duration in seconds (fractions allowed, to the microsecond) up to `max_secs`.
    pub fn seconds(&mut self, stmt: &Stmt, max_secs: u64) -> Option<Duration> {
        let expects = format!("seconds 0..={max_secs}");
        let w = self.one(stmt, &expects)?;
        self.seconds_word(&stmt.key.text, w, max_secs)
    }

    /// [`Ctx::seconds`] for a given word.
    pub fn seconds_word(&mut self, key: &str, w: &Word, max_secs: u64) -> Option<Duration> {
        match parse_seconds(&w.text) {
            Some(d) if d <= Duration::from_secs(max_secs) => Some(d),
            _ => {
                let found = &w.text;
                self.error(w, format!("`{key}` expects seconds 0..={max_secs} (fractions allowed, e.g. 1.5), found `{found}`"));
                None
            }
        }
    }

    /// [`Ctx::ip`], but a prefix length after the address (`10.0.0.1/24`) is dropped with a
    /// warning, as keepalived drops it for `unicast_src_ip` and `unicast_peer`.
    pub fn ip_dropping_prefix(&mut self, key: &str, w: &Word) -> Option<IpAddr> {
        let prefixed = (w.text.split_once('/'))
            .filter(|(_, len)| !len.is_empty() && len.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(addr, _)| addr.parse::<IpAddr>().ok());
        match prefixed {
            Some(a) => {
                let text = &w.text;
                self.warn(
                    w,
                    format!("`{key}` takes an address: the prefix length in `{text}` is ignored, as keepalived does"),
                );
                Some(a)
            }
            None => self.ip(key, w),
        }
    }

    /// An IPv4 or IPv6 address from `w`, for keyword `key`.
    pub fn ip(&mut self, key: &str, w: &Word) -> Option<IpAddr> {
        match w.text.parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                let found = &w.text;
                self.error(
                    w,
                    format!("`{key}` expects an IPv4 or IPv6 address, found `{found}`"),
                );
                None
            }
        }
    }

    /// The weight of a `track_*` line or a `vrrp_script`: `N [reverse|noreverse]` in
    /// `-253..=253` (`limit` = 253; track files allow 254).
    pub fn weight(&mut self, key: &str, words: &[Word]) -> Option<(i32, bool)> {
        self.weight_within(key, words, 253)
    }

    /// [`Ctx::weight`] within `-limit..=limit`.
    pub fn weight_within(&mut self, key: &str, words: &[Word], limit: i32) -> Option<(i32, bool)> {
        let (weight, reverse) = self.weight_direction(key, words, limit)?;
        Some((weight, reverse.unwrap_or(false)))
    }

    /// [`Ctx::weight_within`] telling an unwritten direction (`None`) from `noreverse`, for
    /// references whose direction, when written, overrides the tracker's own.
    pub fn weight_direction(
        &mut self,
        key: &str,
        words: &[Word],
        limit: i32,
    ) -> Option<(i32, Option<bool>)> {
        let value = words.first()?;
        let weight = self.int_word(key, value, -limit, limit)?;
        let reverse = match words.get(1) {
            None => None,
            Some(w) if w.text == "noreverse" => Some(false),
            Some(w) if w.text == "reverse" => Some(true),
            Some(w) => {
                let found = &w.text;
                self.error(
                    w,
                    format!("`{key}` expects `weight N [reverse|noreverse]`, found `{found}`"),
                );
                return None;
            }
        };
        if let Some(extra) = words.get(2) {
            let found = &extra.text;
            self.error(
                extra,
                format!("`{key}` expects `weight N [reverse|noreverse]`, found extra `{found}`"),
            );
            return None;
        }
        Some((weight, reverse))
    }
}

/// Parses `3`, `0.25` or `2.71828` as seconds (microsecond resolution, as keepalived).
pub(crate) fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(frac) || frac.len() > 6 {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Some(Duration::from_secs(secs) + Duration::from_micros(micros.into()))
}

/// Reads a notify-style script line: `KEYWORD SCRIPT [USER [GROUP]]`. Words after the
/// script are keepalived's per-script user; tandem runs hooks as `script_user`.
pub(crate) fn script_line(ctx: &mut Ctx, stmt: &Stmt) -> Option<String> {
    if !ctx.no_block(stmt) {
        return None;
    }
    let k = &stmt.key.text;
    let Some(script) = stmt.args.first() else {
        ctx.error(
            &stmt.key,
            format!("`{k}` expects a script path or a quoted command, found end of line"),
        );
        return None;
    };
    if let Some(user) = stmt.args.get(1) {
        let u = &user.text;
        ctx.warn(
            user,
            format!(
                "`{k}`: words after the script name the user to run it as (`{u}`), which tandem does not support; \
                 it runs as `script_user` (quote the whole command if these were meant as arguments)"
            ),
        );
    }
    Some(script.text.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_seconds("0.1"), Some(Duration::from_millis(100)));
        assert_eq!(parse_seconds(".5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_seconds("2.71828"),
            Some(Duration::from_micros(2_718_280))
        );
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("."), None);
        assert_eq!(parse_seconds("1e3"), None);
        assert_eq!(parse_seconds("99999999999999999999999"), None);
    }
}
