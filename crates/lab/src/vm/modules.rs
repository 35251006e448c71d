//! Kernel modules by name: their files in the kernel package and the order
//! to load them in, dependencies first.
//!
//! The package has no `modules.dep` (depmod writes it at install time), so
//! each module's dependencies are read from the `depends=` string of its
//! `.modinfo` section, which is what `modinfo -F depends` prints.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Module names use `_` and `-` interchangeably.
fn canonical(name: &str) -> String {
    name.replace('-', "_")
}

/// Every `.ko` file under `dir`, by canonical module name.
fn index(dir: &Path, found: &mut HashMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for p in entries.flatten().map(|e| e.path()) {
        if p.is_dir() {
            index(&p, found);
        } else if let Some(stem) = p.file_name().and_then(|n| n.to_str()?.strip_suffix(".ko")) {
            found.insert(canonical(stem), p);
        }
    }
}

/// The `depends=` list of a module file.
fn depends(ko: &Path) -> Result<Vec<String>> {
    let bytes = std::fs::read(ko).with_context(|| format!("reading {ko:?}"))?;
    let key = b"\0depends=";
    let Some(at) = bytes.windows(key.len()).position(|w| w == key) else {
        return Ok(Vec::new());
    };
    let rest = &bytes[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Ok(String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(canonical)
        .collect())
}

/// The module files to load, in order, for `wanted` (dependencies first,
/// each once; modules built into the kernel left out).
pub fn load_order(modules_dir: &Path, wanted: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut files = HashMap::new();
    index(&modules_dir.join("kernel"), &mut files);
    let builtin = std::fs::read_to_string(modules_dir.join("modules.builtin")).unwrap_or_default();
    let builtin: Vec<String> = builtin
        .lines()
        .filter_map(|l| Path::new(l).file_name()?.to_str()?.strip_suffix(".ko"))
        .map(canonical)
        .collect();
    let mut order = Vec::new();
    for name in wanted {
        visit(
            &canonical(name),
            &files,
            &builtin,
            &mut order,
            &mut Vec::new(),
        )?;
    }
    Ok(order)
}

fn visit(
    name: &str,
    files: &HashMap<String, PathBuf>,
    builtin: &[String],
    order: &mut Vec<(String, PathBuf)>,
    path: &mut Vec<String>,
) -> Result<()> {
    if order.iter().any(|(n, _)| n == name) || builtin.iter().any(|b| b == name) {
        return Ok(());
    }
    if path.iter().any(|p| p == name) {
        bail!("module dependency cycle: {} -> {name}", path.join(" -> "));
    }
    let Some(ko) = files.get(name) else {
        bail!("module {name} is neither a .ko file in the kernel package nor built in");
    };
    path.push(name.to_string());
    for dep in depends(ko)? {
        visit(&dep, files, builtin, order, path)?;
    }
    path.pop();
    order.push((name.to_string(), ko.clone()));
    Ok(())
}
