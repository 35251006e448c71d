//! Sans-IO VRRP: the packet codec (RFC 3768 v2, RFC 5798 v3, IPv4 and IPv6), the instance state
//! machine and keepalived-style sync groups.
//!
//! Nothing here reads a clock, opens a socket or spawns a task. The caller passes `now` and an
//! input and gets back a list of actions to carry out, so the same code runs in the daemon, in
//! simulated networks of many routers, in benchmarks and under the fuzzer.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tandem_vrrp::{Input, Router, InstanceConfig, Version, Auth};
//!
//! let mut router = Router::new();
//! let vi_1 = router.add_instance(InstanceConfig {
//!     name: "VI_1".into(),
//!     vrid: 51,
//!     version: Version::V3,
//!     priority: 150,
//!     advert_interval: Duration::from_secs(1),
//!     preempt: true,
//!     preempt_delay: Duration::ZERO,
//!     start_as_master: false,
//!     addresses: vec!["10.0.0.100".parse().unwrap()],
//!     auth: Auth::None,
//!     source: "10.0.0.1".parse().unwrap(),
//!     destinations: vec!["224.0.0.18".parse().unwrap()],
//!     check_source: false,
//!     garp_repeat_after: None,
//!     garp_refresh: None,
//!     lower_priority: Default::default(),
//!     higher_prio_send_advert: false,
//! }, 2, &[2]);
//! let now = Instant::now();
//! let actions = router.handle(now, Input::Start);
//! assert!(!actions.is_empty());
//! // Nobody else is there: after Master_Down_Interval this router is master.
//! let later = router.next_deadline().unwrap();
//! router.handle(later, Input::Timer);
//! assert_eq!(router.instance(vi_1).state(), tandem_vrrp::State::Master);
//! ```

pub mod checksum;
pub mod instance;
pub mod packet;
pub mod router;
pub mod stats;
pub mod tracker;

pub use instance::{
    Cause, Instance, InstanceAction, InstanceConfig, LowerPriorityAnswer, State, PRIORITY_OWNER,
    PRIORITY_STOP,
};
pub use packet::{Advertisement, Auth, DecodeError, DropReason, Expected, Version};
pub use router::{Action, Carried, GroupId, Input, InstanceId, Router, TrackingStatus};
pub use stats::Stats;
pub use tracker::{Effect, ScriptCounter, TrackerId, TrackerKind, TrackerState, Tracking};
