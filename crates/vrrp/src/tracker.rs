//! Health trackers with keepalived's semantics: scripts (`vrrp_script`), files
//! (`track_file`) and the like, whose state moves an instance's priority or forces FAULT.
//!
//! A tracker has a state; an instance (or a sync group, for each of its members) refers to it
//! with a weight and `reverse`. What one reference does is [`Tracking::effect`]:
//!
//! - weight 0: FAULT while the tracker is down (with `reverse`: while it is up); for a file,
//!   while its value is not 0 (with `reverse`: while it is 0);
//! - a positive weight is added while the tracker is up, a negative one while it is down;
//!   `reverse` flips the sign of what is added;
//! - a file adds weight × value (× -1 with `reverse`), limited to -254..=253, and -254 means
//!   FAULT.
//!
//! The effective priority is the configured one plus every addition, kept within 1..=254 (an
//! address owner keeps 255). A script's up/down comes from keepalived's rise/fall counting,
//! [`ScriptCounter`], kept here so it is tested with the rest and not in the daemon.

/// Index of a tracker in the router, in the order added.
pub type TrackerId = usize;

/// What a tracker watches: decides how its state reads in logs and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerKind {
    /// `vrrp_script`: a command run every interval.
    Script,
    /// `track_file`: an integer in a file.
    File,
    /// `vrrp_track_process`: a count of running processes within its quorum.
    Process,
}

impl TrackerKind {
    /// The word used in logs and status (`script`, `file`).
    pub fn word(self) -> &'static str {
        match self {
            TrackerKind::Script => "script",
            TrackerKind::File => "file",
            TrackerKind::Process => "process",
        }
    }
}

/// A tracker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackerState {
    /// No result yet (keepalived's init state): weighted references add nothing, weight-0
    /// references hold the instance in FAULT until the first result.
    Pending,
    /// Succeeding.
    Up,
    /// Failing.
    Down,
    /// The number a tracked file holds.
    Value(i64),
}

impl std::fmt::Display for TrackerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrackerState::Pending => f.write_str("pending"),
            TrackerState::Up => f.write_str("up"),
            TrackerState::Down => f.write_str("down"),
            TrackerState::Value(v) => write!(f, "{v}"),
        }
    }
}

/// One reference from an instance (or sync group) to a tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracking {
    /// Which tracker.
    pub tracker: TrackerId,
    /// keepalived's weight; 0 means FAULT instead of a priority change.
    pub weight: i32,
    /// keepalived's `reverse`.
    pub reverse: bool,
}

/// What a reference does to its instance right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The instance must be in FAULT.
    Fault,
    /// Add this to the configured priority (often 0).
    Priority(i32),
}

impl Effect {
    /// What it adds to the priority: FAULT adds nothing (it acts on the state instead).
    pub fn added(self) -> i32 {
        match self {
            Effect::Priority(p) => p,
            Effect::Fault => 0,
        }
    }
}

/// Lowest file contribution; this value or below means FAULT (keepalived's -254).
const FILE_FAULT: i64 = -254;
/// Highest file contribution (keepalived's 253).
const FILE_MAX: i64 = 253;

impl Tracking {
    /// What this reference does while its tracker is in `state`.
    pub fn effect(&self, state: TrackerState) -> Effect {
        let sign = if self.reverse { -1 } else { 1 };
        match state {
            TrackerState::Pending if self.weight == 0 => Effect::Fault,
            TrackerState::Pending => Effect::Priority(0),
            TrackerState::Up | TrackerState::Down => {
                let up = state == TrackerState::Up;
                if self.weight == 0 {
                    return if up == self.reverse {
                        Effect::Fault
                    } else {
                        Effect::Priority(0)
                    };
                }
                let counts = (self.weight > 0) == up;
                Effect::Priority(if counts { self.weight * sign } else { 0 })
            }
            TrackerState::Value(value) => {
                if self.weight == 0 {
                    return if (value != 0) != self.reverse {
                        Effect::Fault
                    } else {
                        Effect::Priority(0)
                    };
                }
                let status = value
                    .saturating_mul(i64::from(self.weight))
                    .saturating_mul(sign.into())
                    .clamp(FILE_FAULT, FILE_MAX);
                if status == FILE_FAULT {
                    Effect::Fault
                } else {
                    Effect::Priority(status as i32)
                }
            }
        }
    }
}

/// keepalived's rise/fall counting for one `vrrp_script`: `rise` successes in a row bring a
/// failing script up, `fall` failures in a row bring a succeeding one down. Before its first
/// result a script is [`TrackerState::Pending`] and that first result decides at once, unless
/// `init_fail`, which starts it down (needing `rise` successes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptCounter {
    rise: u32,
    fall: u32,
    /// keepalived's `result`: 0..rise means down, rise..rise+fall means up.
    result: u32,
    state: TrackerState,
}

impl ScriptCounter {
    /// A counter for a script with these settings (`rise` and `fall` at least 1).
    pub fn new(rise: u32, fall: u32, init_fail: bool) -> ScriptCounter {
        let (rise, fall) = (rise.max(1), fall.max(1));
        if init_fail {
            ScriptCounter {
                rise,
                fall,
                result: 0,
                state: TrackerState::Down,
            }
        } else {
            ScriptCounter {
                rise,
                fall,
                result: rise - 1,
                state: TrackerState::Pending,
            }
        }
    }

    /// The script's state now.
    pub fn state(&self) -> TrackerState {
        self.state
    }

    /// Counts one run; returns the new state when this run changed it.
    pub fn record(&mut self, success: bool) -> Option<TrackerState> {
        let before = self.state;
        let (rise, fall) = (self.rise, self.fall);
        if success {
            if self.result < rise - 1 {
                self.result += 1;
            } else {
                self.result = rise + fall - 1;
                self.state = TrackerState::Up;
            }
        } else if self.result > rise {
            self.result -= 1;
        } else if self.result == rise || self.state != TrackerState::Up {
            self.result = 0;
            self.state = TrackerState::Down;
        }
        (self.state != before).then_some(self.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(weight: i32, reverse: bool) -> Tracking {
        Tracking {
            tracker: 0,
            weight,
            reverse,
        }
    }

    #[test]
    fn scripts_add_their_weight_on_the_side_that_counts() {
        use TrackerState::*;
        assert_eq!(t(0, false).effect(Down), Effect::Fault);
        assert_eq!(t(0, false).effect(Up), Effect::Priority(0));
        assert_eq!(t(0, true).effect(Up), Effect::Fault);
        assert_eq!(t(0, true).effect(Down), Effect::Priority(0));
        assert_eq!(t(0, true).effect(Pending), Effect::Fault);
        assert_eq!(t(10, false).effect(Up), Effect::Priority(10));
        assert_eq!(t(10, false).effect(Down), Effect::Priority(0));
        assert_eq!(t(-10, false).effect(Down), Effect::Priority(-10));
        assert_eq!(t(-10, false).effect(Up), Effect::Priority(0));
        assert_eq!(t(10, true).effect(Up), Effect::Priority(-10));
        assert_eq!(t(-10, true).effect(Down), Effect::Priority(10));
        assert_eq!(t(-10, false).effect(Pending), Effect::Priority(0));
    }

    #[test]
    fn files_multiply_and_fault_at_minus_254() {
        use TrackerState::Value;
        assert_eq!(t(0, false).effect(Value(3)), Effect::Fault);
        assert_eq!(t(0, false).effect(Value(0)), Effect::Priority(0));
        assert_eq!(t(0, true).effect(Value(0)), Effect::Fault);
        assert_eq!(t(5, false).effect(Value(3)), Effect::Priority(15));
        assert_eq!(t(5, true).effect(Value(3)), Effect::Priority(-15));
        assert_eq!(t(1, false).effect(Value(1000)), Effect::Priority(253));
        assert_eq!(t(1, false).effect(Value(-253)), Effect::Priority(-253));
        assert_eq!(t(1, false).effect(Value(-254)), Effect::Fault);
        assert_eq!(t(-2, false).effect(Value(i64::MAX)), Effect::Fault);
    }

    #[test]
    fn rise_and_fall_count_like_keepalived() {
        use TrackerState::*;
        // First result decides at once.
        let mut c = ScriptCounter::new(3, 2, false);
        assert_eq!(c.state(), Pending);
        assert_eq!(c.record(false), Some(Down));
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(Up), "third success in a row");
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(true), None, "a success resets the fall count");
        assert_eq!(c.record(false), None);
        assert_eq!(c.record(false), Some(Down), "second failure in a row");

        let mut c = ScriptCounter::new(3, 2, false);
        assert_eq!(c.record(true), Some(Up), "one success is enough at first");

        let mut c = ScriptCounter::new(2, 1, true);
        assert_eq!(c.state(), Down);
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(false), None, "still down");
        assert_eq!(c.record(true), None);
        assert_eq!(c.record(true), Some(Up));
        assert_eq!(c.record(false), Some(Down), "fall 1");
    }
}
