//! A throwaway virtual machine running Debian's kernel, for tests that need
//! kernel features the development machines lack (IPVS's `ip_vs`).
//!
//! [`Vm`] downloads Debian's cloud kernel package once (cached, see
//! [`kernel`]), builds an initramfs with a static busybox, the kernel
//! modules asked for by name (with their dependencies, loaded in order),
//! binaries with the shared libraries `ldd` lists, extra files and an init
//! script, and boots it under qemu (TCG, so no KVM is needed) until it powers
//! off or a deadline passes. The serial console's output is returned.
//!
//! The usual use is a test that runs itself inside the VM:
//! [`Vm::run_test`] copies the running test binary in and runs one
//! `#[ignore]`d test there, with a marker variable set in its environment.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! let cache = std::path::Path::new("target/tmp");
//! let boot = tandem_lab::vm::Vm::new(cache, "doc")
//!     .module("ip_vs_rr")
//!     .binary_from_path("ipvsadm", "/sbin/ipvsadm")?
//!     .run_test("IN_VM", "inside_the_vm")?;
//! boot.assert_test_passed();
//! # Ok(()) }
//! ```

mod boot;
mod initramfs;
pub mod kernel;
mod modules;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

pub use boot::Boot;

/// The line the init script prints when its commands are done, with their
/// exit code: `TANDEM-VM-DONE rc=N`.
pub const DONE_MARKER: &str = "TANDEM-VM-DONE";

/// Where a test binary is placed inside the VM by [`Vm::run_test`].
pub const TEST_BINARY: &str = "/tandem-test";

/// Host tools the VM needs; the first missing one is named by [`missing_tool`].
const TOOLS: &[&str] = &[
    "qemu-system-x86_64",
    "busybox",
    "cpio",
    "apt-get",
    "apt-cache",
    "dpkg-deb",
    "ldd",
];

/// The first host tool a VM needs that is not installed, if any.
pub fn missing_tool() -> Option<&'static str> {
    TOOLS.iter().copied().find(|t| which(t).is_none())
}

/// A test that needs the VM and cannot have it: skips with `why` (printed),
/// or panics under `TANDEM_LAB_REQUIRE=1` so CI cannot skip it silently.
pub fn cannot_run(test: &str, why: &str) {
    if std::env::var_os("TANDEM_LAB_REQUIRE").is_some_and(|v| v == "1") {
        panic!("TANDEM_LAB_REQUIRE=1 but {test} cannot run: {why}");
    }
    eprintln!("skipped: {test} needs a Debian kernel VM: {why}");
}

/// `name` found in `PATH` (and the sbin directories, which a test's `PATH`
/// may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A binary copied into the VM.
#[derive(Clone, Debug)]
struct Binary {
    host: PathBuf,
    at: String,
}

/// A file written into the VM.
#[derive(Clone, Debug)]
struct File {
    at: String,
    contents: Vec<u8>,
    mode: u32,
}

/// What to put in the VM and how to boot it (a builder; see the module docs).
#[derive(Clone, Debug)]
pub struct Vm {
    cache: PathBuf,
    name: String,
    modules: Vec<String>,
    binaries: Vec<Binary>,
    files: Vec<File>,
    init: String,
    deadline: Duration,
    memory_mib: u32,
}

impl Vm {
    /// A VM whose kernel is cached in `cache/debian-kernel` (shared by every
    /// VM) and whose initramfs is built in `cache/vm-{name}`.
    pub fn new(cache: &Path, name: &str) -> Vm {
        Vm {
            cache: cache.to_path_buf(),
            name: name.to_string(),
            modules: Vec::new(),
            binaries: Vec::new(),
            files: Vec::new(),
            init: String::new(),
            deadline: Duration::from_secs(300),
            memory_mib: 1024,
        }
    }

    /// Loads the kernel module `name` at boot, after the modules it depends
    /// on (a module built into the kernel is skipped).
    pub fn module(mut self, name: &str) -> Vm {
        self.modules.push(name.to_string());
        self
    }

    /// [`Vm::module`] for each of `names`, in order.
    pub fn modules(self, names: &[&str]) -> Vm {
        names.iter().fold(self, |vm, m| vm.module(m))
    }

    /// Copies the host binary `host` to `at` in the VM, with the shared
    /// libraries it links (debug information stripped when `strip` exists,
    /// which keeps the initramfs small).
    pub fn binary(mut self, host: &Path, at: &str) -> Vm {
        self.binaries.push(Binary {
            host: host.to_path_buf(),
            at: at.to_string(),
        });
        self
    }

    /// [`Vm::binary`] for a program found in the host's `PATH`.
    pub fn binary_from_path(self, program: &str, at: &str) -> Result<Vm> {
        let host = which(program).with_context(|| format!("{program} is not installed"))?;
        Ok(self.binary(&host, at))
    }

    /// Writes `contents` to `at` in the VM with permissions `mode`.
    pub fn file(mut self, at: &str, contents: impl Into<Vec<u8>>, mode: u32) -> Vm {
        self.files.push(File {
            at: at.to_string(),
            contents: contents.into(),
            mode,
        });
        self
    }

    /// Shell lines the init script runs once the VM is up (busybox `sh`;
    /// /proc, /sys, /dev and a /tmp are mounted, the modules loaded and `lo`
    /// up). Their last exit code is printed after [`DONE_MARKER`].
    pub fn init(mut self, lines: &str) -> Vm {
        self.init.push_str(lines);
        if !lines.ends_with('\n') {
            self.init.push('\n');
        }
        self
    }

    /// How long the VM may run, boot to power-off (default 300 s).
    pub fn deadline(mut self, deadline: Duration) -> Vm {
        self.deadline = deadline;
        self
    }

    /// The VM's memory (default 1 GiB).
    pub fn memory_mib(mut self, mib: u32) -> Vm {
        self.memory_mib = mib;
        self
    }

    /// Builds the initramfs and boots it; returns what the console printed.
    /// An error here means the VM could not be built or started (the caller
    /// usually skips through [`cannot_run`]); a VM that boots but whose
    /// commands fail or hang is a [`Boot`] saying so.
    pub fn boot(&self) -> Result<Boot> {
        let kernel = kernel::debian_cloud(&self.cache.join("debian-kernel"))?;
        let image = initramfs::build(self, &kernel, &self.cache.join(format!("vm-{}", self.name)))?;
        boot::run(&kernel.vmlinuz, &image, self.memory_mib, self.deadline)
    }

    /// Builds the VM with the running test binary in it and boots it to run
    /// the `#[ignore]`d test `test` alone, with `marker=1` in its
    /// environment (so the test knows it is inside).
    pub fn run_test(self, marker: &str, test: &str) -> Result<Boot> {
        let me = std::env::current_exe().context("the test binary's path")?;
        self.binary(&me, TEST_BINARY)
            .init(&format!(
                "{marker}=1 RUST_BACKTRACE=1 {TEST_BINARY} --ignored --exact {test} \
                 --nocapture --test-threads=1"
            ))
            .boot()
    }
}
