//! Connection caps of one door: connections open at once, in all and from one IP address
//! (Kafka's `max.connections` and `max.connections.per.ip`). The accept loop takes a slot for
//! each connection and closes a connection that finds no slot; the slot is given back when the
//! connection's task ends. Addresses are counted by [`address_key`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use parking_lot::Mutex;

/// The address a per-address limit applies to (connection caps, the request budget's share, the
/// peer log): IPv4 as is, also when mapped into IPv6; IPv6 by its /64 network, since one host
/// commonly holds a whole /64 and could otherwise open connections from as many addresses as it
/// likes. The login limiter (`broker::logins`) keys addresses by it too.
pub fn address_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Why a connection was not admitted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverCap {
    #[error("connection closed: the door has its maximum of {0} connections (max_connections)")]
    Door(u32),
    #[error("connection closed: this address has its maximum of {0} connections (max_connections_per_ip)")]
    Address(u32),
}

#[derive(Debug, Default)]
struct Open {
    total: u32,
    /// Only addresses with open connections, so at most `max_connections` entries.
    by_address: HashMap<IpAddr, u32>,
}

/// One door's caps and its open connections.
#[derive(Debug)]
pub struct ConnectionCaps {
    max_connections: u32,
    max_per_address: u32,
    open: Mutex<Open>,
}

impl ConnectionCaps {
    pub fn new(max_connections: u32, max_per_address: u32) -> Arc<ConnectionCaps> {
        Arc::new(ConnectionCaps {
            max_connections,
            max_per_address,
            open: Mutex::new(Open::default()),
        })
    }

    /// Takes a slot for a connection from `peer`, if both caps allow it.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, OverCap> {
        let address = address_key(peer);
        let mut open = self.open.lock();
        if open.total >= self.max_connections {
            return Err(OverCap::Door(self.max_connections));
        }
        let from_address = open.by_address.get(&address).copied().unwrap_or(0);
        if from_address >= self.max_per_address {
            return Err(OverCap::Address(self.max_per_address));
        }
        open.total += 1;
        open.by_address.insert(address, from_address + 1);
        Ok(Slot {
            caps: Arc::clone(self),
            address,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        self.open.lock().total
    }
}

/// One admitted connection's place; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    caps: Arc<ConnectionCaps>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.by_address.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn caps_per_door_and_per_address_and_slots_come_back() {
        let caps = ConnectionCaps::new(3, 2);
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), OverCap::Address(2));
        let _b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b).unwrap_err(), OverCap::Door(3));
        assert_eq!(caps.open(), 3);
        drop(a1);
        assert_eq!(caps.open(), 2);
        let _a3 = caps.admit(a).unwrap();
        assert_eq!(caps.open.lock().by_address.len(), 2);
    }

    #[test]
    fn one_ipv6_host_counts_as_its_64_and_mapped_ipv4_as_ipv4() {
        // Bound: max_connections_per_ip = 2 for a whole /64, whatever its last 64 bits.
        let caps = ConnectionCaps::new(100, 2);
        let host = |last: u16| IpAddr::from([0x2001, 0xdb8, 0, 1, last, 0, 0, last]);
        let _a = caps.admit(host(1)).unwrap();
        let _b = caps.admit(host(2)).unwrap();
        assert_eq!(caps.admit(host(3)).unwrap_err(), OverCap::Address(2));
        let other_net = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        let _c = caps.admit(other_net).unwrap();
        // ::ffff:10.0.0.1 is the same address as 10.0.0.1.
        let v4 = Ipv4Addr::new(10, 0, 0, 1);
        let _d = caps.admit(IpAddr::V4(v4)).unwrap();
        let _e = caps.admit(IpAddr::V6(v4.to_ipv6_mapped())).unwrap();
        assert_eq!(caps.admit(IpAddr::V4(v4)).unwrap_err(), OverCap::Address(2));
        assert_eq!(caps.open.lock().by_address.len(), 3);
        assert_eq!(
            address_key(host(7)),
            IpAddr::from([0x2001, 0xdb8, 0, 1, 0, 0, 0, 0])
        );
    }
}
