//! Virtual addresses another program removed from a master (`ip addr flush`, a network
//! manager re-applying its configuration, a mistake): the master would go on advertising
//! while nobody answers for the address. keepalived drops to BACKUP and lets the next
//! election add them back, a failover of seconds; tandem puts them back at once and
//! announces them again, and says so.

use tandem_sys::AddressRemoved;
use tandem_vrrp::{InstanceId, State};
use tokio::sync::mpsc;
use tracing::warn;

use super::Daemon;

impl Daemon {
    /// Handles `first` and every removal already queued behind it (a flush reports each
    /// address at once): each master whose configured address is really gone gets its
    /// addresses back in one batch, then its gratuitous announcements.
    pub(super) async fn on_addresses_removed(
        &mut self,
        first: AddressRemoved,
        queued: &mut mpsc::Receiver<AddressRemoved>,
    ) {
        if crate::panic_guard::releasing() {
            // The panic hook is taking them off on purpose; the process ends next.
            return;
        }
        let mut removed = vec![first];
        while let Ok(more) = queued.try_recv() {
            removed.push(more);
        }
        let mut owners: Vec<InstanceId> = Vec::new();
        for gone in &removed {
            for (id, plan) in self.plan.instances.iter().enumerate() {
                if self.plan.router.instance(id).state() != State::Master {
                    continue;
                }
                let Some(spec) = (plan.addresses.iter())
                    .find(|a| a.address == gone.address && a.ifindex == gone.ifindex)
                else {
                    continue;
                };
                // Our own removals and changes happen before their notices are read; a
                // notice about an address that is back (or was re-added since) is stale.
                if self.addresses.present(spec).await.unwrap_or(true) {
                    continue;
                }
                let interface = (self.plan.interface_name(gone.ifindex))
                    .map_or_else(|| format!("index {}", gone.ifindex), str::to_string);
                warn!(
                    "({}) {spec} was removed from {interface} by another program while MASTER: \
                     restoring it",
                    plan.name
                );
                if !owners.contains(&id) {
                    owners.push(id);
                }
            }
        }
        for id in owners {
            self.change_addresses(true, &[id]).await;
            self.announce(id, self.plan.instances[id].garp_repeat, true);
            self.recorder.restored(&self.plan.instances[id].name);
        }
    }
}
