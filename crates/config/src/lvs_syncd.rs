//! `lvs_sync_daemon INTERFACE INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]` in
//! `global_defs`: IPVS's connection sync daemon, run in master state while INSTANCE is
//! MASTER and in backup state otherwise.

use crate::model::{Config, LvsSyncDaemon};
use crate::tree::Stmt;
use crate::values::Ctx;

const FORM: &str = "INTERFACE VRRP_INSTANCE [id 0..255] [maxlen N] [port N] [ttl N] [group IP]";

/// Reads the line; the instance is checked, and the sync id defaulted, by [`resolve`].
pub(crate) fn parse(stmt: &Stmt, ctx: &mut Ctx) -> Option<LvsSyncDaemon> {
    if !ctx.no_block(stmt) {
        return None;
    }
    let [interface, instance, options @ ..] = stmt.args.as_slice() else {
        ctx.error(
            &stmt.key,
            format!("`lvs_sync_daemon` expects {FORM}: the interface and the VRRP instance are required"),
        );
        return None;
    };
    let mut d = LvsSyncDaemon {
        interface: interface.text.clone(),
        instance: instance.text.clone(),
        instance_location: instance.loc.clone(),
        sync_id: None,
        maxlen: None,
        port: None,
        ttl: None,
        group: None,
    };
    if interface.text.len() >= 16 {
        ctx.error(
            interface,
            format!(
                "`lvs_sync_daemon` interface `{}` is longer than 15 characters",
                interface.text
            ),
        );
        return None;
    }
    let mut ok = true;
    let mut words = options.iter();
    while let Some(opt) = words.next() {
        let Some(value) = words.next() else {
            ctx.error(
                opt,
                format!(
                    "`lvs_sync_daemon` option `{}` needs a value ({FORM})",
                    opt.text
                ),
            );
            return None;
        };
        let key = format!("lvs_sync_daemon {}", opt.text);
        match opt.text.as_str() {
            "id" => {
                d.sync_id = ctx
                    .int_word(&key, value, 0u8, 255)
                    .or_else(|| fail(&mut ok))
            }
            // A sync message must fit one UDP datagram.
            "maxlen" => {
                d.maxlen = ctx
                    .int_word(&key, value, 1u16, 65507)
                    .or_else(|| fail(&mut ok))
            }
            "port" => {
                d.port = ctx
                    .int_word(&key, value, 1u16, 65535)
                    .or_else(|| fail(&mut ok))
            }
            "ttl" => {
                d.ttl = ctx
                    .int_word(&key, value, 1u8, 255)
                    .or_else(|| fail(&mut ok))
            }
            "group" => match ctx.ip(&key, value) {
                Some(ip) if ip.is_multicast() => d.group = Some(ip),
                Some(_) => {
                    ctx.error(
                        value,
                        format!(
                            "`{key}` expects a multicast address, found `{}`",
                            value.text
                        ),
                    );
                    ok = false;
                }
                None => ok = false,
            },
            other => {
                ctx.error(
                    opt,
                    format!("`lvs_sync_daemon` has no option `{other}` (expects {FORM})"),
                );
                ok = false;
            }
        }
    }
    ok.then_some(d)
}

fn fail<T>(ok: &mut bool) -> Option<T> {
    *ok = false;
    None
}

/// Checks that the named VRRP instance exists and defaults the sync id to its
/// virtual router id, as keepalived does.
pub(crate) fn resolve(config: &mut Config, ctx: &mut Ctx) {
    let Some(d) = config.global.lvs_sync_daemon.as_mut() else {
        return;
    };
    match config.instances.iter().find(|i| i.name == d.instance) {
        Some(i) => {
            d.sync_id.get_or_insert(i.virtual_router_id);
        }
        None => {
            ctx.errors.push(crate::diagnostic::Diagnostic::error(
                d.instance_location.clone(),
                d.instance.len() as u32,
                format!(
                    "`lvs_sync_daemon` names vrrp_instance `{}`, which is not defined",
                    d.instance
                ),
            ));
            config.global.lvs_sync_daemon = None;
        }
    }
}
