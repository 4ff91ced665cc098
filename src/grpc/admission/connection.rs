//! Slots per client connection, keyed by the peer's address (unique per
//! open TCP connection to one listener).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
};

use http_body_util::BodyExt;
use tonic::{
    body::Body,
    transport::server::{TcpConnectInfo, TlsConnectInfo},
};

/// The peer address tonic records for a request served over TCP, with or
/// without TLS.
pub fn peer<B>(request: &http::Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    extensions
        .get::<TcpConnectInfo>()
        .or_else(|| {
            extensions
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .map(TlsConnectInfo::get_ref)
        })
        .and_then(TcpConnectInfo::remote_addr)
}

/// Requests in flight per connection, at most `limit` each.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    limit: usize,
    in_flight: Arc<Mutex<HashMap<SocketAddr, usize>>>,
}

impl ConnectionSlots {
    /// At most `limit` (at least one) per connection.
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            in_flight: Arc::default(),
        }
    }

    /// A slot of `peer`'s connection, or `None` when all are taken.
    pub fn take(&self, peer: SocketAddr) -> Option<Slot> {
        // Counting cannot leave the map inconsistent, so a poisoned lock
        // (a panic elsewhere while holding it) is still safe to use.
        let mut in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = in_flight.entry(peer).or_default();
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.in_flight.clone(),
            peer,
        })
    }
}

/// One request's place in its connection's count; freed when dropped.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<Mutex<HashMap<SocketAddr, usize>>>,
    peer: SocketAddr,
}

impl Slot {
    /// `body`, holding this slot until the body is finished or dropped.
    pub fn hold(self, body: Body) -> Body {
        Body::new(body.map_frame(move |frame| {
            let _held = &self;
            frame
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = in_flight.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                // Closed connections leave nothing behind.
                in_flight.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_gets_its_limit_and_slots_come_back() {
        let slots = ConnectionSlots::new(2);
        let a: SocketAddr = ([127, 0, 0, 1], 1000).into();
        let b: SocketAddr = ([127, 0, 0, 1], 1001).into();
        let first = slots.take(a).expect("first");
        let _second = slots.take(a).expect("second");
        assert!(slots.take(a).is_none(), "a third on the same connection");
        assert!(slots.take(b).is_some(), "another connection is unaffected");
        drop(first);
        assert!(slots.take(a).is_some(), "a freed slot is reusable");
    }

    #[test]
    fn finished_connections_are_forgotten() {
        let slots = ConnectionSlots::new(1);
        let a: SocketAddr = ([127, 0, 0, 1], 1000).into();
        drop(slots.take(a));
        assert!(slots.in_flight.lock().expect("lock").is_empty());
    }
}
