//! Accept-time protection: pending handshakes per peer, trusted proxies, and refusal logs that
//! cannot flood the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A network in CIDR form, e.g. `10.0.0.0/8` or `2001:db8::/32`; a bare address is a /32
/// (IPv4) or /128 (IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `addr` or `addr/prefix`; `None` if it is neither.
    pub fn parse(text: &str) -> Option<IpNet> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(IpNet { addr, prefix })
    }

    /// Whether `ip` is in the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Counts each peer's connections still in the HTTP phase, and refuses a peer at its cap.
pub(crate) struct PendingPerPeer {
    counts: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
}

impl PendingPerPeer {
    pub(crate) fn new(cap: usize) -> Arc<PendingPerPeer> {
        Arc::new(PendingPerPeer {
            counts: Mutex::default(),
            cap,
        })
    }

    /// A place for one more pending handshake of `peer`, or `None` at its cap.
    pub(crate) fn try_acquire(self: &Arc<Self>, peer: IpAddr) -> Option<PeerPermit> {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(peer).or_default();
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PeerPermit {
            pending: Arc::clone(self),
            peer,
        })
    }
}

/// One pending handshake of a peer; dropped when its HTTP phase ends.
pub(crate) struct PeerPermit {
    pending: Arc<PendingPerPeer>,
    peer: IpAddr,
}

impl Drop for PeerPermit {
    fn drop(&mut self) {
        let mut counts = self
            .pending
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

/// Logs connections refused at accept at most once per interval, with how many were refused
/// since the last line: a flood of refusals is visible without flooding the log.
pub(crate) struct RefusalLog {
    refused: AtomicU64,
    last: Mutex<Option<Instant>>,
    interval: Duration,
}

impl RefusalLog {
    pub(crate) fn new(interval: Duration) -> RefusalLog {
        RefusalLog {
            refused: AtomicU64::new(0),
            last: Mutex::new(None),
            interval,
        }
    }

    /// Counts one refusal; logs (a warning) if the last line is older than the interval.
    pub(crate) fn refused(&self, reason: &'static str, peer: IpAddr) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            return;
        }
        *last = Some(now);
        let refused = self.refused.swap(0, Ordering::Relaxed);
        tracing::warn!(
            target: "agentwire::server",
            reason,
            peer = %peer,
            refused,
            "connections refused at accept (this line repeats at most every {:?})",
            self.interval
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let net = IpNet::parse("10.1.0.0/16").expect("cidr");
        assert!(net.contains("10.1.200.3".parse().expect("ip")));
        assert!(!net.contains("10.2.0.1".parse().expect("ip")));
        assert!(net.contains("::ffff:10.1.0.9".parse().expect("mapped")));
        let one = IpNet::parse("127.0.0.1").expect("address");
        assert_eq!(one.to_string(), "127.0.0.1/32");
        assert!(!one.contains("127.0.0.2".parse().expect("ip")));
        assert!(
            IpNet::parse("0.0.0.0/0")
                .expect("all")
                .contains("8.8.8.8".parse().expect("ip"))
        );
        let v6 = IpNet::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains("2001:db8:1::5".parse().expect("ip")));
        assert!(!v6.contains("10.0.0.1".parse().expect("ip")));
        for bad in ["", "10.0.0.0/33", "host", "1.2.3.4/", "::/129"] {
            assert!(IpNet::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_peer_at_its_cap_is_refused_and_others_are_not() {
        let pending = PendingPerPeer::new(2);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let first = pending.try_acquire(a).expect("one");
        let _second = pending.try_acquire(a).expect("two");
        assert!(pending.try_acquire(a).is_none());
        assert!(pending.try_acquire(b).is_some());
        drop(first);
        assert!(pending.try_acquire(a).is_some());
    }
}
