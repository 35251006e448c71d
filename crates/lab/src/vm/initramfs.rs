//! The VM's initramfs: a root directory filled with busybox, modules,
//! binaries (with their libraries), files and `/init`, packed as an
//! uncompressed newc cpio archive.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use super::kernel::{run, Kernel};
use super::{which, Vm, DONE_MARKER};

/// Builds the initramfs for `vm` in `dir` and returns the archive's path.
pub fn build(vm: &Vm, kernel: &Kernel, dir: &Path) -> Result<PathBuf> {
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "sbin", "proc", "sys", "tmp", "dev", "run", "mods"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let busybox = which("busybox").context("busybox is not installed (busybox-static)")?;
    ensure!(
        run(Command::new("file").arg(&busybox)).map_or(true, |f| f.contains("statically")),
        "{busybox:?} is not static: install busybox-static"
    );
    copy_in(&root, &busybox, "/bin/busybox", false)?;

    let modules = super::modules::load_order(&kernel.modules, &vm.modules)?;
    for (name, ko) in &modules {
        copy_in(&root, ko, &format!("/mods/{name}.ko"), false)?;
    }
    let mut libraries = BTreeSet::new();
    for b in &vm.binaries {
        copy_in(&root, &b.host, &b.at, true)?;
        libraries.extend(shared_libraries(&b.host)?);
    }
    for lib in &libraries {
        copy_in(&root, lib, &lib.to_string_lossy(), false)?;
    }
    for f in &vm.files {
        let dest = inside(&root, &f.at);
        std::fs::create_dir_all(dest.parent().unwrap())?;
        std::fs::write(&dest, &f.contents).with_context(|| format!("writing {dest:?}"))?;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(f.mode))?;
    }
    let names: Vec<&str> = modules.iter().map(|(n, _)| n.as_str()).collect();
    let init = root.join("init");
    std::fs::write(&init, init_script(&names, &vm.init))?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;

    let image = dir.join("initramfs.cpio");
    let cpio = std::fs::File::create(&image)?;
    let status = Command::new("sh")
        .args(["-c", "find . | cpio -o -H newc --quiet"])
        .current_dir(&root)
        .stdout(cpio)
        .status()
        .context("cannot run cpio")?;
    ensure!(status.success(), "cpio failed");
    Ok(image)
}

/// `/init`: mounts, module loading, `lo` up, the caller's lines, the done
/// marker with their exit code, power-off.
fn init_script(modules: &[&str], lines: &str) -> String {
    let insmods: String = modules
        .iter()
        .map(|m| format!("insmod /mods/{m}.ko || echo \"insmod {m} failed\"\n"))
        .collect();
    format!(
        "#!/bin/busybox sh\n\
         /bin/busybox --install -s /bin\n\
         export PATH=/bin:/sbin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sys /sys\n\
         mount -t tmpfs tmp /tmp\n\
         mount -t tmpfs run /run\n\
         mount -t devtmpfs dev /dev\n\
         {insmods}\
         ip link set lo up\n\
         {lines}\
         echo \"{DONE_MARKER} rc=$?\"\n\
         poweroff -f\n"
    )
}

fn inside(root: &Path, at: &str) -> PathBuf {
    root.join(at.trim_start_matches('/'))
}

/// Copies `from` to `at` under `root`; binaries lose their debug
/// information on the way when `strip` is installed (a debug build of
/// tandemd is mostly DWARF).
fn copy_in(root: &Path, from: &Path, at: &str, strip: bool) -> Result<()> {
    let dest = inside(root, at);
    std::fs::create_dir_all(dest.parent().unwrap())?;
    if strip && which("strip").is_some() {
        let stripped = Command::new("strip")
            .arg("--strip-debug")
            .arg("-o")
            .arg(&dest)
            .arg(from)
            .status();
        if stripped.is_ok_and(|s| s.success()) {
            return Ok(());
        }
    }
    std::fs::copy(from, &dest).with_context(|| format!("copy {from:?} to {dest:?}"))?;
    Ok(())
}

/// The shared libraries `ldd` lists for `binary` (the loader included).
fn shared_libraries(binary: &Path) -> Result<BTreeSet<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .context("cannot run ldd")?;
    // A static binary makes ldd fail with "not a dynamic executable".
    if !out.status.success() {
        return Ok(BTreeSet::new());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let path = match l.split_once("=>") {
                Some((_, rest)) => rest.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect())
}
