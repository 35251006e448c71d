//! keepalived.conf parser: reads the file operators already have into tandem's typed model.
//!
//! The file is read the way keepalived 2.2 reads it (same keywords, comments, quoting,
//! `include` globs, `@ID` conditional lines, `$NAME` parameters and `~SEQ` / `~LST` lines, the
//! config id given in [`LoadOptions`]) into a [`Config`]. Keywords keepalived knows but tandem does not act
//! on become warnings in [`Config::warnings`]; anything else that is wrong becomes an
//! error naming `file:line:column`, and all errors found are returned together.
//!
//! ```
//! use std::path::Path;
//!
//! let text = "vrrp_instance VI_1 {\n  interface eth0\n  virtual_router_id 51\n  \
//!             virtual_ipaddress {\n    10.0.0.1/24\n  }\n}\n";
//! let config = tandem_config::parse_str(text, Path::new("keepalived.conf")).unwrap();
//! assert_eq!(config.instances[0].virtual_router_id, 51);
//! assert_eq!(config.instances[0].priority, 100);
//! ```

mod conntrackd;
mod diagnostic;
mod expand;
#[doc(hidden)]
pub mod fuzzing;
mod instance;
mod keywords;
mod lexer;
pub mod lvs;
mod lvs_checkers;
mod lvs_parse;
mod lvs_syncd;
pub mod model;
mod native;
mod parser;
mod routes;
pub mod sync;
mod track_file;
mod track_process;
mod tree;
mod values;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, Severity};
pub use lvs::*;
pub use model::*;
pub use native::{LbBackend, MetricsConfig};
pub use sync::{FilterConfig, ListFilter, Policy, SyncConfig, Transport};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The top-level file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file we tried to read.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a usable configuration.
    #[error("{}", summary(errors))]
    Invalid {
        /// Every error found, in file order.
        errors: Vec<Diagnostic>,
        /// Warnings found on the way, so a `--check` can show them too.
        warnings: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The errors behind this failure (empty for an I/O error).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid { errors, .. } => errors,
        }
    }

    /// The warnings found on the way (shown with the errors: they often explain them).
    pub fn warnings(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid { warnings, .. } => warnings,
        }
    }
}

fn summary(errors: &[Diagnostic]) -> String {
    let lines: Vec<String> = errors.iter().map(|d| d.to_string()).collect();
    lines.join("\n")
}

/// How a configuration is read: what keepalived takes from its command line.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// keepalived's `-i/--config-id`: selects `@ID` lines and is `${_INSTANCE}`. `None` means
    /// keepalived's default, this host's name up to its first dot.
    pub config_id: Option<String>,
}

impl LoadOptions {
    /// The config id to use: the one given, else the host name up to its first dot.
    pub fn resolved_config_id(&self) -> Option<String> {
        self.config_id.clone().or_else(host_config_id)
    }
}

/// keepalived's default config id: the node name (`uname -n`) up to its first `.`.
pub fn host_config_id() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    let short = name.split('.').next().unwrap_or(name);
    (!short.is_empty()).then(|| short.to_owned())
}

/// The control socket a conntrackd.conf names (`General { UNIX { Path ... } }`), so that
/// `tandemctl -C conntrackd.conf` talks to the socket that file sets, as conntrackd does.
/// None when the file sets none.
pub fn conntrackd_control_path(path: &Path) -> Result<Option<PathBuf>, ConfigError> {
    let bytes = lexer::read_config_file(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let lexed = lexer::lex_with_includes(&text, path, None);
    let mut ignored = Vec::new();
    let stmts = tree::build(&lexed.tokens, &mut ignored);
    let named = |stmts: &'_ [tree::Stmt], name: &str| -> Option<tree::Stmt> {
        stmts
            .iter()
            .find(|s| s.key.text.eq_ignore_ascii_case(name))
            .cloned()
    };
    let found = named(&stmts, "General")
        .and_then(|g| named(&g.block?.stmts, "UNIX"))
        .and_then(|u| named(&u.block?.stmts, "Path"))
        .and_then(|p| p.args.first().map(|w| PathBuf::from(&w.text)));
    Ok(found)
}

/// Reads the configuration at `path`, following its `include` lines.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let bytes = lexer::read_config_file(path).map_err(|source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&String::from_utf8_lossy(&bytes), path)
}

/// Reads several files into one configuration, as `tandemd -f A -f B` does: keepalived.conf
/// files give the VRRP part, a conntrackd.conf (recognised by its `Sync` / `General` blocks)
/// or a `.toml` file with a `[sync]` section gives the replication part.
pub fn load_files(paths: &[PathBuf]) -> Result<Config, ConfigError> {
    load_files_with(paths, &LoadOptions::default())
}

/// [`load_files`] with keepalived's command-line choices (`-i/--config-id`).
pub fn load_files_with(paths: &[PathBuf], options: &LoadOptions) -> Result<Config, ConfigError> {
    let config_id = options.resolved_config_id();
    let mut config = Config::default();
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut vrrp_seen = false;
    for path in paths {
        let bytes = lexer::read_config_file(path).map_err(|source| ConfigError::Io {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let sync =
            if path.extension().is_some_and(|e| e == "toml") {
                match native::parse(&text, path) {
                    Ok(native) => {
                        if native.metrics.is_some() {
                            if config.metrics.is_some() {
                                errors.push(Diagnostic::error(
                                    Location {
                                        file: path.as_path().into(),
                                        line: 1,
                                        column: 1,
                                    },
                                    1,
                                    "a second [metrics] section: give it in one file",
                                ));
                            }
                            config.metrics = native.metrics;
                        }
                        if let Some(b) = native.lb_backend {
                            config.lb_backend = b;
                        }
                        native.sync
                    }
                    Err(e) => {
                        errors.extend(e);
                        continue;
                    }
                }
            } else {
                let lexed = lexer::lex_with_includes(&text, path, config_id.as_deref());
                let mut ctx = values::Ctx::default();
                let stmts = tree::build(&lexed.tokens, &mut ctx.errors);
                if !conntrackd::looks_like(&stmts) {
                    if vrrp_seen {
                        errors.push(Diagnostic::error(
                        Location { file: path.as_path().into(), line: 1, column: 1 },
                        1,
                        "only one keepalived.conf may be given (use `include` to combine files)",
                    ));
                        continue;
                    }
                    vrrp_seen = true;
                    match parse_with_id(&text, path, config_id.as_deref()) {
                        Ok(vrrp) => {
                            let (sync, metrics) = (config.sync.take(), config.metrics.take());
                            let lb_backend = config.lb_backend;
                            config = vrrp;
                            config.sync = sync;
                            config.metrics = metrics;
                            config.lb_backend = lb_backend;
                        }
                        Err(ConfigError::Invalid {
                            errors: e,
                            warnings: w,
                        }) => {
                            errors.extend(e);
                            warnings.extend(w);
                        }
                        Err(io) => return Err(io),
                    }
                    continue;
                }
                let start = Location {
                    file: path.as_path().into(),
                    line: 1,
                    column: 1,
                };
                let sync = conntrackd::parse(&stmts, start, &mut ctx);
                lexed.sources.attach(&mut ctx.errors);
                lexed.sources.attach(&mut ctx.warnings);
                errors.extend(lexed.diagnostics.into_iter().filter(Diagnostic::is_error));
                errors.extend(ctx.errors);
                warnings.extend(ctx.warnings);
                sync
            };
        if sync.is_some() {
            if config.sync.is_some() {
                errors.push(Diagnostic::error(
                    Location { file: path.as_path().into(), line: 1, column: 1 },
                    1,
                    "a second sync configuration: give conntrackd.conf or a [sync] section, not both",
                ));
            }
            config.sync = sync;
        }
    }
    if !errors.is_empty() {
        sort(&mut errors);
        return Err(ConfigError::Invalid { errors, warnings });
    }
    config.warnings.extend(warnings);
    Ok(config)
}

/// Parses `text` as if it were the contents of `file`; includes are resolved relative to
/// the directory of `file`.
pub fn parse_str(text: &str, file: &Path) -> Result<Config, ConfigError> {
    parse_str_with(text, file, &LoadOptions::default())
}

/// [`parse_str`] with keepalived's command-line choices (`-i/--config-id`).
pub fn parse_str_with(
    text: &str,
    file: &Path,
    options: &LoadOptions,
) -> Result<Config, ConfigError> {
    parse_with_id(text, file, options.resolved_config_id().as_deref())
}

fn parse_with_id(text: &str, file: &Path, config_id: Option<&str>) -> Result<Config, ConfigError> {
    let lexed = lexer::lex_with_includes(text, file, config_id);
    let mut tree_errors = Vec::new();
    let stmts = tree::build(&lexed.tokens, &mut tree_errors);
    parse_keepalived(lexed, &stmts, tree_errors)
}

/// The keepalived.conf reading of a file already lexed and grouped into statements.
fn parse_keepalived(
    lexed: lexer::Lexed,
    stmts: &[tree::Stmt],
    tree_errors: Vec<Diagnostic>,
) -> Result<Config, ConfigError> {
    let (mut errors, mut warnings): (Vec<_>, Vec<_>) = lexed
        .diagnostics
        .into_iter()
        .partition(Diagnostic::is_error);
    errors.extend(tree_errors);
    let mut ctx = values::Ctx::default();
    let mut config = parser::parse(stmts, &mut ctx);
    errors.extend(ctx.errors);
    warnings.extend(ctx.warnings);
    lexed.sources.attach(&mut errors);
    lexed.sources.attach(&mut warnings);
    sort(&mut errors);
    sort(&mut warnings);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid { errors, warnings });
    }
    config.warnings = warnings;
    Ok(config)
}

/// Orders diagnostics by file order, keeping files in the order they were first seen.
fn sort(diags: &mut [Diagnostic]) {
    let mut files: Vec<std::sync::Arc<Path>> = Vec::new();
    for d in diags.iter() {
        if !files.contains(&d.location.file) {
            files.push(d.location.file.clone());
        }
    }
    diags.sort_by_key(|d| {
        let f = files.iter().position(|f| *f == d.location.file);
        (f, d.location.line, d.location.column)
    });
}

/// Warns about interfaces the configuration names that do not exist on this host:
/// the daemon passes a check against `/sys/class/net`, tests pass a fixed list.
pub fn check_interfaces(config: &Config, exists: impl Fn(&str) -> bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut warn = |loc: &Location, what: String| {
        out.push(Diagnostic::warning(loc.clone(), 1, what));
    };
    for i in &config.instances {
        let name = &i.name;
        if !exists(&i.interface) {
            warn(
                &i.location,
                format!(
                    "vrrp_instance `{name}`: interface `{}` does not exist on this host",
                    i.interface
                ),
            );
        }
        for v in i.virtual_addresses.iter().chain(&i.excluded_addresses) {
            if let Some(dev) = &v.dev {
                if !exists(dev) {
                    warn(
                        &v.location,
                        format!("vrrp_instance `{name}`: `dev {dev}` for {} does not exist on this host", v.address),
                    );
                }
            }
        }
        for t in &i.track_interfaces {
            if !exists(&t.name) {
                warn(
                    &i.location,
                    format!("vrrp_instance `{name}`: tracked interface `{}` does not exist on this host", t.name),
                );
            }
        }
    }
    out
}
