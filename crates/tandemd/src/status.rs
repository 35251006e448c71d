//! `tandemctl status`: the [`Snapshot`](crate::snapshot::Snapshot) as lines of `key=value`
//! ([`text`]) and as one JSON document for monitoring scripts ([`json`]).

mod json;
mod text;

pub use json::render as json;
pub use text::render as text;
