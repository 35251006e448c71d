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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `lib/modules/<version>`: module files holding only their `.modinfo` strings.
    fn tree(tag: &str, modules: &[(&str, &str)], builtin: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tandem-mods-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, depends) in modules {
            let file = dir.join("kernel").join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            let modinfo = format!("\0license=GPL\0depends={depends}\0intree=Y\0");
            std::fs::write(file, modinfo).unwrap();
        }
        std::fs::write(dir.join("modules.builtin"), builtin).unwrap();
        dir
    }

    fn names(order: &[(String, PathBuf)]) -> Vec<&str> {
        order.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn dependencies_load_first_once_and_builtins_are_skipped() {
        let dir = tree(
            "order",
            &[
                ("net/ip_vs_rr.ko", "ip_vs"),
                ("net/ip_vs.ko", "nf_conntrack,libcrc32c"),
                ("net/nf_conntrack.ko", "nf_defrag-ipv4,libcrc32c"),
                ("lib/libcrc32c.ko", ""),
                ("net/nf_defrag-ipv4.ko", ""),
                ("drivers/dummy.ko", "crc32c_generic"),
            ],
            "kernel/crypto/crc32c_generic.ko\n",
        );
        let order = load_order(&dir, &["ip_vs_rr".into(), "dummy".into(), "ip_vs".into()]);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            names(&order.unwrap()),
            [
                "nf_defrag_ipv4",
                "libcrc32c",
                "nf_conntrack",
                "ip_vs",
                "ip_vs_rr",
                "dummy"
            ]
        );
    }

    #[test]
    fn a_missing_module_or_a_cycle_is_an_error() {
        let dir = tree("bad", &[("a.ko", "b"), ("b.ko", "a"), ("c.ko", "gone")], "");
        let cycle = load_order(&dir, &["a".into()]).unwrap_err().to_string();
        let missing = load_order(&dir, &["c".into()]).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(cycle.contains("cycle: a -> b -> a"), "{cycle}");
        assert!(missing.contains("module gone is neither"), "{missing}");
    }
}
