//! Warnings and errors that point at a place in a configuration file.

use std::fmt;

use crate::model::Location;

/// How serious a diagnostic is: errors stop the daemon from starting, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Severity {
    /// The configuration cannot be used as written.
    #[default]
    Error,
    /// The configuration is usable, but something in it is ignored or suspicious.
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// A warning or error tied to a place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where.
    pub location: Location,
    /// What, in words an operator can act on.
    pub message: String,
    /// Error or warning, so a list of diagnostics can be printed with the right label.
    pub severity: Severity,
    /// How many characters the caret line underlines (at least 1).
    pub width: u32,
    /// The text of the line the location points into, when it is known.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// An error at `location` underlining `width` characters.
    pub fn error(location: Location, width: u32, message: impl Into<String>) -> Self {
        Diagnostic {
            location,
            message: message.into(),
            severity: Severity::Error,
            width: width.max(1),
            source_line: None,
        }
    }

    /// A warning at `location` underlining `width` characters.
    pub fn warning(location: Location, width: u32, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(location, width, message)
        }
    }

    /// Whether this diagnostic is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The diagnostic as an operator sees it on a terminal: the label, the place, the message,
    /// then the source line with a caret under the offending text.
    pub fn render(&self) -> String {
        let mut out = format!("{}: {}", self.severity, self);
        let Some(line) = &self.source_line else {
            return out;
        };
        let number = self.location.line.to_string();
        let gutter = number.len().max(5);
        let line = line.trim_end_matches(['\r', '\n']);
        out.push_str(&format!("\n{number:>gutter$} | {line}\n{:gutter$} | ", ""));
        // Reproduce tabs before the column so the caret lines up however the terminal
        // expands them.
        let skip = self.location.column.saturating_sub(1) as usize;
        let mut pad = String::new();
        for c in line.chars().take(skip) {
            pad.push(if c == '\t' { '\t' } else { ' ' });
        }
        out.push_str(&pad);
        out.push_str(&"^".repeat(self.width.max(1) as usize));
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.location.file.display(),
            self.location.line,
            self.location.column,
            self.message
        )
    }
}
