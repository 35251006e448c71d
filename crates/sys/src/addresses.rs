//! Virtual addresses: adding, removing and checking them over rtnetlink.
//!
//! Both directions are idempotent, because the daemon re-runs them after
//! restarts and link flaps: adding an address that is already there and
//! removing one that is already gone both succeed.
//!
//! Changes travel in batches: every request of [`Addresses::add_all`] leaves in
//! one datagram on a connection of their own, so the kernel applies them one
//! after the other in a single system call and a sync group's addresses appear
//! together instead of one netlink round trip apart.

use std::net::{IpAddr, Ipv4Addr};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_proto::sys::{protocols::NETLINK_ROUTE, SocketAddr};
use netlink_proto::ConnectionHandle;

use crate::error::{netlink_errno, SysError};
use crate::interfaces::{describe_index, message_address};
use crate::routes::{route_request, rule_request, RouteSpec, RuleSpec};

/// One address on one interface, as keepalived's `virtual_ipaddress` lines describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressSpec {
    /// The address itself.
    pub address: IpAddr,
    /// Prefix length (32 / 128 for a host address).
    pub prefix_len: u8,
    /// Interface index the address lives on.
    pub ifindex: u32,
    /// IPv4 label such as `eth0:vip` (ignored for IPv6, which has no labels).
    pub label: Option<String>,
    /// IPv4 broadcast address; when `None` one is derived for prefixes shorter than /31.
    pub broadcast: Option<Ipv4Addr>,
    /// Raw `rtm_scope` value (0 global, 253 link, 254 host); `None` means global.
    pub scope: Option<u8>,
}

impl std::fmt::Display for AddressSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// Answers to a removal that mean the address is gone already: not there, or its interface
/// was deleted with it.
const GONE: &[i32] = &[libc::EADDRNOTAVAIL, libc::ENODEV];

/// Adds and removes addresses: lookups through the shared rtnetlink
/// connection, changes in batches through a connection of its own.
#[derive(Clone)]
pub struct Addresses {
    handle: rtnetlink::Handle,
    /// `None` when it could not be opened: requests then go one by one
    /// through `handle` (still all sent before any answer is awaited).
    batches: Option<ConnectionHandle<RouteNetlinkMessage>>,
}

/// Opens an rtnetlink connection and spawns its driver task on the current
/// tokio runtime; the handle is what [`Addresses`] and [`crate::interface`] use.
pub async fn connect() -> Result<(rtnetlink::Handle, tokio::task::JoinHandle<()>), SysError> {
    let (conn, handle, _messages) = rtnetlink::new_connection()
        .map_err(|e| SysError::socket("opening rtnetlink connection", e))?;
    Ok((handle, tokio::spawn(conn)))
}

impl Addresses {
    /// Wraps a handle from [`connect`] and opens the connection batches go
    /// through, its driver task on the current tokio runtime (it ends when
    /// the last clone is dropped). Outside a runtime, or when the socket
    /// cannot be opened (logged), changes go through `handle` instead.
    pub fn new(handle: rtnetlink::Handle) -> Self {
        let batches = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                match netlink_proto::new_connection::<RouteNetlinkMessage>(NETLINK_ROUTE) {
                    Ok((mut conn, batches, _unsolicited)) => {
                        // Every request of a batch gets its own answer, success included, so
                        // each address learns its own outcome.
                        conn.set_forward_ack(true);
                        runtime.spawn(conn);
                        Some(batches)
                    }
                    Err(e) => {
                        let e =
                            SysError::socket("opening rtnetlink connection for address batches", e);
                        tracing::warn!("{e}: addresses change one request at a time");
                        None
                    }
                }
            }
            Err(_) => None,
        };
        Addresses { handle, batches }
    }

    /// Adds the address; an address that is already there is success. IPv6
    /// addresses are added without duplicate address detection so they can
    /// be used (and announced) at once.
    pub async fn add(&self, spec: &AddressSpec) -> Result<(), SysError> {
        let mut results = self.add_all(std::slice::from_ref(spec)).await;
        results.pop().unwrap_or(Ok(()))
    }

    /// Adds every address in one batch: all requests are sent before any
    /// answer is awaited. Returns one result per address, in order; an address
    /// that is already there is success, as with [`Addresses::add`].
    pub async fn add_all(&self, specs: &[AddressSpec]) -> Vec<Result<(), SysError>> {
        let requests = specs.iter().map(|spec| self.add_request(spec));
        let answers = self.send_batch(requests.collect()).await;
        self.results(specs, answers, ("adding", "to"), &[libc::EEXIST])
            .await
    }

    /// Removes the address; an address that is already gone is success.
    pub async fn remove(&self, spec: &AddressSpec) -> Result<(), SysError> {
        let mut results = self.remove_all(std::slice::from_ref(spec)).await;
        results.pop().unwrap_or(Ok(()))
    }

    /// Removes every address in one batch, like [`Addresses::add_all`]; an
    /// address that is already gone is success.
    pub async fn remove_all(&self, specs: &[AddressSpec]) -> Vec<Result<(), SysError>> {
        let requests = specs.iter().map(remove_request);
        let answers = self.send_batch(requests.collect()).await;
        self.results(specs, answers, ("removing", "from"), GONE)
            .await
    }

    /// Adds (`add`) or removes addresses, routes and rules in one batch: on the way up the
    /// addresses first, then the routes (which may use them as source), then the rules; on
    /// the way down the other way round. Returns one result per item, in the order given
    /// (addresses, routes, rules); something already there (or already gone) is success.
    pub async fn apply(
        &self,
        add: bool,
        addresses: &[AddressSpec],
        routes: &[RouteSpec],
        rules: &[RuleSpec],
    ) -> Vec<Result<(), SysError>> {
        let address_requests = addresses.iter().map(|spec| {
            if add {
                self.add_request(spec)
            } else {
                remove_request(spec)
            }
        });
        let route_requests = routes.iter().map(|r| route_request(r, add));
        let rule_requests = rules.iter().map(|r| rule_request(r, add));
        let mut requests: Vec<_> = address_requests.chain(route_requests).collect();
        if add {
            requests.extend(rule_requests);
        } else {
            let mut down: Vec<_> = rule_requests.collect();
            down.extend(requests.drain(..).rev());
            requests = down;
        }
        let mut answers = self.send_batch(requests).await;
        if !add {
            // Back to the order given: rules were sent first, addresses and routes reversed.
            let rest = answers.split_off(rules.len());
            let rule_answers = std::mem::replace(&mut answers, rest);
            answers.reverse();
            answers.extend(rule_answers);
        }
        let rule_answers = answers.split_off(addresses.len() + routes.len());
        let route_answers = answers.split_off(addresses.len());
        let (verb, prep, harmless): (_, _, &[i32]) = if add {
            ("adding", "to", &[libc::EEXIST])
        } else {
            ("removing", "from", GONE)
        };
        let mut out = self
            .results(addresses, answers, (verb, prep), harmless)
            .await;
        // Already there, or already gone: a missing route answers ESRCH, a missing rule ENOENT.
        let (route_done, rule_done) = if add {
            (libc::EEXIST, libc::EEXIST)
        } else {
            (libc::ESRCH, libc::ENOENT)
        };
        let checked = |what: &dyn std::fmt::Display, answer, done| match answer {
            Err(e) if netlink_errno(&e) != Some(done) => {
                Err(SysError::netlink(format!("{verb} {what}"), e))
            }
            _ => Ok(()),
        };
        out.extend((routes.iter().zip(route_answers)).map(|(r, a)| checked(r, a, route_done)));
        out.extend((rules.iter().zip(rule_answers)).map(|(r, a)| checked(r, a, rule_done)));
        out
    }

    /// The request adding `spec` (without duplicate address detection for IPv6).
    fn add_request(&self, spec: &AddressSpec) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut req = self
            .handle
            .address()
            .add(spec.ifindex, spec.address, spec.prefix_len);
        fill_message(req.message_mut(), spec);
        request(
            RouteNetlinkMessage::NewAddress(req.message_mut().clone()),
            true,
        )
    }

    /// Sends the requests in one datagram and returns each one's answer, in
    /// request order. The kernel handles the messages of a datagram in order
    /// and acknowledges each (an error does not stop the ones after it), so
    /// the n-th answer belongs to the n-th request; the sequence numbers,
    /// consecutive within a batch, confirm it.
    async fn send_batch(
        &self,
        requests: Vec<NetlinkMessage<RouteNetlinkMessage>>,
    ) -> Vec<Result<(), rtnetlink::Error>> {
        let count = requests.len();
        let mut answers: Vec<Result<(), rtnetlink::Error>> =
            vec![Err(rtnetlink::Error::RequestFailed); count];
        let Some(batches) = &self.batches else {
            return self.send_one_by_one(requests).await;
        };
        if count == 0 {
            return answers;
        }
        let Ok(mut stream) = batches.request_batch(requests, SocketAddr::new(0, 0)) else {
            return answers;
        };
        let mut first = None;
        while let Some(message) = stream.next().await {
            let sequence = message.header.sequence_number;
            let base = *first.get_or_insert(sequence);
            let Some(slot) = answers.get_mut(sequence.wrapping_sub(base) as usize) else {
                continue;
            };
            *slot = match message.payload {
                NetlinkPayload::Error(e) if e.code.is_none() => Ok(()),
                NetlinkPayload::Error(e) => Err(rtnetlink::Error::NetlinkError(e)),
                _ => Err(rtnetlink::Error::UnexpectedMessage(message)),
            };
        }
        answers
    }

    /// Without the batch connection: every request queued on the shared
    /// connection first, then the answers awaited in order (that connection
    /// passes on errors only, so a request that ends without one succeeded).
    async fn send_one_by_one(
        &self,
        requests: Vec<NetlinkMessage<RouteNetlinkMessage>>,
    ) -> Vec<Result<(), rtnetlink::Error>> {
        let mut handle = self.handle.clone();
        let streams: Vec<_> = requests.into_iter().map(|r| handle.request(r)).collect();
        let mut answers = Vec::with_capacity(streams.len());
        for stream in streams {
            answers.push(match stream {
                Ok(mut stream) => {
                    let mut answer = Ok(());
                    while let Some(message) = stream.next().await {
                        if let NetlinkPayload::Error(e) = message.payload {
                            if e.code.is_some() {
                                answer = Err(rtnetlink::Error::NetlinkError(e));
                            }
                        }
                    }
                    answer
                }
                Err(e) => Err(e),
            });
        }
        answers
    }

    /// Turns the kernel's answers into results naming the operation and the
    /// object; `harmless` are the errnos that mean "already done".
    async fn results(
        &self,
        specs: &[AddressSpec],
        answers: Vec<Result<(), rtnetlink::Error>>,
        (verb, prep): (&str, &str),
        harmless: &[i32],
    ) -> Vec<Result<(), SysError>> {
        let mut out = Vec::with_capacity(specs.len());
        for (spec, answer) in specs.iter().zip(answers) {
            out.push(match answer {
                Ok(()) => Ok(()),
                Err(e) if netlink_errno(&e).is_some_and(|n| harmless.contains(&n)) => Ok(()),
                Err(e) => Err(self.error(verb, prep, spec, e).await),
            });
        }
        out
    }

    /// Whether the address (same prefix length) is configured on the interface.
    pub async fn present(&self, spec: &AddressSpec) -> Result<bool, SysError> {
        let mut req = self
            .handle
            .address()
            .get()
            .set_link_index_filter(spec.ifindex);
        req.message_mut().header.family = family(spec.address);
        let mut stream = req.execute();
        loop {
            match stream.try_next().await {
                Ok(Some(msg)) => {
                    if msg.header.prefix_len == spec.prefix_len
                        && message_address(&msg) == Some(spec.address)
                    {
                        return Ok(true);
                    }
                }
                Ok(None) => return Ok(false),
                Err(e) => return Err(self.error("looking for", "on", spec, e).await),
            }
        }
    }

    async fn error(
        &self,
        verb: &str,
        prep: &str,
        spec: &AddressSpec,
        e: rtnetlink::Error,
    ) -> SysError {
        let dev = describe_index(&self.handle, spec.ifindex).await;
        SysError::netlink(format!("{verb} {spec} {prep} {dev}"), e)
    }
}

/// The request removing `spec`.
fn remove_request(spec: &AddressSpec) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = AddressMessage::default();
    msg.header.family = family(spec.address);
    msg.header.prefix_len = spec.prefix_len;
    msg.header.index = spec.ifindex;
    msg.attributes.push(AddressAttribute::Local(spec.address));
    if spec.address.is_ipv4() {
        msg.attributes.push(AddressAttribute::Address(spec.address));
    }
    request(RouteNetlinkMessage::DelAddress(msg), false)
}

/// `payload` as a request of a batch: acknowledged, and when it adds (`add`), an error if
/// the object is there already (the batch counts that answer as success).
pub(crate) fn request(
    payload: RouteNetlinkMessage,
    add: bool,
) -> NetlinkMessage<RouteNetlinkMessage> {
    let mut msg = NetlinkMessage::from(payload);
    msg.header.flags = if add {
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_EXCL | NLM_F_CREATE
    } else {
        NLM_F_REQUEST | NLM_F_ACK
    };
    msg
}

fn family(a: IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Applies label, broadcast, scope and (for IPv6) NODAD to a new-address message.
fn fill_message(msg: &mut AddressMessage, spec: &AddressSpec) {
    if let Some(scope) = spec.scope {
        msg.header.scope = AddressScope::from(scope);
    }
    match spec.address {
        IpAddr::V4(_) => {
            if let Some(brd) = spec.broadcast {
                msg.attributes
                    .retain(|a| !matches!(a, AddressAttribute::Broadcast(_)));
                msg.attributes.push(AddressAttribute::Broadcast(brd));
            }
            if let Some(label) = &spec.label {
                msg.attributes.push(AddressAttribute::Label(label.clone()));
            }
        }
        IpAddr::V6(_) => {
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
}
