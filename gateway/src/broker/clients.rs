//! The connected clients: who they are, where from, and which consumer groups they joined.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use parking_lot::RwLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub id: u32,
    pub user_id: Option<u32>,
    pub address: SocketAddr,
    pub transport: &'static str,
    /// (stream id, topic id, group id)
    pub groups: Vec<(u32, u32, u32)>,
}

#[derive(Debug, Default)]
pub struct Clients {
    next_id: AtomicU32,
    clients: RwLock<BTreeMap<u32, ClientInfo>>,
}

impl Clients {
    pub fn connect(&self, address: SocketAddr, transport: &'static str) -> u32 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.clients.write().insert(
            id,
            ClientInfo {
                id,
                user_id: None,
                address,
                transport,
                groups: Vec::new(),
            },
        );
        id
    }

    pub fn disconnect(&self, id: u32) {
        self.clients.write().remove(&id);
    }

    pub fn set_user(&self, id: u32, user_id: Option<u32>) {
        if let Some(c) = self.clients.write().get_mut(&id) {
            c.user_id = user_id;
        }
    }

    /// The user connection `id` is logged in as.
    pub fn user_of(&self, id: u32) -> Option<u32> {
        self.clients.read().get(&id).and_then(|c| c.user_id)
    }

    /// Logs connection `id` in as `user_id` if `still_valid` holds, checked under the registry's
    /// lock so that [`Clients::end_sessions`] cannot run between the check and the login.
    pub fn log_in_if(&self, id: u32, user_id: u32, still_valid: impl FnOnce() -> bool) -> bool {
        let mut clients = self.clients.write();
        let Some(c) = clients.get_mut(&id) else {
            return false;
        };
        if !still_valid() {
            return false;
        }
        c.user_id = Some(user_id);
        true
    }

    /// Logs out every connection logged in as `user_id` except `keep`; returns how many.
    pub fn end_sessions(&self, user_id: u32, keep: u32) -> usize {
        let mut ended = 0;
        for c in self.clients.write().values_mut() {
            if c.user_id == Some(user_id) && c.id != keep {
                c.user_id = None;
                ended += 1;
            }
        }
        ended
    }

    pub fn joined(&self, id: u32, group: (u32, u32, u32)) {
        if let Some(c) = self.clients.write().get_mut(&id) {
            if !c.groups.contains(&group) {
                c.groups.push(group);
            }
        }
    }

    pub fn left(&self, id: u32, group: (u32, u32, u32)) {
        if let Some(c) = self.clients.write().get_mut(&id) {
            c.groups.retain(|g| *g != group);
        }
    }

    pub fn get(&self, id: u32) -> Option<ClientInfo> {
        self.clients.read().get(&id).cloned()
    }

    pub fn list(&self) -> Vec<ClientInfo> {
        self.clients.read().values().cloned().collect()
    }

    pub fn count(&self) -> usize {
        self.clients.read().len()
    }
}
