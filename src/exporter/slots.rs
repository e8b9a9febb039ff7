//! The connection slots: at most so many connections, so many per peer,
//! and whom a new connection evicts.

use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use super::*;

/// A connection's phase, for choosing whom to evict: nothing of its
/// request head read yet, its answer being made, or part of its head read
/// (a real client sends its whole head at once, so a connection that sent
/// only part of it is a slow one).
pub(super) const PHASE_HEAD: u8 = 0;
pub(super) const PHASE_ANSWER: u8 = 1;
pub(super) const PHASE_PARTIAL: u8 = 2;

/// Who goes first: a partial head (read, or waiting in a plain-HTTP socket
/// whose thread has not read it yet), then a connection that sent nothing
/// yet, then one being answered; `None`: never (its whole request head
/// waits in its socket).
fn eviction_rank(slot: &Slot) -> Option<u8> {
    let phase = slot.phase.load(Ordering::Relaxed);
    if phase == PHASE_ANSWER {
        return Some(2);
    }
    match waiting(&slot.socket) {
        Waiting::Head => None,
        _ if phase == PHASE_PARTIAL => Some(0),
        // In TLS, what waits is the handshake, which a real client sends
        // at once too.
        Waiting::Part if !slot.tls => Some(0),
        _ => Some(1),
    }
}

/// One admitted connection.
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) peer: IpAddr,
    pub(super) since: Instant,
    pub(super) phase: Arc<AtomicU8>,
    /// A handle on the socket, to see what waits in it and to shut it down
    /// when evicted.
    pub(super) socket: TcpStream,
    /// Served over TLS: the bytes waiting are not a request head.
    pub(super) tls: bool,
}

#[derive(Default)]
pub(super) struct Slots {
    pub(super) open: Vec<Slot>,
    pub(super) next_id: u64,
}

impl Slots {
    /// Makes room for a connection from `peer`: if a cap is reached, evicts
    /// the oldest connection (of that peer when the peer's cap is the one
    /// reached), those that sent part of their request head first (read by
    /// their thread or still waiting in their socket), then those that sent
    /// nothing yet (a real client's head may be in flight), then those
    /// being answered; a connection whose whole request head already waits
    /// in its socket (a real client whose thread has not run yet, or the
    /// rest of a head its thread has begun to read) is never chosen.
    /// `Some(evicted)` when there is room, `None` when no connection may be
    /// evicted (the newcomer is refused).
    pub(super) fn make_room(&mut self, peer: IpAddr) -> Option<u64> {
        let mut evicted = 0;
        loop {
            let mine = self.open.iter().filter(|s| s.peer == peer).count();
            let over_peer = mine >= MAX_PER_PEER;
            if !over_peer && self.open.len() < MAX_CONNECTIONS {
                return Some(evicted);
            }
            let victim = self
                .open
                .iter()
                .enumerate()
                .filter(|(_, s)| !over_peer || s.peer == peer)
                .filter_map(|(i, s)| Some((eviction_rank(s)?, s.since, i)))
                .min()
                .map(|(_, _, i)| i);
            let i = victim?;
            let s = self.open.swap_remove(i);
            let _ = s.socket.shutdown(Shutdown::Both);
            evicted += 1;
        }
    }

    pub(super) fn release(&mut self, id: u64) {
        if let Some(i) = self.open.iter().position(|s| s.id == id) {
            self.open.swap_remove(i);
        }
    }
}

/// What waits unread in a socket.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Waiting {
    Nothing,
    /// Bytes, but not a whole plain-HTTP request head.
    Part,
    /// A whole plain-HTTP request head.
    Head,
}

/// What waits unread in the socket (peeked without blocking and without
/// disturbing the reader).
pub(super) fn waiting(socket: &TcpStream) -> Waiting {
    use nix::sys::socket::{MsgFlags, recv};
    use std::os::fd::AsRawFd;
    let mut buf = [0u8; 2048];
    match recv(
        socket.as_raw_fd(),
        &mut buf,
        MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT,
    ) {
        Ok(0) | Err(_) => Waiting::Nothing,
        Ok(n) if find_head_end(&buf[..n]).is_some() => Waiting::Head,
        Ok(_) => Waiting::Part,
    }
}
