//! The `use_vmac` macvlans of the configuration: created before the plan is built (the
//! virtual addresses and the advert socket live on them), removed when the daemon stops.

use anyhow::{Context, Result};
use tandem_config::Config;
use tandem_sys::{virtual_mac, Vmac};
use tracing::{info, warn};

/// Creates every instance's macvlan (an old one of the same name is replaced).
pub async fn create(handle: &rtnetlink::Handle, config: &Config) -> Result<Vec<Vmac>> {
    let mut made: Vec<Vmac> = Vec::new();
    for vi in &config.instances {
        let Some(name) = &vi.use_vmac else {
            continue;
        };
        if made.iter().any(|v| &v.name == name) {
            continue;
        }
        let base = tandem_sys::interface(handle, &vi.interface)
            .await
            .with_context(|| format!("({}) looking up {} for use_vmac", vi.name, vi.interface))?;
        let ipv6 = vi
            .virtual_addresses
            .first()
            .is_some_and(|a| a.address.is_ipv6());
        let mac = virtual_mac(vi.virtual_router_id, ipv6);
        let vmac = tandem_sys::vmac::create(handle, name, &base, mac, ipv6)
            .await
            .with_context(|| format!("({}) use_vmac", vi.name))?;
        info!(
            "({}) created {name} on {} with MAC {}",
            vi.name,
            base.name,
            mac.map(|b| format!("{b:02x}")).join(":")
        );
        made.push(vmac);
    }
    Ok(made)
}

/// Removes the macvlans, last created first (the first on a base interface holds its old
/// settings).
pub async fn remove(handle: &rtnetlink::Handle, vmacs: Vec<Vmac>) {
    for vmac in vmacs.into_iter().rev() {
        match tandem_sys::vmac::remove(handle, &vmac).await {
            Ok(()) => info!("removed {}", vmac.name),
            Err(e) => warn!("{e}"),
        }
    }
}
