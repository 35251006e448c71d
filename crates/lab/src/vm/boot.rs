//! Booting the kernel and initramfs under qemu (TCG) with a deadline, the
//! serial console collected.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::DONE_MARKER;

/// A VM that ran to power-off.
#[derive(Clone, Debug)]
pub struct Boot {
    /// Everything the serial console printed.
    pub console: String,
    /// Boot to power-off (or to the deadline).
    pub elapsed: Duration,
    /// The VM was still running at the deadline and was killed.
    pub timed_out: bool,
}

impl Boot {
    /// The exit code the init script printed after its commands, `None` when
    /// it never got there (a kernel panic, a hung command).
    pub fn exit_code(&self) -> Option<i32> {
        let marker = format!("{DONE_MARKER} rc=");
        self.console
            .lines()
            .find_map(|l| l.trim().strip_prefix(&marker)?.parse().ok())
    }

    /// Prints the console and panics unless the test [`Vm::run_test`] ran
    /// passed.
    ///
    /// [`Vm::run_test`]: super::Vm::run_test
    pub fn assert_test_passed(&self) {
        println!("---- VM console ----\n{}\n---- end ----", self.console);
        println!("VM ran {:.1} s", self.elapsed.as_secs_f64());
        assert!(
            !self.timed_out,
            "the VM did not power off within {:?} (console above)",
            self.elapsed
        );
        assert_eq!(
            self.exit_code(),
            Some(0),
            "the test inside the VM failed or did not finish (console above)"
        );
        assert!(
            self.console.contains("test result: ok. 1 passed"),
            "the test inside the VM did not run or pass (console above)"
        );
    }
}

/// Boots `vmlinuz` with `initramfs`; fails only when qemu cannot start. A VM
/// still running at `deadline` is killed and reported as timed out.
pub fn run(vmlinuz: &Path, initramfs: &Path, memory_mib: u32, deadline: Duration) -> Result<Boot> {
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-nographic", "-no-reboot"])
        .args(["-m", &memory_mib.to_string()])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args(["-append", "console=ttyS0 panic=-1 loglevel=3"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start qemu-system-x86_64")?;
    let mut stdout = qemu.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let start = Instant::now();
    // Polled: std has no wait with a timeout, and the console reader owns stdout.
    let status = loop {
        if let Some(status) = qemu.try_wait()? {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = qemu.kill();
            let _ = qemu.wait();
            return Ok(Boot {
                console: reader.join().unwrap_or_default(),
                elapsed: start.elapsed(),
                timed_out: true,
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = start.elapsed();
    let mut console = reader.join().unwrap_or_default();
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = qemu.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        console.push_str(&format!("\n[qemu exited with {status}: {err}]"));
    }
    Ok(Boot {
        console,
        elapsed,
        timed_out: false,
    })
}
