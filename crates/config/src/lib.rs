//! keepalived.conf parser: reads the file operators already have into tandem's typed model.

pub mod model;
pub use model::*;

/// A warning or error tied to a place in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where.
    pub location: Location,
    /// What, in words an operator can act on.
    pub message: String,
}
