//! One virtual router: the state machine of RFC 5798 section 6.4, with keepalived's semantics
//! where they differ (`nopreempt`, `preempt_delay`, `state MASTER` as a hint, FAULT).
//!
//! Nothing else changes an instance's state. Each event has one handler named after it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::packet::{Advertisement, Auth, DecodeError, DropReason, Expected, Version};
use crate::stats::Stats;
use crate::tracker::TrackerId;

/// Priority that says "I own the addresses": become master at once, never preempted.
pub const PRIORITY_OWNER: u8 = 255;
/// Priority that says "I am stopping": backups take over after skew time.
pub const PRIORITY_STOP: u8 = 0;

/// The states of RFC 5798 plus keepalived's FAULT and STOP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not started yet.
    Init,
    /// Watching the master, ready to take over.
    Backup,
    /// Owning the addresses and advertising.
    Master,
    /// A tracked link is down: no addresses, no adverts.
    Fault,
    /// Shut down.
    Stop,
}

impl State {
    /// The word keepalived uses in logs and notify arguments.
    pub fn keyword(self) -> &'static str {
        match self {
            State::Init => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
            State::Stop => "STOP",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.keyword())
    }
}

/// Why a transition happened: shown in logs so an operator sees the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Start-up.
    Start,
    /// No advert from a master for Master_Down_Interval.
    MasterDown,
    /// The master sent priority 0.
    MasterStopped,
    /// A higher-priority (or equal priority, higher address) master advertised.
    HigherPriority,
    /// A tracked link went down.
    LinkDown,
    /// The tracked links came back.
    LinkUp,
    /// Another member of the sync group moved.
    SyncGroup,
    /// A tracker (script, file...) forced FAULT or released it: the router's
    /// [`crate::Router::explain`] names it.
    Tracker(TrackerId),
    /// The daemon is stopping.
    Shutdown,
}

impl std::fmt::Display for Cause {
    /// The cause in words, for the transition's log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cause::Start => "start-up",
            Cause::MasterDown => "no advert from the master for Master_Down_Interval",
            Cause::MasterStopped => "the master sent priority 0",
            Cause::HigherPriority => "a higher-priority master advertised",
            Cause::LinkDown => "a tracked interface went down",
            Cause::LinkUp => "the tracked interfaces are up",
            Cause::SyncGroup => "its sync group moved",
            Cause::Tracker(_) => "a tracker changed",
            Cause::Shutdown => "shutting down",
        })
    }
}

/// Settings of one instance, taken from the configuration by the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceConfig {
    /// Name used in logs and notify arguments (`VI_1`).
    pub name: String,
    /// Virtual router id.
    pub vrid: u8,
    /// Protocol version.
    pub version: Version,
    /// Configured priority, 1..=255.
    pub priority: u8,
    /// Configured advertisement interval.
    pub advert_interval: Duration,
    /// Whether a higher-priority backup takes over from a lower-priority master.
    pub preempt: bool,
    /// Wait this long after start, or after first seeing a lower-priority master, before preempting.
    pub preempt_delay: Duration,
    /// `state MASTER`: try to become master soon after start instead of after a full interval.
    pub start_as_master: bool,
    /// Virtual addresses carried in adverts.
    pub addresses: Vec<IpAddr>,
    /// v2 authentication.
    pub auth: Auth,
    /// This router's primary address on the interface: the advert source and the tie-breaker.
    pub source: IpAddr,
    /// Where adverts go: the multicast group, or the unicast peers.
    pub destinations: Vec<IpAddr>,
    /// Only accept adverts whose source is one of `destinations` (unicast with `vrrp_check_unicast_src`).
    pub check_source: bool,
    /// Second burst of gratuitous ARPs this long after becoming master (None: only one burst).
    pub garp_repeat_after: Option<Duration>,
    /// keepalived's `garp_master_refresh`: while master, announce the addresses again with
    /// the first advert sent at least this long after the last announcement (None: never).
    pub garp_refresh: Option<Duration>,
    /// How a master answers a lower-priority router that thinks it is master.
    pub lower_priority: LowerPriorityAnswer,
    /// keepalived's `higher_prio_send_advert`: a master that yields to a higher priority sends
    /// one last advert first, so a higher-priority master that cannot hear it directly still
    /// learns it existed.
    pub higher_prio_send_advert: bool,
}

/// What a master does on hearing a lower-priority master (keepalived's
/// `lower_prio_no_advert`, `garp_lower_prio_repeat`, `garp_lower_prio_delay`); whatever it
/// is, at most once per advert interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LowerPriorityAnswer {
    /// Answer with an advert at once (off with `lower_prio_no_advert`: the RFC's behaviour).
    pub advert: bool,
    /// Announce the addresses again ([`InstanceAction::SendGratuitousLowerPriority`]); off when
    /// `garp_lower_prio_repeat` is 0.
    pub announce: bool,
    /// A second announcement this long after the first (`garp_lower_prio_delay`).
    pub announce_again_after: Option<Duration>,
}

impl Default for LowerPriorityAnswer {
    /// An advert and one announcement, keepalived's behaviour without the keywords' delay.
    fn default() -> Self {
        LowerPriorityAnswer {
            advert: true,
            announce: true,
            announce_again_after: None,
        }
    }
}

impl InstanceConfig {
    /// Configured interval in centiseconds, as it appears on the wire.
    pub fn interval_cs(&self) -> u16 {
        (self.advert_interval.as_millis() / 10).clamp(1, 0x0fff) as u16
    }
}

/// What an instance asks its caller to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceAction {
    /// Send these bytes (a complete VRRP advertisement) to `to`.
    Send {
        /// Destination (group or peer).
        to: IpAddr,
        /// Encoded advertisement.
        bytes: Vec<u8>,
    },
    /// State changed: log it, run notify hooks.
    Transition {
        /// Old state.
        from: State,
        /// New state.
        to: State,
        /// Why.
        cause: Cause,
    },
    /// Put the virtual addresses on the interfaces.
    AddAddresses,
    /// Take the virtual addresses off.
    RemoveAddresses,
    /// Announce the addresses: gratuitous ARP / unsolicited neighbour advertisements.
    SendGratuitous,
    /// Announce the addresses again because a lower-priority master was heard (its
    /// announcements pointed the neighbours at it): keepalived's `garp_lower_prio_repeat`
    /// per address.
    SendGratuitousLowerPriority,
    /// Announce the addresses again, as a master does every `garp_master_refresh`
    /// (`garp_master_refresh_repeat` per address).
    RefreshGratuitous,
    /// A lower-priority router advertised as master and this master answered (at most once
    /// an interval): for the log, in keepalived's words.
    HeardLowerPriority {
        /// The other router.
        from: IpAddr,
        /// Its priority.
        priority: u8,
        /// Whether the answer includes an advert (not with `lower_prio_no_advert`).
        advert: bool,
    },
}

/// Runtime state of one virtual router.
#[derive(Debug, Clone)]
pub struct Instance {
    config: InstanceConfig,
    state: State,
    priority: u8,
    master_adver_interval: Duration,
    adver_timer: Option<Instant>,
    /// Adverts fall on `advert_epoch + k × advert_interval`; the epoch is the start, which
    /// one router shares among its instances (see [`Instance::next_advert_on_grid`]).
    advert_epoch: Option<Instant>,
    master_down_timer: Option<Instant>,
    garp_timer: Option<Instant>,
    /// Second announcement after a lower-priority master was heard.
    lower_priority_garp_timer: Option<Instant>,
    /// A master's next periodic announcement is due with the first advert at or after this.
    garp_refresh_due: Option<Instant>,
    preempt_deadline: Option<Instant>,
    preempt_hold: Option<Instant>,
    link_up: bool,
    /// The tracker holding this instance in FAULT, if one is.
    tracker_fault: Option<TrackerId>,
    /// The tracker FAULT is only weight-0 scripts that have not answered yet: keepalived keeps
    /// such an instance in INIT (no transition, no notify) until their first result.
    fault_pending: bool,
    /// Started, but held in INIT by `fault_pending` or `group_hold`.
    held_in_init: bool,
    /// Another member of the sync group waits for its scripts' first results: keepalived
    /// keeps the whole group in INIT until every member can leave it.
    group_hold: bool,
    group_fault: bool,
    in_group: bool,
    wants_master: bool,
    master: Option<IpAddr>,
    /// When this master last answered an advert out of its rhythm.
    last_answer: Option<Instant>,
    stats: Stats,
}

impl Instance {
    /// A new instance in INIT; call [`Instance::start`] to begin.
    pub fn new(config: InstanceConfig) -> Instance {
        Instance {
            priority: config.priority,
            master_adver_interval: config.advert_interval,
            config,
            state: State::Init,
            adver_timer: None,
            advert_epoch: None,
            master_down_timer: None,
            garp_timer: None,
            lower_priority_garp_timer: None,
            garp_refresh_due: None,
            preempt_deadline: None,
            preempt_hold: None,
            link_up: true,
            tracker_fault: None,
            fault_pending: false,
            held_in_init: false,
            group_hold: false,
            group_fault: false,
            in_group: false,
            wants_master: false,
            master: None,
            last_answer: None,
            stats: Stats::default(),
        }
    }

    /// Settings this instance runs with.
    pub fn config(&self) -> &InstanceConfig {
        &self.config
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Effective priority (configured priority adjusted by tracking).
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Address of the master last heard from (None while master or before any advert).
    pub fn master(&self) -> Option<IpAddr> {
        self.master
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The advert interval in use: the master's, learned from its adverts (v3), or ours.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// RFC 5798 Skew_Time: lower priorities wait longer, so the best backup wins.
    pub fn skew_time(&self) -> Duration {
        self.master_adver_interval * (256 - u32::from(self.priority)) / 256
    }

    /// RFC 5798 Master_Down_Interval.
    pub fn master_down_interval(&self) -> Duration {
        self.master_adver_interval * 3 + self.skew_time()
    }

    /// The earliest time at which [`Instance::handle_timers`] has work.
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.adver_timer,
            self.master_down_timer,
            self.garp_timer,
            self.lower_priority_garp_timer,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Takes over `old`'s running state (the same virtual router, re-read by a reload); the
    /// settings and the sync-group membership stay this instance's own, and the effective
    /// priority follows the new configured one (nothing else adjusts it yet).
    pub(crate) fn carry_state_from(&mut self, old: &Instance) {
        let (config, in_group) = (self.config.clone(), self.in_group);
        let changed = old.config != config;
        *self = old.clone();
        self.in_group = in_group;
        if changed {
            self.priority = config.priority;
            if self.state == State::Master {
                self.master_adver_interval = config.advert_interval;
            }
            self.config = config;
        }
    }

    /// Zeroes the counters.
    pub(crate) fn clear_stats(&mut self) {
        self.stats = Stats::default();
    }

    /// Until when preemption is held, if it is.
    pub(crate) fn preemption_hold(&self) -> Option<Instant> {
        self.preempt_hold
    }

    /// Start of the advert grid, once started.
    pub(crate) fn advert_epoch(&self) -> Option<Instant> {
        self.advert_epoch
    }

    /// Puts a not-yet-started instance on an existing advert grid.
    pub(crate) fn set_advert_epoch(&mut self, epoch: Instant) {
        self.advert_epoch = Some(epoch);
    }

    /// Marks the instance as a sync-group member: its master-down expiry then waits for the group.
    pub(crate) fn set_in_group(&mut self, in_group: bool) {
        self.in_group = in_group;
    }

    /// Whether the master-down timer fired while the group was not ready to follow.
    pub(crate) fn wants_master(&self) -> bool {
        self.wants_master
    }

    /// Whether this instance's own links or trackers hold it in FAULT (as opposed to FAULT
    /// imposed by its group).
    pub(crate) fn own_fault(&self) -> bool {
        !self.link_up || self.tracker_fault.is_some()
    }

    /// The tracker holding this instance in FAULT, if one is.
    pub fn tracker_fault(&self) -> Option<TrackerId> {
        self.tracker_fault
    }

    /// Records the tracker holding a not-yet-started instance in FAULT; `pending`: only
    /// because scripts have not answered yet (the instance then waits in INIT).
    pub(crate) fn set_tracker_fault(&mut self, fault: Option<TrackerId>, pending: bool) {
        self.tracker_fault = fault;
        self.fault_pending = fault.is_some() && pending;
    }

    /// Whether the instance is started but waits in INIT for scripts' first results (its
    /// own, or another sync-group member's).
    pub fn held_in_init(&self) -> bool {
        self.held_in_init
    }

    /// Whether FAULT is called for only by scripts with no result yet.
    pub(crate) fn fault_pending(&self) -> bool {
        self.fault_pending
    }

    /// Whether this instance's own state forces its sync group into FAULT: a link down or a
    /// tracker that has answered (a script not run yet holds the group in INIT instead).
    pub(crate) fn faults_group(&self) -> bool {
        !self.link_up || (self.tracker_fault.is_some() && !self.fault_pending)
    }

    /// Sets whether another member of the sync group still waits for a first result; a
    /// held instance that nothing else holds leaves INIT with the group.
    pub(crate) fn set_group_hold(&mut self, now: Instant, hold: bool) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        self.group_hold = hold;
        if self.held_in_init && !hold && !self.fault_pending {
            self.begin(now, Cause::SyncGroup, &mut out);
        }
        out
    }

    /// Why this instance is in FAULT by itself, as a transition cause.
    fn fault_cause(&self, otherwise: Cause) -> Cause {
        match self.tracker_fault {
            Some(t) if self.link_up => Cause::Tracker(t),
            _ => otherwise,
        }
    }

    /// Start-up (RFC 5798 6.4.1): owner → MASTER, otherwise BACKUP.
    pub fn start(&mut self, now: Instant) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        if self.state != State::Init && self.state != State::Stop {
            return out;
        }
        self.preempt_deadline =
            (!self.config.preempt_delay.is_zero()).then(|| now + self.config.preempt_delay);
        self.advert_epoch.get_or_insert(now);
        if self.link_up && !self.group_fault && (self.fault_pending || self.group_hold) {
            // keepalived: INIT until every weight-0 script has answered once.
            self.held_in_init = true;
            return out;
        }
        self.begin(now, Cause::Start, &mut out);
        out
    }

    /// Leaves INIT for the state the links, trackers and priority call for.
    fn begin(&mut self, now: Instant, cause: Cause, out: &mut Vec<InstanceAction>) {
        self.held_in_init = false;
        if self.own_fault() || self.group_fault {
            let cause = self.fault_cause(cause);
            self.enter_fault(now, cause, out);
        } else if self.priority == PRIORITY_OWNER {
            self.enter_master(now, cause, out);
        } else {
            self.enter_backup(now, cause, out);
            if self.config.start_as_master {
                // A hint only: claim mastership after skew time unless someone answers first.
                self.master_down_timer = Some(now + self.skew_time());
            }
        }
    }

    /// Checks a received advert against this instance's settings, counting what is dropped.
    pub fn accept_packet(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        ttl: u8,
        bytes: &[u8],
    ) -> Result<Advertisement, DecodeError> {
        let result = Advertisement::decode(bytes, src, dst).and_then(|advert| {
            let expected = Expected {
                version: self.config.version,
                auth: self.config.auth,
                interval_cs: self.config.interval_cs(),
            };
            expected.check(&advert, ttl)?;
            if self.config.check_source && !self.config.destinations.contains(&src) {
                return Err(DecodeError::UnicastSource {
                    source_address: src,
                });
            }
            if self.config.priority == PRIORITY_OWNER {
                return Err(DecodeError::Owner {
                    priority: advert.priority,
                });
            }
            Ok(advert)
        });
        if let Err(error) = &result {
            self.stats.count_drop(error.reason());
        }
        result
    }

    /// An advert passed [`Instance::accept_packet`] (RFC 5798 6.4.2 and 6.4.3).
    pub fn process_advert(
        &mut self,
        now: Instant,
        src: IpAddr,
        advert: &Advertisement,
    ) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        self.stats.adverts_received += 1;
        if advert.priority == PRIORITY_STOP {
            self.stats.priority_zero_received += 1;
        }
        if !self.same_addresses(advert) {
            self.stats.address_list_mismatch += 1;
        }
        match self.state {
            State::Backup => self.backup_receives(now, src, advert),
            State::Master => self.master_receives(now, src, advert, &mut out),
            State::Init | State::Fault | State::Stop => {}
        }
        out
    }

    fn backup_receives(&mut self, now: Instant, src: IpAddr, advert: &Advertisement) {
        if advert.priority == PRIORITY_STOP {
            self.master_down_timer = Some(now + self.skew_time());
            return;
        }
        let lower = advert.priority < self.priority;
        if self.config.preempt && lower && !self.preempt_delay_running(now) {
            // Let the master-down timer expire: we take over.
            return;
        }
        self.master = Some(src);
        self.wants_master = false;
        if self.config.version == Version::V3 {
            self.master_adver_interval = Duration::from_millis(u64::from(advert.interval_cs) * 10);
        }
        self.master_down_timer = Some(now + self.master_down_interval());
    }

    /// Holds preemption until `until` (or releases a hold with `None`): a returning node waits
    /// for the current master's replicated state before it takes over. A master that stops
    /// advertising is still replaced when the master-down timer fires.
    pub fn hold_preemption(&mut self, until: Option<Instant>) {
        self.preempt_hold = until;
    }

    /// keepalived's `preempt_delay` (and a replication hold): lower-priority masters are
    /// tolerated until the deadline.
    fn preempt_delay_running(&mut self, now: Instant) -> bool {
        if self.preempt_hold.is_some_and(|until| now < until) {
            return true;
        }
        if self.config.preempt_delay.is_zero() {
            return false;
        }
        let deadline = *self
            .preempt_deadline
            .get_or_insert(now + self.config.preempt_delay);
        now < deadline
    }

    fn master_receives(
        &mut self,
        now: Instant,
        src: IpAddr,
        advert: &Advertisement,
        out: &mut Vec<InstanceAction>,
    ) {
        if advert.priority == PRIORITY_STOP {
            // RFC 5798 6.4.3: answer at once, but not more than once an interval, so forged
            // priority-0 adverts cannot make this router a packet amplifier.
            if self.may_answer_now(now) {
                self.send_advert(self.priority, out);
                self.adver_timer = Some(self.next_advert_on_grid(now));
            }
            return;
        }
        let higher = advert.priority > self.priority
            || (advert.priority == self.priority && src > self.config.source);
        if higher {
            self.master = Some(src);
            if self.config.version == Version::V3 {
                self.master_adver_interval =
                    Duration::from_millis(u64::from(advert.interval_cs) * 10);
            }
            if self.config.higher_prio_send_advert {
                self.send_advert(self.priority, out);
            }
            self.leave_master(false, out);
            self.enter_backup(now, Cause::HigherPriority, out);
        } else {
            // A lower-priority router thinks it is master (e.g. after a partition heals, or a
            // start where this router was slow to advertise): answer at once instead of
            // waiting for the next interval, so it steps down sooner, and announce the
            // addresses again, because its gratuitous ARPs / NAs pointed the neighbours' caches
            // at its own MAC (keepalived's garp_lower_prio_repeat). At most once an interval:
            // a flood of forged lower-priority adverts gets one answer per interval, not one
            // advert and a burst of broadcast ARPs each.
            if self.may_answer_now(now) {
                let answer = self.config.lower_priority;
                out.push(InstanceAction::HeardLowerPriority {
                    from: src,
                    priority: advert.priority,
                    advert: answer.advert,
                });
                if answer.advert {
                    self.send_advert(self.priority, out);
                    self.adver_timer = Some(self.next_advert_on_grid(now));
                }
                if answer.announce {
                    out.push(InstanceAction::SendGratuitousLowerPriority);
                    self.lower_priority_garp_timer = answer.announce_again_after.map(|d| now + d);
                }
            }
        }
    }

    /// Whether a master may answer an advert at once: not when it already did within the
    /// last advert interval (its regular adverts carry on meanwhile).
    fn may_answer_now(&mut self, now: Instant) -> bool {
        let recent = (self.last_answer)
            .is_some_and(|t| now.saturating_duration_since(t) < self.config.advert_interval);
        if !recent {
            self.last_answer = Some(now);
        }
        !recent
    }

    /// Runs whatever timers have expired by `now`.
    pub fn handle_timers(&mut self, now: Instant) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        if self.master_down_timer.is_some_and(|t| t <= now) {
            self.handle_master_down_timer(now, &mut out);
        }
        if self.adver_timer.is_some_and(|t| t <= now) {
            self.handle_adver_timer(now, &mut out);
        }
        if self.garp_timer.is_some_and(|t| t <= now) {
            self.garp_timer = None;
            if self.state == State::Master {
                out.push(InstanceAction::SendGratuitous);
            }
        }
        if self.lower_priority_garp_timer.is_some_and(|t| t <= now) {
            self.lower_priority_garp_timer = None;
            if self.state == State::Master {
                out.push(InstanceAction::SendGratuitousLowerPriority);
            }
        }
        out
    }

    fn handle_master_down_timer(&mut self, now: Instant, out: &mut Vec<InstanceAction>) {
        self.master_down_timer = None;
        if self.state != State::Backup {
            return;
        }
        if self.in_group {
            // The sync group decides when all members are ready (see `group`).
            self.wants_master = true;
            return;
        }
        self.enter_master(now, Cause::MasterDown, out);
    }

    fn handle_adver_timer(&mut self, now: Instant, out: &mut Vec<InstanceAction>) {
        if self.state != State::Master {
            self.adver_timer = None;
            return;
        }
        self.send_advert(self.priority, out);
        // keepalived checks the refresh when it sends an advert: the period rounds up to one.
        // The next one counts from this advert's planned time, so a daemon woken a little
        // late does not miss the advert the period ends on.
        if let (Some(due), Some(period)) = (self.garp_refresh_due, self.config.garp_refresh) {
            let planned = self.adver_timer.unwrap_or(now);
            if due <= planned {
                out.push(InstanceAction::RefreshGratuitous);
                self.garp_refresh_due = Some(planned + period);
            }
        }
        // The next point of the grid; only a daemon late by a whole interval realigns.
        let next = self
            .adver_timer
            .map(|due| due + self.config.advert_interval);
        self.adver_timer = Some(match next {
            Some(next) if next > now => next,
            _ => self.next_advert_on_grid(now),
        });
    }

    /// When the advert cycle (re)starts at `now` (this router just sent an advert): the next
    /// instant of its grid that is at least a quarter interval away. Instances of one router
    /// with the same interval then advertise at the same instants, so the daemon sends them
    /// in one system call per interface and a backup reads them in one wake-up, instead of
    /// one of each per instance spread over the interval (the kernel's `round_jiffies` idea).
    /// The cycle after a (re)start is between 1/4 and 5/4 of the interval, once; a backup's
    /// master-down interval is over three intervals.
    fn next_advert_on_grid(&self, now: Instant) -> Instant {
        let interval = self.config.advert_interval;
        let Some(epoch) = self.advert_epoch.filter(|e| *e <= now) else {
            return now + interval;
        };
        let step = interval.as_nanos().max(1);
        let cycles = (now - epoch).as_nanos() / step + 1;
        let mut next =
            epoch + Duration::from_nanos(u64::try_from(cycles * step).unwrap_or(u64::MAX));
        if next - now < interval / 4 {
            next += interval;
        }
        next
    }

    /// A tracked link went down: FAULT (keepalived semantics).
    pub fn handle_interface_down(&mut self, now: Instant) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        self.link_up = false;
        if self.held_in_init {
            self.begin(now, Cause::LinkDown, &mut out);
        } else if matches!(self.state, State::Backup | State::Master) {
            self.enter_fault(now, Cause::LinkDown, &mut out);
        }
        out
    }

    /// The tracked links are up again: back to BACKUP (or MASTER for the owner).
    pub fn handle_interface_up(&mut self, now: Instant) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        self.link_up = true;
        if self.state == State::Fault && !self.group_fault && !self.own_fault() {
            self.leave_fault(now, Cause::LinkUp, &mut out);
        }
        out
    }

    /// A tracker forces FAULT (`Some`, naming it) or no tracker does any more (`None`; `cause`
    /// names the tracker whose change released it). `pending`: the FAULT is only scripts that
    /// have not answered yet, which keeps an instance waiting in INIT there.
    pub fn handle_tracker_fault(
        &mut self,
        now: Instant,
        fault: Option<TrackerId>,
        pending: bool,
        cause: Cause,
    ) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        let was = self.tracker_fault;
        self.tracker_fault = fault;
        self.fault_pending = fault.is_some() && pending;
        if self.held_in_init {
            // A first failure means FAULT at once; a first success waits for the group.
            if !self.fault_pending && (fault.is_some() || !self.group_hold) {
                self.begin(now, cause, &mut out);
            }
            return out;
        }
        match fault {
            Some(t) if was.is_none() && matches!(self.state, State::Backup | State::Master) => {
                self.enter_fault(now, Cause::Tracker(t), &mut out);
            }
            None if was.is_some()
                && self.state == State::Fault
                && !self.group_fault
                && !self.own_fault() =>
            {
                self.leave_fault(now, cause, &mut out);
            }
            _ => {}
        }
        out
    }

    /// The sync group imposes or lifts FAULT because another member's link failed.
    pub fn set_group_fault(&mut self, now: Instant, fault: bool) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        self.group_fault = fault;
        if fault && self.held_in_init {
            self.begin(now, Cause::SyncGroup, &mut out);
            return out;
        }
        match (fault, self.state) {
            (true, State::Backup | State::Master) => {
                self.enter_fault(now, Cause::SyncGroup, &mut out)
            }
            (false, State::Fault) if !self.own_fault() => {
                self.leave_fault(now, Cause::SyncGroup, &mut out)
            }
            _ => {}
        }
        out
    }

    /// The sync group moves this member to MASTER with the others.
    pub fn force_master(&mut self, now: Instant) -> Vec<InstanceAction> {
        self.group_master(now, Cause::SyncGroup)
    }

    /// The sync group lets this member, whose master-down timer completed the group's
    /// readiness, become MASTER (before the others, as keepalived does).
    pub(crate) fn lead_to_master(&mut self, now: Instant) -> Vec<InstanceAction> {
        self.group_master(now, Cause::MasterDown)
    }

    fn group_master(&mut self, now: Instant, cause: Cause) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        if self.state == State::Backup {
            self.enter_master(now, cause, &mut out);
        }
        out
    }

    /// The sync group moves this member to BACKUP with the others.
    pub fn force_backup(&mut self, now: Instant) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        if self.state == State::Master {
            self.leave_master(false, &mut out);
            self.enter_backup(now, Cause::SyncGroup, &mut out);
        }
        out
    }

    /// Tracking changed the effective priority (owners keep 255).
    pub fn set_priority(&mut self, priority: u8) {
        if self.config.priority != PRIORITY_OWNER {
            self.priority = priority.clamp(1, 254);
        }
    }

    /// Graceful stop: a priority-0 advert so a backup takes over after skew time, addresses removed.
    pub fn shutdown(&mut self, _now: Instant) -> Vec<InstanceAction> {
        let mut out = Vec::new();
        self.held_in_init = false;
        if self.state == State::Master {
            self.leave_master(true, &mut out);
        }
        self.transition(State::Stop, Cause::Shutdown, &mut out);
        self.adver_timer = None;
        self.master_down_timer = None;
        self.garp_timer = None;
        self.lower_priority_garp_timer = None;
        out
    }

    fn enter_master(&mut self, now: Instant, cause: Cause, out: &mut Vec<InstanceAction>) {
        self.transition(State::Master, cause, out);
        self.master = None;
        self.wants_master = false;
        self.master_down_timer = None;
        self.master_adver_interval = self.config.advert_interval;
        self.stats.became_master += 1;
        out.push(InstanceAction::AddAddresses);
        self.send_advert(self.priority, out);
        out.push(InstanceAction::SendGratuitous);
        self.garp_timer = self.config.garp_repeat_after.map(|d| now + d);
        self.garp_refresh_due = self.config.garp_refresh.map(|d| now + d);
        self.adver_timer = Some(self.next_advert_on_grid(now));
    }

    /// Everything a master undoes when it stops being master, whatever comes next.
    ///
    /// `announce_stop` sends priority 0 so backups take over after skew time. Only for a
    /// shutdown or FAULT: when yielding to a higher priority it would make a low-priority backup
    /// jump in before the new master's next advert.
    fn leave_master(&mut self, announce_stop: bool, out: &mut Vec<InstanceAction>) {
        self.stats.released_master += 1;
        if announce_stop && self.link_up {
            self.send_advert(PRIORITY_STOP, out);
        }
        out.push(InstanceAction::RemoveAddresses);
        self.adver_timer = None;
        self.garp_timer = None;
        self.lower_priority_garp_timer = None;
        self.garp_refresh_due = None;
    }

    fn enter_backup(&mut self, now: Instant, cause: Cause, out: &mut Vec<InstanceAction>) {
        self.transition(State::Backup, cause, out);
        self.wants_master = false;
        self.master_down_timer = Some(now + self.master_down_interval());
    }

    fn enter_fault(&mut self, _now: Instant, cause: Cause, out: &mut Vec<InstanceAction>) {
        if self.state == State::Master {
            self.leave_master(true, out);
        }
        self.transition(State::Fault, cause, out);
        self.wants_master = false;
        self.master_down_timer = None;
        self.adver_timer = None;
    }

    fn leave_fault(&mut self, now: Instant, cause: Cause, out: &mut Vec<InstanceAction>) {
        if self.priority == PRIORITY_OWNER {
            self.enter_master(now, cause, out);
        } else {
            self.master_adver_interval = self.config.advert_interval;
            self.enter_backup(now, cause, out);
        }
    }

    fn transition(&mut self, to: State, cause: Cause, out: &mut Vec<InstanceAction>) {
        let from = self.state;
        if from != to {
            self.state = to;
            out.push(InstanceAction::Transition { from, to, cause });
        }
    }

    fn send_advert(&mut self, priority: u8, out: &mut Vec<InstanceAction>) {
        let advert = Advertisement {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval_cs: self.config.interval_cs(),
            addresses: self.config.addresses.clone(),
            auth: self.config.auth,
        };
        for &to in &self.config.destinations {
            out.push(InstanceAction::Send {
                to,
                bytes: advert.encode(self.config.source, to),
            });
            self.stats.adverts_sent += 1;
            if priority == PRIORITY_STOP {
                self.stats.priority_zero_sent += 1;
            }
        }
    }

    fn same_addresses(&self, advert: &Advertisement) -> bool {
        advert.addresses.len() == self.config.addresses.len()
            && advert
                .addresses
                .iter()
                .all(|a| self.config.addresses.contains(a))
    }

    /// Counts a packet for this instance that was dropped before it could be decoded.
    pub fn count_drop(&mut self, reason: DropReason) {
        self.stats.count_drop(reason);
    }
}
