//! Who scripts run as, and keepalived's `enable_script_security` check.
//!
//! The default user is `script_user` from global_defs, else `keepalived_script` when that user
//! exists, else root with a warning (keepalived's rule; with `enable_script_security` root is
//! not a default: scripts without their own user are refused). A script that runs as root and
//! whose file, or any directory above it, a non-root user can write is refused under
//! `enable_script_security` (and warned about without it), as keepalived's
//! `check_script_secure` does.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Group, User};
use tandem_config::GlobalDefs;

/// keepalived's default script user.
pub const DEFAULT_USER: &str = "keepalived_script";

/// The uid and gid a script runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptUser {
    /// User name (for logs).
    pub name: String,
    /// uid.
    pub uid: u32,
    /// gid (the named group, or the user's primary group).
    pub gid: u32,
}

impl ScriptUser {
    /// root.
    pub fn root() -> ScriptUser {
        ScriptUser {
            name: "root".into(),
            uid: 0,
            gid: 0,
        }
    }

    /// Looks up `user` and optional `group` (keepalived accepts `user:group` too).
    pub fn resolve(user: &str, group: Option<&str>) -> Result<ScriptUser, String> {
        let (user, group) = match (user.split_once(':'), group) {
            (Some((u, g)), None) => (u, Some(g)),
            _ => (user, group),
        };
        let u = User::from_name(user)
            .map_err(|e| format!("looking up script user `{user}`: {e}"))?
            .ok_or_else(|| format!("script user `{user}` does not exist"))?;
        let gid = match group.filter(|g| !g.is_empty()) {
            Some(g) => {
                Group::from_name(g)
                    .map_err(|e| format!("looking up script group `{g}`: {e}"))?
                    .ok_or_else(|| format!("script group `{g}` does not exist"))?
                    .gid
            }
            None => u.gid,
        };
        Ok(ScriptUser {
            name: user.to_string(),
            uid: u.uid.as_raw(),
            gid: gid.as_raw(),
        })
    }
}

/// The script settings of global_defs, resolved once per configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `enable_script_security`.
    pub enforce: bool,
    /// Who runs scripts that name no user; `Err` says why none can (they are refused).
    pub default_user: Result<ScriptUser, String>,
    /// Warnings to log once (root as the default user, a bad `script_user`).
    pub warnings: Vec<String>,
}

impl Policy {
    /// keepalived's default-user rule for these global settings.
    pub fn from_global(global: &GlobalDefs) -> Policy {
        let mut warnings = Vec::new();
        let default_user = match &global.script_user {
            Some(user) => ScriptUser::resolve(user, global.script_group.as_deref()),
            None => match ScriptUser::resolve(DEFAULT_USER, None) {
                Ok(u) => Ok(u),
                Err(_) if global.enable_script_security => Err(format!(
                    "enable_script_security is set and the default script user `{DEFAULT_USER}` \
                     does not exist (create it or set script_user): scripts without their own \
                     user are refused"
                )),
                Err(_) => {
                    warnings.push(format!(
                        "default user `{DEFAULT_USER}` for script execution does not exist: \
                         scripts run as root (create it, or set script_user and \
                         enable_script_security)"
                    ));
                    Ok(ScriptUser::root())
                }
            },
        };
        Policy {
            enforce: global.enable_script_security,
            default_user,
            warnings,
        }
    }

    /// The user for a script with its own `user [group]`, or the default.
    pub fn user_for(&self, user: Option<&str>, group: Option<&str>) -> Result<ScriptUser, String> {
        match user {
            Some(u) => ScriptUser::resolve(u, group),
            None => self.default_user.clone(),
        }
    }

    /// Checks `command` (its first word is the program) to be run as `user`: `Err` when it
    /// must not run (with keepalived's words), `Ok(Some(warning))` when it runs but is unsafe.
    pub fn check(&self, command: &str, user: &ScriptUser) -> Result<Option<String>, String> {
        let Some(program) = command.split_whitespace().next() else {
            return Err("empty script command".into());
        };
        let path = match find_program(program) {
            Some(p) => p,
            None => return Err(format!("Cannot find script `{program}` - disabling")),
        };
        let real = std::fs::canonicalize(&path)
            .map_err(|e| format!("Script `{}` cannot be accessed - {e}", path.display()))?;
        if user.uid != 0 && user.gid != 0 {
            return Ok(None);
        }
        let unsafe_at = unsafe_component(&path).or_else(|| unsafe_component(&real));
        match unsafe_at {
            None => Ok(None),
            Some(why) if self.enforce => Err(format!(
                "Unsafe permissions found for script '{}' - disabling ({why})",
                path.display()
            )),
            Some(why) => Ok(Some(format!(
                "Unsafe permissions found for script '{}' ({why}); it runs as root because \
                 enable_script_security is not set",
                path.display()
            ))),
        }
    }
}

/// The program's path: as given when it has a `/`, else found in `PATH`.
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The first part of `path` (from `/` down to the file) a non-root user can write, and how.
fn unsafe_component(path: &Path) -> Option<String> {
    let mut prefix = PathBuf::new();
    for part in path.components() {
        prefix.push(part);
        let meta = match std::fs::symlink_metadata(&prefix) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", prefix.display())),
        };
        let mode = meta.mode();
        let is_dir = meta.is_dir();
        if meta.uid() != 0 {
            return Some(format!(
                "{} is owned by uid {}",
                prefix.display(),
                meta.uid()
            ));
        }
        // A sticky directory (/tmp) lets nobody replace another's file; a symlink's own mode
        // means nothing.
        let writable_kind = (is_dir && mode & 0o1000 == 0) || meta.is_file();
        if writable_kind && meta.gid() != 0 && mode & 0o020 != 0 {
            return Some(format!(
                "{} is writable by group {}",
                prefix.display(),
                meta.gid()
            ));
        }
        if writable_kind && mode & 0o002 != 0 {
            return Some(format!("{} is writable by everyone", prefix.display()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_group_writable_script_is_refused_only_under_enforcement() {
        let dir = std::env::temp_dir().join(format!("tandem-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.join("chk.sh");
        std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o775)).unwrap();
        let root_owned = nix::unistd::geteuid().is_root();
        let _ = nix::unistd::chown(&script, None, Some(nix::unistd::Gid::from_raw(100)));
        let mut policy = Policy {
            enforce: true,
            default_user: Ok(ScriptUser::root()),
            warnings: vec![],
        };
        let command = format!("{} arg", script.display());
        let refused = policy.check(&command, &ScriptUser::root());
        if root_owned {
            let e = refused.unwrap_err();
            assert!(e.contains("Unsafe permissions found for script"), "{e}");
            assert!(e.contains("writable by group 100"), "{e}");
            policy.enforce = false;
            assert!(policy
                .check(&command, &ScriptUser::root())
                .unwrap()
                .is_some());
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            policy.enforce = true;
            assert_eq!(policy.check(&command, &ScriptUser::root()), Ok(None));
        }
        let nobody = ScriptUser {
            name: "nobody".into(),
            uid: 65534,
            gid: 65534,
        };
        assert_eq!(policy.check(&command, &nobody), Ok(None));
        assert!(policy.check("/nonexistent/x", &nobody).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
