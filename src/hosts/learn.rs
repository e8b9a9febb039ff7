//! The capture thread's side of passive host names: reads each datagram of
//! a service that names hosts and writes the bindings it teaches into the
//! shared [`HostNames`].
//!
//! Input: [`NameDatagram`]s and parsed DNS responses (for PTR answers), in
//! capture order, with their capture time. Output: bindings; counts per
//! source and result. Invariants: the learner is the store's only writer;
//! a DHCP client's name from its REQUEST waits for the server's ACK (which
//! gives the address and lease) in a queue of at most [`MAX_PENDING`]
//! transactions (the oldest leaves first, counted as a bound hit); nothing
//! here allocates for a datagram that teaches nothing.

use crate::label::ByLabel;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use super::dhcp::{self, DHCP_ACK, DHCP_RELEASE, V6_RELEASE, V6_REPLY};
use super::kerberos::parse_as_req;
use super::names::{Bound, HostNames, Lifetime, NameSource, clean_name};
use super::nbns::{NbnsOp, parse_nbns};
use crate::decode::dns::{Rdata, Response, parse_response};
use crate::decode::{NameDatagram, NamePort};

/// DHCP transactions whose client name waits for the server's answer.
pub const MAX_PENDING: usize = 1024;

crate::label_set! {
    /// The `result` label of `tlscensus_host_name_messages_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum NameResult {
        /// A name was bound (or a binding refreshed or ended).
        Learned = "learned",
        /// A well-formed message that names no host (a query, a user principal,
        /// an ACK without a name).
        Nothing = "nothing",
        /// Could not be read.
        Malformed = "malformed",
    }
}

/// Counts kept between flushes to the metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NameStats {
    /// By source (`NameSource::index`) and result (`NameResult` order).
    pub messages: ByLabel<
        NameSource,
        ByLabel<NameResult, u64, { NameResult::ALL.len() }>,
        { NameSource::ALL.len() },
    >,
    /// Bindings not stored or replaced, and pending transactions dropped:
    /// `bound="host_names"` hits.
    pub bound_hits: u64,
}

struct Pending {
    xid: u32,
    client: u64,
    name: String,
}

pub struct NameLearner {
    names: Arc<HostNames>,
    pending4: VecDeque<Pending>,
    pending6: VecDeque<Pending>,
    ids: ahash::RandomState,
    pub stats: NameStats,
}

impl NameLearner {
    pub fn new(names: Arc<HostNames>) -> NameLearner {
        NameLearner {
            names,
            pending4: VecDeque::new(),
            pending6: VecDeque::new(),
            ids: ahash::RandomState::new(),
            stats: NameStats::default(),
        }
    }

    pub fn names(&self) -> &Arc<HostNames> {
        &self.names
    }

    fn count(&mut self, source: NameSource, r: NameResult) {
        self.stats.messages[source][r] += 1;
    }

    fn bind(
        &mut self,
        ip: IpAddr,
        raw: &[u8],
        source: NameSource,
        ts: u64,
        life: Lifetime,
        client: u64,
    ) -> bool {
        let Some(name) = clean_name(raw) else {
            return false;
        };
        if self.names.bind(ip, &name, source, ts, life, client) != Bound::Stored {
            self.stats.bound_hits += 1;
        }
        true
    }

    /// A client id (hardware address, DUID) as a non-zero 64-bit value.
    fn client_id(&self, id: &[u8]) -> u64 {
        self.ids.hash_one(id) | 1
    }

    /// Learns from one datagram at capture time `ts`. Out of line: the
    /// capture thread's per-segment closure calls it, and inlined there it
    /// slowed every TCP segment (callgrind).
    #[inline(never)]
    pub fn learn(&mut self, d: &NameDatagram<'_>, ts: u64) {
        let source = match d.kind {
            NamePort::Dhcp4 => NameSource::Dhcp,
            NamePort::Dhcp6 => NameSource::Dhcpv6,
            NamePort::Nbns => NameSource::Nbns,
            NamePort::Mdns => NameSource::Mdns,
            NamePort::Llmnr => NameSource::Llmnr,
            NamePort::Kerberos => NameSource::Kerberos,
        };
        // A source left out of --name-sources is not even parsed.
        if !self.names.uses(source) {
            return;
        }
        let (source, result) = match d.kind {
            NamePort::Dhcp4 => (NameSource::Dhcp, self.dhcp4(d.payload, ts)),
            NamePort::Dhcp6 => (NameSource::Dhcpv6, self.dhcp6(d.payload, ts)),
            NamePort::Nbns => (NameSource::Nbns, self.nbns(d.payload, ts)),
            NamePort::Mdns => (
                NameSource::Mdns,
                self.dns_names(d.payload, NameSource::Mdns, ts),
            ),
            NamePort::Llmnr => (
                NameSource::Llmnr,
                self.dns_names(d.payload, NameSource::Llmnr, ts),
            ),
            NamePort::Kerberos => (NameSource::Kerberos, self.kerberos(d, ts)),
        };
        self.count(source, result);
    }

    fn dhcp4(&mut self, p: &[u8], ts: u64) -> NameResult {
        let Ok(m) = dhcp::parse_dhcp4(p) else {
            return NameResult::Malformed;
        };
        let client = self.client_id(m.chaddr);
        let zero = Ipv4Addr::UNSPECIFIED;
        match (m.op, m.msg_type) {
            (1, Some(DHCP_RELEASE)) if m.ciaddr != zero => {
                self.names
                    .end(IpAddr::V4(m.ciaddr), NameSource::Dhcp, None, ts);
                NameResult::Learned
            }
            (1, Some(_)) => match m.name() {
                Some(name) => {
                    remember(&mut self.pending4, m.xid, client, name, &mut self.stats);
                    NameResult::Learned
                }
                None => NameResult::Nothing,
            },
            (2, Some(DHCP_ACK)) => {
                let ip = if m.yiaddr != zero { m.yiaddr } else { m.ciaddr };
                let pending = take(&mut self.pending4, m.xid, client);
                // The ACK's own name, else the client's; the ACK's domain
                // completes a bare host name.
                let name = m.name().or_else(|| {
                    let p = pending?;
                    match m.domain.map(String::from_utf8_lossy) {
                        Some(d) if !p.contains('.') && !d.trim_matches('\0').is_empty() => {
                            Some(format!("{p}.{}", d.trim_matches('\0')))
                        }
                        _ => Some(p),
                    }
                });
                // An ACK to an INFORM has no lease: the client owns the address.
                let life = m
                    .lease_secs
                    .map_or(Lifetime::Age, |s| Lifetime::Lease(u64::from(s)));
                match name {
                    Some(n)
                        if ip != zero
                            && self.bind(
                                IpAddr::V4(ip),
                                n.as_bytes(),
                                NameSource::Dhcp,
                                ts,
                                life,
                                client,
                            ) =>
                    {
                        NameResult::Learned
                    }
                    _ => NameResult::Nothing,
                }
            }
            _ => NameResult::Nothing,
        }
    }

    fn dhcp6(&mut self, p: &[u8], ts: u64) -> NameResult {
        let Ok(m) = dhcp::parse_dhcp6(p) else {
            return NameResult::Malformed;
        };
        let client = m.client_id.map_or(0, |id| self.client_id(id));
        match m.msg_type {
            V6_REPLY => {
                let pending = take(&mut self.pending6, m.txid, client);
                let Some(name) = m.fqdn.clone().or(pending) else {
                    return NameResult::Nothing;
                };
                let mut learned = false;
                for (addr, valid) in &m.addresses {
                    let life = Lifetime::Lease(u64::from(*valid));
                    learned |= self.bind(
                        IpAddr::V6(*addr),
                        name.as_bytes(),
                        NameSource::Dhcpv6,
                        ts,
                        life,
                        client,
                    );
                }
                if learned {
                    NameResult::Learned
                } else {
                    NameResult::Nothing
                }
            }
            V6_RELEASE => {
                for (addr, _) in &m.addresses {
                    self.names
                        .end(IpAddr::V6(*addr), NameSource::Dhcpv6, None, ts);
                }
                NameResult::Learned
            }
            _ => match m.fqdn {
                Some(name) if client != 0 => {
                    remember(&mut self.pending6, m.txid, client, name, &mut self.stats);
                    NameResult::Learned
                }
                _ => NameResult::Nothing,
            },
        }
    }

    fn nbns(&mut self, p: &[u8], ts: u64) -> NameResult {
        match parse_nbns(p) {
            Err(_) => NameResult::Malformed,
            Ok(None) => NameResult::Nothing,
            Ok(Some((_, entries))) if entries.is_empty() => NameResult::Nothing,
            Ok(Some((NbnsOp::Bind, entries))) => {
                for e in entries {
                    self.bind(
                        IpAddr::V4(e.addr),
                        e.name.as_bytes(),
                        NameSource::Nbns,
                        ts,
                        Lifetime::Age,
                        0,
                    );
                }
                NameResult::Learned
            }
            Ok(Some((NbnsOp::Release, entries))) => {
                for e in entries {
                    let name = clean_name(e.name.as_bytes());
                    self.names
                        .end(IpAddr::V4(e.addr), NameSource::Nbns, name.as_deref(), ts);
                }
                NameResult::Learned
            }
        }
    }

    /// mDNS and LLMNR responses: A/AAAA answers bind their owner name; a
    /// TTL of 0 (an mDNS goodbye) ends it.
    fn dns_names(&mut self, p: &[u8], source: NameSource, ts: u64) -> NameResult {
        let r = match parse_response(p) {
            Ok(r) => r,
            Err(crate::decode::dns::DnsError::NotAnswer) => return NameResult::Nothing,
            Err(_) => return NameResult::Malformed,
        };
        let mut learned = false;
        for a in &r.answers {
            if let Rdata::Addr(ip) = a.data {
                if a.ttl == 0 {
                    self.names.end(ip, source, Some(a.owner.as_str()), ts);
                    learned = true;
                } else {
                    learned |= self.bind(ip, a.owner.as_bytes(), source, ts, Lifetime::Age, 0);
                }
            }
        }
        if learned {
            NameResult::Learned
        } else {
            NameResult::Nothing
        }
    }

    /// PTR answers of a DNS response (from port 53).
    pub fn dns_ptr(&mut self, r: &Response, ts: u64) {
        if !self.names.uses(NameSource::DnsPtr) {
            return;
        }
        for a in &r.answers {
            if let Rdata::Ptr(target) = &a.data
                && let Some(ip) = reverse_address(&a.owner)
            {
                self.bind(
                    ip,
                    target.as_bytes(),
                    NameSource::DnsPtr,
                    ts,
                    Lifetime::Age,
                    0,
                );
                self.count(NameSource::DnsPtr, NameResult::Learned);
            }
        }
    }

    fn kerberos(&mut self, d: &NameDatagram<'_>, ts: u64) -> NameResult {
        match parse_as_req(d.payload, d.tcp) {
            Err(_) => NameResult::Malformed,
            Ok(None) => NameResult::Nothing,
            Ok(Some(req)) => match req.machine() {
                Some(host)
                    if self.bind(
                        d.src,
                        host.as_bytes(),
                        NameSource::Kerberos,
                        ts,
                        Lifetime::Age,
                        0,
                    ) =>
                {
                    NameResult::Learned
                }
                _ => NameResult::Nothing,
            },
        }
    }
}

fn remember(q: &mut VecDeque<Pending>, xid: u32, client: u64, name: String, stats: &mut NameStats) {
    q.retain(|p| !(p.xid == xid && p.client == client));
    if q.len() >= MAX_PENDING {
        q.pop_front();
        stats.bound_hits += 1;
    }
    q.push_back(Pending { xid, client, name });
}

fn take(q: &mut VecDeque<Pending>, xid: u32, client: u64) -> Option<String> {
    let i = q
        .iter()
        .position(|p| p.xid == xid && (client == 0 || p.client == client))?;
    q.remove(i).map(|p| p.name)
}

/// The address a reverse-DNS name stands for: `4.3.2.1.in-addr.arpa` or
/// the 32 nibbles of `ip6.arpa`.
pub fn reverse_address(owner: &str) -> Option<IpAddr> {
    if let Some(v4) = owner.strip_suffix(".in-addr.arpa") {
        let mut parts = [0u8; 4];
        let mut n = 0;
        for label in v4.split('.') {
            if n == 4
                || label.is_empty()
                || label.len() > 3
                || !label.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            parts[3 - n] = label.parse().ok()?;
            n += 1;
        }
        return (n == 4).then(|| IpAddr::from(parts));
    }
    let v6 = owner.strip_suffix(".ip6.arpa")?;
    let mut bytes = [0u8; 16];
    let mut n = 0;
    for label in v6.split('.') {
        let [c] = label.as_bytes() else {
            return None;
        };
        let nibble = char::from(*c).to_digit(16)? as u8;
        if n == 32 {
            return None;
        }
        // Least significant nibble first.
        let i = 31 - n;
        bytes[i / 2] |= if i % 2 == 0 { nibble << 4 } else { nibble };
        n += 1;
    }
    (n == 32).then(|| IpAddr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::names::NameSettings;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_address("4.3.2.10.in-addr.arpa"),
            Some("10.2.3.4".parse().unwrap())
        );
        assert_eq!(reverse_address("3.2.10.in-addr.arpa"), None);
        assert_eq!(reverse_address("256.3.2.10.in-addr.arpa"), None);
        assert_eq!(reverse_address("1.2.3.4.5.in-addr.arpa"), None);
        let v6 = "2.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa";
        assert_eq!(reverse_address(v6), Some("2001:db8::42".parse().unwrap()));
        assert_eq!(reverse_address("x.ip6.arpa"), None);
    }

    /// An LLMNR response (RFC 4795: DNS format, from port 5355) for
    /// WIN10-PC's A record binds the name; a malformed one is counted.
    #[test]
    fn llmnr_response() {
        let names = Arc::new(HostNames::new(&NameSettings::default()));
        let mut l = NameLearner::new(Arc::clone(&names));
        let mut m = vec![0x12, 0x34, 0x80, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
        let name = [8, b'W', b'I', b'N', b'1', b'0', b'-', b'P', b'C', 0];
        m.extend_from_slice(&name);
        m.extend_from_slice(&[0, 1, 0, 1]);
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 10, 0, 0, 42]);
        let d = NameDatagram {
            kind: NamePort::Llmnr,
            src: IpAddr::from([10, 0, 0, 42]),
            dst: IpAddr::from([10, 0, 0, 1]),
            payload: &m,
            tcp: false,
        };
        l.learn(&d, 5);
        let (n, src) = names.lookup(IpAddr::from([10, 0, 0, 42]), 6).unwrap();
        assert_eq!((&*n, src), ("win10-pc", NameSource::Llmnr));
        let bad = NameDatagram {
            payload: &m[..m.len() - 3],
            ..d
        };
        l.learn(&bad, 7);
        let llmnr = l.stats.messages[NameSource::Llmnr];
        assert_eq!(llmnr[NameResult::Learned], 1);
        assert_eq!(llmnr[NameResult::Malformed], 1);
    }

    #[test]
    fn dhcp_request_then_ack() {
        let names = Arc::new(HostNames::new(&NameSettings::default()));
        let mut l = NameLearner::new(Arc::clone(&names));
        let msg = |op: u8, t: u8, yiaddr: [u8; 4], opts: &[u8]| {
            let mut p = vec![0u8; 240];
            p[0] = op;
            p[2] = 6;
            p[4..8].copy_from_slice(&7u32.to_be_bytes());
            p[16..20].copy_from_slice(&yiaddr);
            p[28..34].copy_from_slice(&[2, 0, 0, 0, 0, 9]);
            p[236..240].copy_from_slice(&[99, 130, 83, 99]);
            p.extend_from_slice(&[53, 1, t]);
            p.extend_from_slice(opts);
            p.push(255);
            p
        };
        fn at(p: &[u8]) -> NameDatagram<'_> {
            NameDatagram {
                kind: NamePort::Dhcp4,
                src: IpAddr::from([0, 0, 0, 0]),
                dst: IpAddr::from([255, 255, 255, 255]),
                payload: p,
                tcp: false,
            }
        }
        let req = msg(1, 3, [0; 4], &[12, 4, b'P', b'C', b'0', b'9']);
        l.learn(&at(&req), 1);
        let ack = msg(
            2,
            5,
            [10, 0, 0, 9],
            &[51, 4, 0, 0, 0, 60, 15, 2, b'e', b'x'],
        );
        l.learn(&at(&ack), 2);
        let (name, src) = names.lookup(IpAddr::from([10, 0, 0, 9]), 3).unwrap();
        assert_eq!((&*name, src), ("pc09.ex", NameSource::Dhcp));
        assert!(
            names
                .lookup(IpAddr::from([10, 0, 0, 9]), 62_000_000_001)
                .is_none()
        );
        assert_eq!(l.stats.messages[NameSource::ALL[0]][NameResult::Learned], 2);
        // Garbage is counted, never bound.
        l.learn(&at(&[1, 2, 3]), 4);
        assert_eq!(
            l.stats.messages[NameSource::ALL[0]][NameResult::Malformed],
            1
        );
    }
}
