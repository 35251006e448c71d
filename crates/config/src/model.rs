//! The typed configuration that the daemon runs from, whatever file it came from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Where something was written: used in every warning and error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// File the token came from (after `include` expansion); shared by every location in
    /// the file, so a thousand-instance configuration does not hold a path per token.
    pub file: Arc<Path>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
}

impl Default for Location {
    fn default() -> Location {
        Location {
            file: Path::new("").into(),
            line: 0,
            column: 0,
        }
    }
}

/// The whole configuration of one node.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// `global_defs`.
    pub global: GlobalDefs,
    /// `vrrp_script` blocks, in file order.
    pub scripts: Vec<VrrpScript>,
    /// `vrrp_track_process` blocks, in file order.
    pub track_processes: Vec<VrrpTrackProcess>,
    /// `track_file` (or `vrrp_track_file`) blocks, in file order.
    pub track_files: Vec<TrackFile>,
    /// `vrrp_instance` blocks, in file order.
    pub instances: Vec<VrrpInstance>,
    /// `vrrp_sync_group` blocks, in file order.
    pub sync_groups: Vec<SyncGroup>,
    /// `virtual_server` blocks, in file order, with their real servers and checkers (those
    /// naming a group that does not exist are left out, as keepalived leaves them out).
    pub virtual_servers: Vec<crate::lvs::VirtualServer>,
    /// `virtual_server_group` blocks, in file order.
    pub virtual_server_groups: Vec<crate::lvs::VirtualServerGroup>,
    /// Conntrack replication, from conntrackd.conf or tandem's TOML `[sync]` section.
    pub sync: Option<crate::sync::SyncConfig>,
    /// Where Prometheus scrapes tandemd (tandem's TOML `[metrics]`); None: no listener.
    pub metrics: Option<crate::native::MetricsConfig>,
    /// Which forwarding backend balances `virtual_server`s (tandem's TOML `[lb] backend`).
    pub lb_backend: crate::native::LbBackend,
    /// Things that parsed but that tandem does not act on (yet): shown at check time and at start.
    pub warnings: Vec<crate::Diagnostic>,
}

/// `global_defs`: settings shared by all instances.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalDefs {
    /// `lvs_sync_daemon`: IPVS's connection sync daemon, following a VRRP instance.
    pub lvs_sync_daemon: Option<LvsSyncDaemon>,
    /// `router_id`, used in notification e-mails and logs.
    pub router_id: Option<String>,
    /// `vrrp_mcast_group4`, default 224.0.0.18.
    pub mcast_group4: Ipv4Addr,
    /// `vrrp_mcast_group6`, default ff02::12.
    pub mcast_group6: Ipv6Addr,
    /// `vrrp_check_unicast_src`: drop unicast adverts whose source is not a configured peer.
    pub check_unicast_src: bool,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `script_user USER [GROUP]`: the user.
    pub script_user: Option<String>,
    /// `script_user USER [GROUP]`: the group, when given.
    pub script_group: Option<String>,
    /// `notification_email { ... }` addresses.
    pub notification_email: Vec<String>,
    /// `notification_email_from`.
    pub notification_email_from: Option<String>,
    /// `smtp_server ADDR [PORT]`: the address or host name.
    pub smtp_server: Option<String>,
    /// `smtp_server ADDR [PORT]`: the port, default 25.
    pub smtp_port: u16,
    /// `smtp_connect_timeout` seconds.
    pub smtp_connect_timeout: Option<Duration>,
    /// `smtp_helo_name`: the name given in HELO (default: the host name).
    pub smtp_helo_name: Option<String>,
    /// `smtp_alert [on|off]`: the default for instances and sync groups (unset: off).
    pub smtp_alert: Option<bool>,
    /// `smtp_alert_vrrp [on|off]`: the VRRP default, which wins over `smtp_alert`.
    pub smtp_alert_vrrp: Option<bool>,
    /// `no_email_faults`: no e-mail for a transition into FAULT.
    pub no_email_faults: bool,
    /// `notify_fifo PATH [USER [GROUP]]`: the FIFO every transition is written to.
    pub notify_fifo: Option<NotifyFifo>,
    /// `notify_fifo_script SCRIPT [USER [GROUP]]`: started with the FIFO's path, to read it.
    pub notify_fifo_script: Option<FifoScript>,
    /// `vrrp_notify_fifo PATH [USER [GROUP]]`: the VRRP process's own FIFO (same lines).
    pub vrrp_notify_fifo: Option<NotifyFifo>,
    /// `vrrp_notify_fifo_script SCRIPT [USER [GROUP]]`.
    pub vrrp_notify_fifo_script: Option<FifoScript>,
    /// `vrrp_strict`.
    pub vrrp_strict: bool,
    /// `vrrp_version` (2 or 3), default 2: the default for instances that do not say.
    pub vrrp_version: u8,
    /// `vrrp_garp_master_delay` seconds, default 5: the second burst of gratuitous ARPs.
    pub garp_master_delay: Duration,
    /// `vrrp_garp_master_repeat`, default 5: ARPs per burst.
    pub garp_master_repeat: u32,
    /// `vrrp_garp_master_refresh` seconds, default 0 (none): while master, announce again
    /// this often.
    pub garp_master_refresh: Duration,
    /// `vrrp_garp_master_refresh_repeat`, default 1: ARPs per address at each refresh.
    pub garp_master_refresh_repeat: u32,
    /// `vrrp_garp_interval` seconds, default 0: the gap between gratuitous ARPs on one
    /// interface.
    pub garp_interval: Duration,
    /// `vrrp_gna_interval` seconds, default 0: the gap between unsolicited NAs on one
    /// interface.
    pub gna_interval: Duration,
    /// `vrrp_garp_lower_prio_delay` seconds: the second burst after a lower-priority master
    /// was heard (default: `vrrp_garp_master_delay`).
    pub garp_lower_prio_delay: Option<Duration>,
    /// `vrrp_garp_lower_prio_repeat`: ARPs per address after a lower-priority master was
    /// heard, 0 for none (default: `vrrp_garp_master_repeat`).
    pub garp_lower_prio_repeat: Option<u32>,
    /// `vrrp_lower_prio_no_advert`: do not answer a lower-priority master with an advert.
    pub lower_prio_no_advert: bool,
    /// `vrrp_higher_prio_send_advert`: send one advert before yielding to a higher priority.
    pub higher_prio_send_advert: bool,
}

/// `lvs_sync_daemon INTERFACE INSTANCE [id N] [maxlen N] [port N] [ttl N] [group IP]`:
/// IPVS's connection sync daemon, in master state while INSTANCE is MASTER and in
/// backup state otherwise (keepalived's rule).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LvsSyncDaemon {
    /// The interface the daemon sends (master) or listens (backup) on.
    pub interface: String,
    /// The VRRP instance whose state the daemon follows.
    pub instance: String,
    /// Where the instance is named, for errors about it.
    pub instance_location: Location,
    /// `id`: the sync id; after loading, the instance's virtual router id when not given.
    pub sync_id: Option<u8>,
    /// `maxlen`: the largest sync message payload (kernel default otherwise).
    pub maxlen: Option<u16>,
    /// `port`: the UDP port (kernel default 8848 otherwise).
    pub port: Option<u16>,
    /// `ttl`: the multicast TTL (kernel default 1 otherwise).
    pub ttl: Option<u8>,
    /// `group`: the multicast group (kernel default 224.0.0.81 / ff02::8151 otherwise).
    pub group: Option<std::net::IpAddr>,
}

impl GlobalDefs {
    /// keepalived's precedence for whether mail is sent for an instance or group whose own
    /// `smtp_alert` is `own`: its own setting, else `smtp_alert_vrrp`, else `smtp_alert`,
    /// else off.
    pub fn smtp_alert_for(&self, own: Option<bool>) -> bool {
        own.or(self.smtp_alert_vrrp)
            .or(self.smtp_alert)
            .unwrap_or(false)
    }
}

impl Default for GlobalDefs {
    fn default() -> Self {
        GlobalDefs {
            lvs_sync_daemon: None,
            router_id: None,
            mcast_group4: Ipv4Addr::new(224, 0, 0, 18),
            mcast_group6: Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12),
            check_unicast_src: false,
            enable_script_security: false,
            script_user: None,
            script_group: None,
            notification_email: Vec::new(),
            notification_email_from: None,
            smtp_server: None,
            smtp_port: 25,
            smtp_connect_timeout: None,
            smtp_helo_name: None,
            smtp_alert: None,
            smtp_alert_vrrp: None,
            no_email_faults: false,
            notify_fifo: None,
            notify_fifo_script: None,
            vrrp_notify_fifo: None,
            vrrp_notify_fifo_script: None,
            vrrp_strict: false,
            vrrp_version: 2,
            garp_master_delay: Duration::from_secs(5),
            garp_master_repeat: 5,
            garp_master_refresh: Duration::ZERO,
            garp_master_refresh_repeat: 1,
            garp_interval: Duration::ZERO,
            gna_interval: Duration::ZERO,
            garp_lower_prio_delay: None,
            garp_lower_prio_repeat: None,
            lower_prio_no_advert: false,
            higher_prio_send_advert: false,
        }
    }
}

/// `notify_fifo` / `vrrp_notify_fifo`: a named pipe that gets one line per transition
/// (`INSTANCE "VI_1" MASTER 150`), created when missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyFifo {
    /// Where the FIFO is.
    pub path: std::path::PathBuf,
    /// Owner given to a FIFO tandemd creates (default: the default script user).
    pub user: Option<String>,
    /// Its group (default: the user's).
    pub group: Option<String>,
    /// Where the line is.
    pub location: Location,
}

/// `notify_fifo_script` / `vrrp_notify_fifo_script`: a reader of the FIFO, started once with
/// the FIFO's path as its last argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoScript {
    /// The command line.
    pub command: String,
    /// `USER`: who runs it (default: the default script user).
    pub user: Option<String>,
    /// `GROUP`.
    pub group: Option<String>,
    /// Where the line is.
    pub location: Location,
}

/// `vrrp_script NAME { ... }`: a health check whose result adjusts priority or forces FAULT.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpScript {
    /// Block name, referenced from `track_script`.
    pub name: String,
    /// `script "..."`: the command line.
    pub script: String,
    /// `interval` seconds, default 1.
    pub interval: Duration,
    /// `timeout` seconds, default = interval.
    pub timeout: Option<Duration>,
    /// `weight`, default 0 (0 means failure forces FAULT).
    pub weight: i32,
    /// `weight N reverse`.
    pub reverse: bool,
    /// `fall`, default 1.
    pub fall: u32,
    /// `rise`, default 1.
    pub rise: u32,
    /// `user USER [GROUP]`: who runs the script (default: `script_user`).
    pub user: Option<String>,
    /// `user USER [GROUP]`: the group, when given.
    pub group: Option<String>,
    /// `init_fail`: the script counts as failed until it first succeeds.
    pub init_fail: bool,
    /// Where the block starts.
    pub location: Location,
}

/// The `state` keyword: a hint for the first transition only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    /// `state MASTER`.
    Master,
    /// `state BACKUP`.
    Backup,
}

/// `authentication { auth_type ... auth_pass ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// `auth_type PASS`: the password, truncated to 8 bytes as keepalived does.
    Pass(Vec<u8>),
    /// `auth_type AH`: parsed, not supported (warning).
    Ah,
}

/// Address scope for `scope` on a virtual address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `global` (0).
    Global,
    /// `site` (200).
    Site,
    /// `link` (253).
    Link,
    /// `host` (254).
    Host,
    /// `nowhere` (255).
    Nowhere,
    /// A numeric scope.
    Other(u8),
}

impl Scope {
    /// The kernel's `RT_SCOPE_*` value.
    pub fn to_kernel(self) -> u8 {
        match self {
            Scope::Global => 0,
            Scope::Site => 200,
            Scope::Link => 253,
            Scope::Host => 254,
            Scope::Nowhere => 255,
            Scope::Other(v) => v,
        }
    }
}

/// Broadcast setting of a virtual IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broadcast {
    /// `brd +`: derive from the prefix.
    Derived,
    /// `brd -`: no broadcast.
    None,
    /// `brd A.B.C.D`.
    Address(Ipv4Addr),
}

/// One line of `virtual_ipaddress { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// The address.
    pub address: IpAddr,
    /// Prefix length; 32 or 128 when the line gives none (as keepalived does).
    pub prefix_len: u8,
    /// `dev IFNAME`: interface to put it on (default: the instance's interface).
    pub dev: Option<String>,
    /// `label NAME`.
    pub label: Option<String>,
    /// `brd ...`.
    pub broadcast: Option<Broadcast>,
    /// `scope ...`.
    pub scope: Option<Scope>,
    /// Where the line is.
    pub location: Location,
}

/// keepalived's routing protocol number (`RTPROT_KEEPALIVED`): the tracked routes and rules
/// are installed with it, the `no_track` ones with `boot`, as keepalived does.
pub const ROUTE_PROTOCOL_KEEPALIVED: u8 = 18;

/// What a `virtual_routes` line's route does with the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// An ordinary route (the default).
    Unicast,
    /// `blackhole`: dropped silently.
    Blackhole,
    /// `unreachable`: dropped with ICMP unreachable.
    Unreachable,
    /// `prohibit`: dropped with ICMP prohibited.
    Prohibit,
    /// `throw`: the lookup goes on with the next rule.
    Throw,
    /// `local`.
    Local,
    /// `broadcast`.
    Broadcast,
    /// `anycast`.
    Anycast,
    /// `multicast`.
    Multicast,
}

/// One line of `virtual_routes { ... }`: added on MASTER, removed on leaving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualRoute {
    /// Destination (`0.0.0.0`/`::` with `default`).
    pub destination: IpAddr,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// `blackhole`, `unreachable`, ... before the destination.
    pub kind: RouteKind,
    /// `src ADDR`: preferred source.
    pub source: Option<IpAddr>,
    /// `via ADDR` (or the old `gw`): the gateway.
    pub via: Option<IpAddr>,
    /// `dev IFNAME` (or `oif`).
    pub dev: Option<String>,
    /// `scope ...`.
    pub scope: Option<Scope>,
    /// `table N|NAME`, default main (254).
    pub table: u32,
    /// `metric N` (or `priority`, `preference`).
    pub metric: Option<u32>,
    /// Without `no_track`: installed with keepalived's protocol number (18).
    pub track: bool,
    /// Where the line is.
    pub location: Location,
}

/// What a `virtual_rules` line's rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Not written yet (an error once the line is read).
    Unspecified,
    /// `table N` (or `lookup`).
    Table(u32),
    /// `goto PREFERENCE`.
    Goto(u32),
    /// `nop`.
    Nop,
    /// `blackhole`.
    Blackhole,
    /// `unreachable`.
    Unreachable,
    /// `prohibit`.
    Prohibit,
}

/// One line of `virtual_rules { ... }`: added on MASTER, removed on leaving it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualRule {
    /// An IPv6 rule (`inet6`, or IPv6 addresses).
    pub ipv6: bool,
    /// `from PREFIX`.
    pub from: Option<(IpAddr, u8)>,
    /// `to PREFIX`.
    pub to: Option<(IpAddr, u8)>,
    /// `not`.
    pub invert: bool,
    /// The action.
    pub action: RuleAction,
    /// `iif IFNAME` (or `dev`).
    pub iif: Option<String>,
    /// `oif IFNAME`.
    pub oif: Option<String>,
    /// `fwmark MARK[/MASK]`.
    pub fwmark: Option<(u32, Option<u32>)>,
    /// `preference N` (or `priority`, `order`); numbered from 16384 down when missing.
    pub priority: u32,
    /// Without `no_track`: installed with keepalived's protocol number (18).
    pub track: bool,
    /// Where the line is.
    pub location: Location,
}

/// The notify hooks shared by instances and sync groups, called with keepalived's arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyScripts {
    /// `notify`: called as `SCRIPT TYPE NAME STATE PRIORITY`.
    pub notify: Option<String>,
    /// `notify_master`.
    pub master: Option<String>,
    /// `notify_backup`.
    pub backup: Option<String>,
    /// `notify_fault`.
    pub fault: Option<String>,
    /// `notify_stop`.
    pub stop: Option<String>,
}

/// `track_interface` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInterface {
    /// Interface name.
    pub name: String,
    /// `weight N`; 0 means link down forces FAULT.
    pub weight: i32,
    /// `weight N reverse`.
    pub reverse: bool,
}

/// `track_script` line (in an instance or a sync group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackScript {
    /// Name of a `vrrp_script`.
    pub name: String,
    /// `weight N` overriding the script's own weight.
    pub weight: Option<i32>,
    /// `weight N reverse` (meaningful with `weight`; otherwise the script's own).
    pub reverse: bool,
}

/// `track_file NAME { file ...; weight ...; init_file ... }` (`vrrp_track_file` is the older
/// spelling): an integer in a file, read whenever the file changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFile {
    /// Block name, referenced from `track_file` in instances and sync groups.
    pub name: String,
    /// `file PATH`.
    pub file: std::path::PathBuf,
    /// `weight N [reverse]`, default 1.
    pub weight: i32,
    /// `weight N reverse`.
    pub reverse: bool,
    /// `init_file [VALUE] [overwrite]`: (value, overwrite), written at start when the file
    /// does not exist (or always with `overwrite`).
    pub init: Option<(i64, bool)>,
    /// Where the block starts.
    pub location: Location,
}

/// `track_file` line in an instance or sync group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackFileRef {
    /// Name of a `track_file` block.
    pub name: String,
    /// `weight N` overriding the block's weight.
    pub weight: Option<i32>,
    /// `weight N reverse`.
    pub reverse: bool,
    /// Where the line is.
    pub location: Location,
}

/// `vrrp_instance NAME { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpInstance {
    /// Block name, e.g. `VI_1`.
    pub name: String,
    /// `state MASTER|BACKUP`.
    pub initial_state: Option<InitialState>,
    /// `interface IFNAME`.
    pub interface: String,
    /// `virtual_router_id` 1..=255.
    pub virtual_router_id: u8,
    /// `priority` 1..=255, default 100.
    pub priority: u8,
    /// `advert_int` seconds (fractions allowed for v3), default 1.
    pub advert_int: Duration,
    /// `version` or the global `vrrp_version`.
    pub version: u8,
    /// `authentication { ... }` (v2 only).
    pub authentication: Option<Authentication>,
    /// `virtual_ipaddress { ... }`: carried in adverts and added on MASTER.
    pub virtual_addresses: Vec<VirtualAddress>,
    /// `virtual_ipaddress_excluded { ... }`: added on MASTER, not carried in adverts.
    pub excluded_addresses: Vec<VirtualAddress>,
    /// `virtual_routes { ... }`: added on MASTER with the addresses, removed with them.
    pub virtual_routes: Vec<VirtualRoute>,
    /// `virtual_rules { ... }`: added on MASTER with the addresses, removed with them.
    pub virtual_rules: Vec<VirtualRule>,
    /// `use_vmac [NAME]`: the name of the macvlan carrying the VRRP MAC (default `vrrp.VRID`).
    pub use_vmac: Option<String>,
    /// `vmac_xmit_base`: adverts leave from the base interface instead of the macvlan.
    pub vmac_xmit_base: bool,
    /// `unicast_src_ip` (or `mcast_src_ip`, the same setting in keepalived): advert source.
    pub unicast_src_ip: Option<IpAddr>,
    /// `unicast_peer { ... }`: when non-empty adverts go unicast to these.
    pub unicast_peers: Vec<IpAddr>,
    /// `nopreempt`.
    pub nopreempt: bool,
    /// `preempt_delay` seconds, default 0.
    pub preempt_delay: Duration,
    /// `track_interface { ... }`.
    pub track_interfaces: Vec<TrackInterface>,
    /// `track_script { ... }`.
    pub track_scripts: Vec<TrackScript>,
    /// `track_process { ... }`.
    pub track_processes: Vec<TrackProcess>,
    /// `track_file { ... }`.
    pub track_files: Vec<TrackFileRef>,
    /// Notify hooks.
    pub notify: NotifyScripts,
    /// `garp_master_delay` seconds, default from global_defs.
    pub garp_master_delay: Option<Duration>,
    /// `garp_master_repeat`, default from global_defs.
    pub garp_master_repeat: Option<u32>,
    /// `garp_master_refresh` seconds (0: none), default from global_defs.
    pub garp_master_refresh: Option<Duration>,
    /// `garp_master_refresh_repeat`, default from global_defs.
    pub garp_master_refresh_repeat: Option<u32>,
    /// `garp_lower_prio_delay` seconds, default from global_defs.
    pub garp_lower_prio_delay: Option<Duration>,
    /// `garp_lower_prio_repeat`, default from global_defs.
    pub garp_lower_prio_repeat: Option<u32>,
    /// `lower_prio_no_advert [on|off]`, default from global_defs.
    pub lower_prio_no_advert: Option<bool>,
    /// `higher_prio_send_advert [on|off]`, default from global_defs.
    pub higher_prio_send_advert: Option<bool>,
    /// `dont_track_primary`: link state of `interface` does not cause FAULT.
    pub dont_track_primary: bool,
    /// `smtp_alert [on|off]`: e-mail on transitions (unset: the global default).
    pub smtp_alert: Option<bool>,
    /// Where the block starts.
    pub location: Location,
}

/// `vrrp_sync_group NAME { group { ... } ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncGroup {
    /// Block name.
    pub name: String,
    /// Names of member instances.
    pub members: Vec<String>,
    /// `track_script { ... }`: followed by every member, with the group's weights.
    pub track_scripts: Vec<TrackScript>,
    /// `track_file { ... }`: followed by every member.
    pub track_files: Vec<TrackFileRef>,
    /// `sync_group_tracking_weight`: members keep the weights of their own trackers.
    pub tracking_weight: bool,
    /// Notify hooks with `TYPE` = `GROUP`.
    pub notify: NotifyScripts,
    /// `track_process { ... }`: applies to every member.
    pub track_processes: Vec<TrackProcess>,
    /// `smtp_alert [on|off]`: e-mail on the group's transitions (unset: the global default).
    pub smtp_alert: Option<bool>,
    /// Where the block starts.
    pub location: Location,
}

/// How `vrrp_track_process` compares a process's arguments with the configured ones
/// (`param_match`); anything but `Any` compares the command line, not the kernel's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamMatch {
    /// No comparison of arguments: only the name (or the command line's first word).
    Any,
    /// The arguments are exactly the configured ones (the default when `process` has some).
    Exact,
    /// The configured arguments are the first arguments of the process.
    Partial,
    /// As `Partial`, but the last configured argument need only begin the process's one.
    Initial,
}

/// `vrrp_track_process NAME { ... }`: a count of running processes that must stay within
/// `quorum..=quorum_max`, watched through the kernel's process events.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpTrackProcess {
    /// Block name, referenced from `track_process`.
    pub name: String,
    /// `process NAME_OR_PATH [ARGS...]`: the kernel's process name, or with `full_command`
    /// the command line's first word.
    pub process: String,
    /// `process NAME ARGS...`: the arguments to compare (see `param_match`).
    pub args: Vec<String>,
    /// `param_match`: how `args` are compared.
    pub param_match: ParamMatch,
    /// Compare the command line (`/proc/PID/cmdline`) instead of the kernel's 15-character
    /// process name; set by `full_command`, by `param_match` and by arguments on `process`.
    pub full_command: bool,
    /// `quorum`, default 1: fewest processes for the tracker to be up.
    pub quorum: u32,
    /// `quorum_max`, default unlimited: most processes for the tracker to be up.
    pub quorum_max: u32,
    /// `fork_delay` (or `delay`): how long a count reached through a fork must hold.
    pub fork_delay: Duration,
    /// `terminate_delay` (or `delay`): how long a count reached through an exit must hold.
    pub terminate_delay: Duration,
    /// `weight N`, default 0 (0: out of quorum forces FAULT).
    pub weight: i32,
    /// `weight N reverse`: the weight applies the other way round.
    pub reverse: bool,
    /// Where the block starts.
    pub location: Location,
}

/// `track_process` line in an instance or a sync group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackProcess {
    /// Name of a `vrrp_track_process`.
    pub name: String,
    /// `weight N` overriding the tracker's own weight.
    pub weight: Option<i32>,
    /// `reverse` / `noreverse` after the weight, overriding the tracker's own.
    pub reverse: Option<bool>,
}
