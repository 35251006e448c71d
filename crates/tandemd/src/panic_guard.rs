//! A panic anywhere ends the process, so systemd restarts it, but never with the virtual
//! addresses still configured: a node that stopped advertising must not keep answering for
//! them while the peer takes them over.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tandem_sys::AddressSpec;

/// Exit status after a panic (sysexits' EX_SOFTWARE).
const EXIT_AFTER_PANIC: i32 = 70;

/// Every virtual address this node may hold: removed, present or not, after a panic.
static ADDRESSES: Mutex<Vec<AddressSpec>> = Mutex::new(Vec::new());

/// Set once a panic started removing the addresses: nothing may put them back.
static RELEASING: AtomicBool = AtomicBool::new(false);

/// Whether a panic is removing the addresses (the daemon must not restore them).
pub fn releasing() -> bool {
    RELEASING.load(Ordering::SeqCst)
}

/// Records the addresses the running configuration may put on the interfaces.
pub fn track(addresses: Vec<AddressSpec>) {
    *ADDRESSES.lock().unwrap_or_else(|e| e.into_inner()) = addresses;
}

/// Installs the hook: the panic is reported as usual, the addresses are removed, the process
/// exits with status 70.
pub fn install() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        tracing::error!("panic: {info}; removing the virtual addresses and exiting");
        let addresses = ADDRESSES.lock().unwrap_or_else(|e| e.into_inner()).clone();
        RELEASING.store(true, Ordering::SeqCst);
        release(addresses);
        std::process::exit(EXIT_AFTER_PANIC);
    }));
}

/// Removes `addresses` on a fresh thread with its own event loop (the panicking thread may
/// be inside one), waiting at most two seconds.
fn release(addresses: Vec<AddressSpec>) {
    let (done_tx, done) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("release".into())
        .spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok((handle, _connection)) = tandem_sys::connect().await else {
                    return;
                };
                let netlink = tandem_sys::Addresses::new(handle);
                for spec in &addresses {
                    if let Err(e) = netlink.remove(spec).await {
                        eprintln!("error: {e}");
                    }
                }
            });
            let _ = done_tx.send(());
        });
    if spawned.is_ok() {
        let _ = done.recv_timeout(Duration::from_secs(2));
    }
}
