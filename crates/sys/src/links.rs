//! Link up/down events: a VRRP instance whose interface loses carrier must
//! go to FAULT, and come back when it returns.
//!
//! Uses its own rtnetlink connection subscribed to RTNLGRP_LINK, because
//! the kernel does not echo changes back on a request connection. The
//! current state of every link is read once at start, so only real changes
//! are reported, each index at most once per transition.

use std::collections::HashMap;

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::AsyncSocket;
use rtnetlink::MulticastGroup;
use tokio::sync::mpsc;

use crate::error::SysError;
use crate::interfaces::{link_is_up, link_name};

/// An interface changed between usable and unusable for VRRP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The interface is administratively up and running again.
    Up {
        /// Interface index.
        index: u32,
        /// Interface name at the time of the event.
        name: String,
    },
    /// The interface went down, lost carrier or was deleted.
    Down {
        /// Interface index.
        index: u32,
        /// Interface name at the time of the event.
        name: String,
    },
}

/// Receive buffer of the notification socket, in bytes.
const EVENT_BUFFER: libc::c_int = 1 << 20;
/// How many events may wait for the daemon before the watcher pauses.
const QUEUE: usize = 256;

/// Starts watching links in the calling thread's network namespace. Events
/// arrive on the returned channel; dropping it stops the watcher.
pub async fn watch_links() -> Result<mpsc::Receiver<LinkEvent>, SysError> {
    let (mut conn, handle, mut messages) =
        rtnetlink::new_multicast_connection(&[MulticastGroup::Link]).map_err(|e| {
            SysError::socket("opening rtnetlink link-event connection (RTNLGRP_LINK)", e)
        })?;
    // A burst of changes (many VLANs flapping with their parent) must not
    // overflow the socket: a lost notification would leave an index stale.
    conn.socket_mut()
        .socket_mut()
        .set_rx_buf_sz(EVENT_BUFFER)
        .map_err(|e| SysError::socket("setting SO_RCVBUF on rtnetlink link-event socket", e))?;
    let conn = tokio::spawn(conn);

    // Subscribed first, dumped second: a change racing the dump shows up as
    // a notification afterwards and the dedup below absorbs repeats.
    let mut state: HashMap<u32, bool> = HashMap::new();
    let dump: Result<Vec<LinkMessage>, _> = handle.link().get().execute().try_collect().await;
    match dump {
        Ok(links) => {
            for link in links {
                state.insert(link.header.index, link_is_up(&link));
            }
        }
        Err(e) => {
            conn.abort();
            return Err(SysError::netlink("listing links to start watching them", e));
        }
    }

    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        // Keep the handle alive with the connection it belongs to.
        let _handle = handle;
        loop {
            let message = tokio::select! {
                m = messages.next() => m,
                () = tx.closed() => break,
            };
            let Some((message, _)) = message else {
                tracing::warn!("rtnetlink link-event connection closed");
                break;
            };
            let (link, deleted) = match message.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => (l, false),
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => (l, true),
                _ => continue,
            };
            if let Some(event) = transition(&mut state, &link, deleted) {
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        }
        conn.abort();
    });
    Ok(rx)
}

/// Updates `state` with one link message and returns the event to report, if
/// the link's up/down state changed. Unknown links start as down, so a new
/// interface that comes up is reported as Up.
fn transition(
    state: &mut HashMap<u32, bool>,
    link: &LinkMessage,
    deleted: bool,
) -> Option<LinkEvent> {
    let index = link.header.index;
    let up = !deleted && link_is_up(link);
    let was_up = if deleted {
        state.remove(&index).unwrap_or(false)
    } else {
        state.insert(index, up).unwrap_or(false)
    };
    if up == was_up {
        return None;
    }
    let name = link_name(link).unwrap_or_else(|| format!("index {index}"));
    Some(if up {
        LinkEvent::Up { index, name }
    } else {
        LinkEvent::Down { index, name }
    })
}
