//! Debian's cloud kernel package, downloaded with `apt-get download` and
//! unpacked once into a cache directory that every VM shares.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use nix::fcntl::{Flock, FlockArg};

/// The meta package whose dependency names the current kernel image.
const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// An unpacked kernel package.
#[derive(Clone, Debug)]
pub struct Kernel {
    /// The kernel image qemu boots.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<version>` of the package.
    pub modules: PathBuf,
}

/// Runs `cmd`, failing with its stderr when it fails; returns its stdout.
pub(crate) fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel in `cache`, downloaded and unpacked first when missing.
/// Concurrent test binaries wait for each other on a lock file.
pub fn debian_cloud(cache: &Path) -> Result<Kernel> {
    std::fs::create_dir_all(cache).with_context(|| format!("creating {cache:?}"))?;
    let lock = std::fs::File::create(cache.join("lock"))?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .context("locking the kernel cache")?;
    let unpacked = cache.join("kernel");
    if !unpacked.join("boot").is_dir() {
        download(cache, &unpacked)?;
    }
    let vmlinuz = first_entry(&unpacked.join("boot"), |n| n.starts_with("vmlinuz-"))
        .context("no vmlinuz in the kernel package")?;
    let modules = first_entry(&unpacked.join("lib/modules"), |_| true)
        .context("no lib/modules/<version> in the kernel package")?;
    Ok(Kernel { vmlinuz, modules })
}

fn first_entry(dir: &Path, wanted: impl Fn(&str) -> bool) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| wanted(&n.to_string_lossy())))
}

fn download(cache: &Path, unpacked: &Path) -> Result<()> {
    let depends = run(Command::new("apt-cache").args(["depends", META_PACKAGE]))?;
    let image = depends
        .lines()
        .find_map(|l| l.trim().strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .with_context(|| format!("apt-cache names no kernel image for {META_PACKAGE}"))?
        .to_string();
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs)?;
    run(Command::new("apt-get")
        .args(["download", "-q", &image])
        .current_dir(&debs))?;
    let deb = first_entry(&debs, |n| n.contains(&image) && n.ends_with(".deb"))
        .context("apt-get download left no .deb")?;
    let partial = cache.join("kernel.partial");
    let _ = std::fs::remove_dir_all(&partial);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
    std::fs::rename(&partial, unpacked)?;
    Ok(())
}
