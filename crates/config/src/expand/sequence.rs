//! keepalived's `~SEQ(VAR, [START,] [STEP,] END) REST`, `~SEQx(...)` and `~LST(...)` lines
//! (keepalived 2.2's `add_seq` and `add_lst`): REST is read once per value, with `$VAR` set to
//! it. START defaults to 1 (-1 when END is negative), STEP to 1 or -1 towards END; a STEP of 0
//! or away from END is refused. `~LST(VAR, A, B)` takes the values as listed, and
//! `~LST({V1, V2}, {A1, A2}, {B1})` several variables at a time (missing values are empty).

use super::{reference, Definition, Expander, Line, Origin, Sink};

impl Expander {
    /// `~LST(VAR, VALUE, ...) REST` or `~LST({VAR, ...}, {VALUE, ...}, ...) REST`.
    pub(super) fn list(&mut self, line: &Line, depth: usize, sink: &mut dyn Sink) {
        let Some((vars, sets, rest)) = parse_list(&line.text) else {
            let end = (line.text.iter().position(|&c| c == ')')).map_or(line.text.len(), |p| p + 1);
            let text = line.string();
            self.error(
                line,
                0,
                end,
                format!(
                    "invalid `~LST` line: expected `~LST(VAR, VALUE, ...)` or \
                     `~LST({{VAR, ...}}, {{VALUE, ...}}, ...)` with no more values than \
                     variables in a set, found `{text}`"
                ),
            );
            return;
        };
        let rest = line.slice(rest, line.text.len());
        let (loc, width) = line.span(0, 4);
        let origin = Origin {
            line: loc.line,
            col: loc.column,
            width,
        };
        for set in sets {
            for (i, var) in vars.iter().enumerate() {
                let value: Vec<char> = set.get(i).map(|v| v.chars().collect()).unwrap_or_default();
                let n = value.len();
                let value = Line {
                    file: line.file.clone(),
                    text: value,
                    origin: vec![origin; n],
                };
                self.definitions
                    .insert(var.clone(), Definition { lines: vec![value] });
            }
            let mut rest = rest.clone();
            rest.trim_start();
            self.process(rest, depth + 1, sink);
            if self.over_budget {
                return;
            }
        }
    }

    /// `~SEQ(VAR, [START,] [STEP,] END) REST` or `~SEQx(...)`: REST once per value, with
    /// `$VAR` set to it (in hexadecimal for `~SEQx`).
    pub(super) fn sequence(&mut self, line: &Line, depth: usize, sink: &mut dyn Sink) {
        let (var, values, hex, rest) = match self.parse_sequence(line) {
            Ok(s) => s,
            Err(message) => {
                let end = line
                    .text
                    .iter()
                    .position(|&c| c == ')')
                    .map_or(line.text.len(), |p| p + 1);
                self.error(line, 0, end, message);
                return;
            }
        };
        let (start, step, end) = values;
        let mut value = start;
        loop {
            let text = if hex {
                format!("{value:x}")
            } else {
                value.to_string()
            };
            let n = text.chars().count();
            let (loc, width) = line.span(0, 4);
            let origin = Origin {
                line: loc.line,
                col: loc.column,
                width,
            };
            self.definitions.insert(
                var.clone(),
                Definition {
                    lines: vec![Line {
                        file: line.file.clone(),
                        text: text.chars().collect(),
                        origin: vec![origin; n],
                    }],
                },
            );
            self.process(rest.clone(), depth + 1, sink);
            if self.over_budget {
                return;
            }
            match value.checked_add(step) {
                Some(v) if (step > 0 && v <= end) || (step < 0 && v >= end) => value = v,
                _ => break,
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn parse_sequence(&self, line: &Line) -> Result<(String, (i64, i64, i64), bool, Line), String> {
        let text = line.string();
        let invalid = || {
            format!(
                "invalid `~SEQ` line: expected `~SEQ(VAR, [START,] [STEP,] END)`, found `{text}`"
            )
        };
        let after = &line.text[4..];
        let hex = after.first() == Some(&'x');
        let mut i = 4 + usize::from(hex);
        while line.text.get(i).is_some_and(|c| *c == ' ' || *c == '\t') {
            i += 1;
        }
        if line.text.get(i) != Some(&'(') {
            return Err(invalid());
        }
        let close = line.text[i..]
            .iter()
            .position(|&c| c == ')')
            .map(|p| p + i)
            .ok_or_else(invalid)?;
        let inside: String = line.text[i + 1..close].iter().collect();
        let mut parts = inside.splitn(2, ',');
        let var = parts.next().unwrap_or("").trim().to_string();
        let numbers = parts.next().ok_or_else(invalid)?;
        if var.is_empty() || var.contains([' ', '\t']) {
            return Err(invalid());
        }
        // The numbers may be parameters: substitute single-line ones.
        let numbers = self.substitute_plain(numbers);
        let values: Vec<i64> = numbers
            .split(',')
            .map(|n| parse_c_long(n.trim()).ok_or_else(invalid))
            .collect::<Result<_, _>>()?;
        let (start, step, end) = match values[..] {
            [end] => (
                if end < 0 { -1 } else { 1 },
                if end < 1 { -1 } else { 1 },
                end,
            ),
            [start, end] => (start, if start <= end { 1 } else { -1 }, end),
            [start, step, end] => {
                if step == 0 || (start < end && step < 0) || (start > end && step > 0) {
                    return Err(format!(
                        "invalid `~SEQ` values in `{text}`: STEP must be non-zero and go from START towards END"
                    ));
                }
                (start, step, end)
            }
            _ => return Err(invalid()),
        };
        if hex && (start < 0 || end < 0) {
            return Err(format!(
                "`~SEQx` takes only non-negative numbers, found `{text}`"
            ));
        }
        let mut rest = line.slice(close + 1, line.text.len());
        rest.trim_start();
        Ok((var, (start, step, end), hex, rest))
    }

    /// `text` with its single-line parameters substituted (for `~SEQ` numbers).
    fn substitute_plain(&self, text: &str) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        let mut pos = 0;
        let mut count = 0;
        while let Some(i) = chars[pos..].iter().position(|&c| c == '$').map(|p| p + pos) {
            let value = reference(&chars, i).and_then(|r| {
                let d = self.definitions.get(&r.name)?;
                (d.lines.len() == 1 && r.args.is_none()).then(|| (r.end, d.lines[0].text.clone()))
            });
            count += 1;
            match value {
                Some((end, v)) if count < 100 && chars.len() < 1024 => {
                    chars.splice(i..end, v);
                    pos = i;
                }
                _ => pos = i + 1,
            }
        }
        chars.into_iter().collect()
    }
}

/// Splits `~LST(...) REST` into its variables, its sets of values and where REST starts.
fn parse_list(t: &[char]) -> Option<(Vec<String>, Vec<Vec<String>>, usize)> {
    let blank = |c: &char| *c == ' ' || *c == '\t';
    let mut p = 4;
    let skip = |p: &mut usize| {
        while t.get(*p).is_some_and(blank) {
            *p += 1;
        }
    };
    // A group: `{a, b}` or a single item, items ending at a blank, `,`, `}` or `)`.
    let group = |p: &mut usize| -> Option<Vec<String>> {
        skip(p);
        let braced = t.get(*p) == Some(&'{');
        if braced {
            *p += 1;
        }
        let mut items = Vec::new();
        loop {
            skip(p);
            let start = *p;
            while t
                .get(*p)
                .is_some_and(|c| !blank(c) && !matches!(c, ',' | '}' | ')'))
            {
                *p += 1;
            }
            items.push(t[start..*p].iter().collect());
            skip(p);
            match t.get(*p) {
                Some(',') if braced => *p += 1,
                Some('}') if braced => {
                    *p += 1;
                    skip(p);
                    return Some(items);
                }
                Some(',' | ')') if !braced => return Some(items),
                _ => return None,
            }
        }
    };
    skip(&mut p);
    if t.get(p) != Some(&'(') {
        return None;
    }
    p += 1;
    let vars = group(&mut p)?;
    let mut sets = Vec::new();
    while t.get(p) == Some(&',') {
        p += 1;
        let set = group(&mut p)?;
        if set.len() > vars.len() {
            return None;
        }
        sets.push(set);
    }
    if t.get(p) != Some(&')') || sets.is_empty() || vars.iter().any(String::is_empty) {
        return None;
    }
    Some((vars, sets, p + 1))
}

/// A number as C's `strtol(s, _, 0)` reads it: decimal, `0x` hexadecimal or `0` octal,
/// with an optional sign; the whole text must be the number.
fn parse_c_long(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.starts_with(['+', '-']) {
        return None;
    }
    let value = if let Some(h) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        if h.starts_with(['+', '-']) {
            return None;
        }
        i64::from_str_radix(h, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<i64>().ok()?
    };
    if neg {
        value.checked_neg()
    } else {
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        let parse = |s: &str| parse_list(&s.chars().collect::<Vec<_>>()).map(|(v, s, _)| (v, s));
        let (vars, sets) = parse("~LST({IP, IP1}, {10,1},{20}) x").unwrap();
        assert_eq!(vars, ["IP", "IP1"]);
        assert_eq!(sets, [vec!["10", "1"], vec!["20"]]);
        let (vars, sets) = parse("~LST(A, 1, 2, 3) x").unwrap();
        assert_eq!((vars.len(), sets.len()), (1, 3));
        assert!(parse("~LST(A, {1, 2}) x").is_none(), "too many values");
        assert!(parse("~LST(A) x").is_none());
        assert!(parse("~LST(A, 1").is_none());
    }

    #[test]
    fn c_numbers() {
        assert_eq!(parse_c_long("10"), Some(10));
        assert_eq!(parse_c_long("0x1f"), Some(31));
        assert_eq!(parse_c_long("010"), Some(8));
        assert_eq!(parse_c_long("-3"), Some(-3));
        assert_eq!(parse_c_long("0"), Some(0));
        assert_eq!(parse_c_long("x"), None);
        assert_eq!(parse_c_long("--1"), None);
        assert_eq!(parse_c_long("-0x-8000000000000000"), None);
        assert_eq!(parse_c_long("-9223372036854775807"), Some(-i64::MAX));
    }
}
