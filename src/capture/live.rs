//! Live capture from network interfaces through libpcap.
//!
//! Input: interface names and capture options. Output: frames handed to a
//! callback in batches (`pcap_dispatch` in non-blocking mode), per-interface
//! kernel statistics, and interface state changes. Invariants: reading never
//! blocks longer than the poll interval, so the capture thread can flush
//! batches, refresh statistics and notice a stop request; an interface that
//! goes down or disappears is reported and reopened when it comes back, never
//! a reason to stop the other interfaces.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pcap::{Active, Capture};

use super::Frame;
use super::fanout::FanoutGroup;
use super::skip::KernelSkip;
use crate::decode::{TunnelPorts, access};
use crate::error::SetupError;

/// The default capture filter: every TCP packet (any port; TLS is found by
/// content), IPv6 packets whose first header is an extension header (TCP may
/// follow it, or a fragment of it), the tunnels tlscensus unwraps (VXLAN and
/// Geneve on `ports`, GRE, IP-in-IP, MPLS), DNS responses (UDP from port 53;
/// DNS over TCP is TCP), non-first fragments of UDP (a tunnel's outer packets
/// may be fragmented), and TCP, DNS and tunnels inside one or
/// two VLAN tags that the kernel did not strip. Non-first IPv4 fragments of TCP
/// match `tcp` because the protocol field is in every fragment's IP header.
/// The `vlan` keyword shifts the offsets of everything after it, so the
/// untagged cases come first and the second tag is nested inside the first;
/// MPLS is matched by ethertype, which shifts nothing.
///
/// Untagged bare ACKs (TCP with no payload and no SYN, FIN or RST, in an
/// unfragmented IPv4 packet or right after an IPv6 header) are left in the
/// kernel: tlscensus has no use for them, they are about a third of the
/// packets of bulk transfers, and on a bulk mix leaving them there saves
/// 12-22% of the sensor's CPU (scripts/live-rate.sh).
pub fn default_bpf(ports: &TunnelPorts) -> String {
    let mut udp_ports: Vec<String> = ports
        .vxlan()
        .iter()
        .chain(ports.geneve())
        .chain(&[access::GTPU_PORT])
        .map(|p| format!("udp dst port {p}"))
        .collect();
    udp_ports.push(format!("udp port {}", access::CAPWAP_DATA_PORT));
    let tunnels = format!(
        "udp src port 53 or {} or ip proto 47 or ip proto 4 or ip proto 41 or ip6 proto 47 or ip6 proto 4 \
         or ip6 proto 41 or (ip proto 17 and ip[6:2] & 0x1fff != 0)",
        udp_ports.join(" or ")
    );
    // PPPoE sessions by their ethertype (libpcap's `pppoes` shifts the
    // offsets of everything after it, so it cannot sit beside the rest).
    let pppoe = format!(
        "ether proto {:#06x}",
        crate::decode::link::ETHERTYPE_PPPOE_SESSION
    );
    format!(
        "(tcp and not ({BARE_ACK_V4}) and not ({BARE_ACK_V6})) or {tunnels} or ether proto 0x8847 or ether proto 0x8848 \
         or {pppoe} or (ip6 and not ip6[6] == 6 and not ip6[6] == 17 and not ip6[6] == 58) \
         or (vlan and (tcp or {tunnels} or {pppoe} or (ip6 and ip6[6] == 44) \
         or (vlan and (tcp or {tunnels} or {pppoe} or (ip6 and ip6[6] == 44)))))"
    )
}

/// An IPv4 bare ACK: not a fragment, no SYN/FIN/RST, the IP total length
/// exactly the IP and TCP headers.
pub const BARE_ACK_V4: &str = "ip and ip[6:2] & 0x3fff = 0 and tcp[13] & 7 = 0 \
     and ip[2:2] = ((ip[0] & 0xf) << 2) + ((tcp[12] & 0xf0) >> 2)";
/// An IPv6 bare ACK: TCP right after the fixed header, no SYN/FIN/RST, the
/// payload length exactly the TCP header.
pub const BARE_ACK_V6: &str =
    "ip6 and ip6[6] = 6 and ip6[53] & 7 = 0 and ip6[4:2] = ((ip6[52] & 0xf0) >> 2)";

/// libpcap read timeout, and the longest the capture loop waits for packets.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub promisc: bool,
    pub snaplen: i32,
    pub buffer_bytes: i32,
    pub bpf: String,
}

/// Kernel counters of one interface, cumulative since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// What happened to an interface during a read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IfaceEvent {
    /// Reading failed: the interface went down or disappeared.
    Down(String),
    /// It is back and capture has resumed.
    Up,
    /// Reopening a re-created interface failed (it stays down); reported once per reason.
    ReopenFailed(String),
}

/// One interface's capture handle.
pub struct LiveSource {
    pub name: String,
    opts: LiveOptions,
    cap: Option<Capture<Active>>,
    linktype: i32,
    /// The interface index the handle is bound to (a re-created interface gets a new one).
    ifindex: Option<u32>,
    /// Reported down (by libpcap or by the link state) and not yet back.
    down: bool,
    /// Statistics of handles closed before the current one.
    carried: KernelStats,
    /// `--capture-threads` above 1: the interface's fanout group.
    fanout: Option<std::sync::Arc<FanoutGroup>>,
    /// `--kernel-skip-flows` above 0: the program that replaces the filter.
    skip: Option<std::sync::Arc<KernelSkip>>,
    last_reopen: Option<Instant>,
    last_reopen_error: Option<String>,
}

/// Opens a handle with the options, joins the fanout group (bound to the
/// interface with index `ifindex`), applies the filter (with the kernel skip
/// when there is one: if it cannot be attached, the handle keeps libpcap's
/// filter, and the kernel skip is told why), makes it non-blocking.
fn open_handle(
    name: &str,
    o: &LiveOptions,
    fanout: Option<(&FanoutGroup, Option<u32>)>,
    skip: Option<&KernelSkip>,
) -> Result<Capture<Active>, String> {
    let inactive = Capture::from_device(name).map_err(|e| e.to_string())?;
    let cap = inactive
        .promisc(o.promisc)
        .snaplen(o.snaplen)
        .buffer_size(o.buffer_bytes)
        .timeout(POLL_INTERVAL.as_millis() as i32)
        .open()
        .map_err(|e| describe_open_error(name, &e.to_string()))?;
    // Before the filter: what the socket took in before joining is all it
    // would get beyond its share.
    if let Some((group, ifindex)) = fanout {
        group.join(&cap, ifindex)?;
    }
    let mut cap = cap.setnonblock().map_err(|e| e.to_string())?;
    if !o.bpf.trim().is_empty() {
        cap.filter(&o.bpf, true)
            .map_err(|e| format!("bad capture filter {:?}: {e}", o.bpf))?;
    }
    if let Some(skip) = skip {
        skip.attach_or_note(name, &cap, &o.bpf);
    }
    Ok(cap)
}

/// libpcap's activation messages, made to say what to do.
fn describe_open_error(name: &str, msg: &str) -> String {
    let lower = msg.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        format!(
            "{msg} (capturing needs root or CAP_NET_RAW: run as root, or `setcap cap_net_raw+ep` on the binary)"
        )
    } else if lower.contains("no such device") {
        format!("{msg} (interface {name:?} does not exist; `ip link` lists the interfaces)")
    } else {
        msg.to_string()
    }
}

impl LiveSource {
    /// Opens the interface; every problem (missing interface, no permission,
    /// bad filter) is an error naming the interface.
    pub fn open(name: &str, opts: &LiveOptions) -> Result<LiveSource, SetupError> {
        LiveSource::open_in(name, opts, None, None)
    }

    /// [`LiveSource::open`], the handle in the interface's fanout group
    /// when one is given, with the kernel skip when one is given.
    pub fn open_in(
        name: &str,
        opts: &LiveOptions,
        fanout: Option<std::sync::Arc<FanoutGroup>>,
        skip: Option<std::sync::Arc<KernelSkip>>,
    ) -> Result<LiveSource, SetupError> {
        let ifindex = link_state(name).ifindex;
        let cap = open_handle(
            name,
            opts,
            fanout.as_deref().map(|g| (g, ifindex)),
            skip.as_deref(),
        )
        .map_err(|reason| SetupError::Interface {
            name: name.to_string(),
            reason,
        })?;
        let linktype = cap.get_datalink().0;
        Ok(LiveSource {
            name: name.to_string(),
            opts: opts.clone(),
            cap: Some(cap),
            linktype,
            ifindex,
            down: false,
            carried: KernelStats::default(),
            fanout,
            skip,
            last_reopen: None,
            last_reopen_error: None,
        })
    }

    pub fn is_up(&self) -> bool {
        !self.down
    }

    /// Compares the handle with the interface's link state (once a second is
    /// enough): a link that went down, lost its carrier or disappeared is
    /// reported; when it is back, capture resumes on the same handle, or on a
    /// new one if the interface was re-created.
    pub fn check_link(&mut self) -> Option<IfaceEvent> {
        let state = link_state(&self.name);
        if !self.down {
            if state.usable() {
                return None;
            }
            self.down = true;
            self.last_reopen_error = None;
            return Some(IfaceEvent::Down(state.describe()));
        }
        if !state.usable() {
            return None;
        }
        if self.cap.is_some() && state.ifindex == self.ifindex {
            self.down = false;
            return Some(IfaceEvent::Up);
        }
        self.reopen(state.ifindex)
    }

    /// Reads what is waiting (at most `max` frames), handing each to `f`.
    /// Returns the number of frames read, or an event when the interface
    /// state changed.
    pub fn read(
        &mut self,
        max: usize,
        f: &mut dyn FnMut(&Frame<'_>),
    ) -> (usize, Option<IfaceEvent>) {
        let Some(cap) = self.cap.as_mut() else {
            return (0, None);
        };
        let linktype = self.linktype;
        let res = cap.dispatch(Some(max), |p| {
            let ts = &p.header.ts;
            let ts_ns = (ts.tv_sec.max(0) as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add((ts.tv_usec.max(0) as u64).saturating_mul(1_000));
            f(&Frame {
                ts_ns,
                linktype,
                data: p.data,
                wire_len: p.header.len,
            });
        });
        match res {
            Ok(n) => (n, None),
            Err(e) => {
                self.close();
                self.down = true;
                self.last_reopen_error = None;
                (0, Some(IfaceEvent::Down(e.to_string())))
            }
        }
    }

    /// Closes the handle, keeping what the kernel counted on it.
    fn close(&mut self) {
        let s = self.stats();
        self.carried = s;
        self.cap = None;
    }

    /// Opens a new handle for a re-created interface, at most once a second.
    fn reopen(&mut self, ifindex: Option<u32>) -> Option<IfaceEvent> {
        if self
            .last_reopen
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return None;
        }
        self.last_reopen = Some(Instant::now());
        if self.cap.is_some() {
            self.close();
        }
        let fanout = self.fanout.as_deref().map(|g| (g, ifindex));
        match open_handle(&self.name, &self.opts, fanout, self.skip.as_deref()) {
            Ok(cap) => {
                self.linktype = cap.get_datalink().0;
                self.cap = Some(cap);
                self.ifindex = ifindex;
                self.down = false;
                self.last_reopen_error = None;
                Some(IfaceEvent::Up)
            }
            Err(e) => {
                if self.last_reopen_error.as_deref() == Some(e.as_str()) {
                    None
                } else {
                    self.last_reopen_error = Some(e.clone());
                    Some(IfaceEvent::ReopenFailed(e))
                }
            }
        }
    }

    /// Kernel counters since the interface was first opened (carried over reopens).
    pub fn stats(&mut self) -> KernelStats {
        let mut s = self.carried;
        if let Some(cap) = self.cap.as_mut()
            && let Ok(st) = cap.stats()
        {
            s.received += u64::from(st.received);
            s.dropped += u64::from(st.dropped);
            s.if_dropped += u64::from(st.if_dropped);
        }
        s
    }
}

/// An interface's state as sysfs shows it (readable without privileges).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkState {
    pub ifindex: Option<u32>,
    /// IFF_UP: administratively up.
    pub up: bool,
    /// operstate says the link can pass packets ("up", or "unknown" for
    /// drivers that do not report it, such as loopback).
    pub running: bool,
}

impl LinkState {
    pub fn usable(&self) -> bool {
        self.ifindex.is_some() && self.up && self.running
    }

    fn describe(&self) -> String {
        if self.ifindex.is_none() {
            "the interface disappeared".into()
        } else if !self.up {
            "the interface is down".into()
        } else {
            "the link has no carrier".into()
        }
    }
}

pub fn link_state(name: &str) -> LinkState {
    let gone = LinkState {
        ifindex: None,
        up: false,
        running: false,
    };
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return gone;
    }
    let read = |what: &str| std::fs::read_to_string(format!("/sys/class/net/{name}/{what}")).ok();
    let Some(ifindex) = read("ifindex").and_then(|s| s.trim().parse::<u32>().ok()) else {
        return gone;
    };
    let flags = read("flags")
        .and_then(|s| u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    let oper = read("operstate").unwrap_or_default();
    LinkState {
        ifindex: Some(ifindex),
        up: flags & 0x1 != 0,
        running: matches!(oper.trim(), "up" | "unknown" | "dormant" | "testing"),
    }
}

/// Waits until one of the sources may have frames, or the poll interval passes.
pub fn wait_readable(sources: &[LiveSource]) {
    let fds: Vec<PollFd<'_>> = sources
        .iter()
        .filter_map(|s| s.cap.as_ref())
        .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN))
        .collect();
    let timeout = PollTimeout::try_from(POLL_INTERVAL).unwrap_or(PollTimeout::NONE);
    if fds.is_empty() {
        std::thread::sleep(POLL_INTERVAL);
        return;
    }
    let mut fds = fds;
    // EINTR (a signal) and other poll errors just end the wait early.
    let _ = poll(&mut fds, timeout);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_not_paths() {
        assert!(!link_state("../../etc").usable());
        assert!(!link_state("no-such-interface0").usable());
    }

    #[test]
    fn lo_is_up() {
        assert!(link_state("lo").usable());
    }

    /// Every frame of the Ethernet captures (plain, VLAN, QinQ, IPv4 and IPv6
    /// fragments) passes the default filter, and other traffic does not.
    #[test]
    fn default_filter_keeps_every_handshake_frame() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
        let prog = Capture::dead(pcap::Linktype::ETHERNET)
            .unwrap()
            .compile(&default_bpf(&TunnelPorts::default()), true)
            .unwrap();
        let (mut seen, mut acks) = (0, 0u64);
        for name in [
            "link-vlan.pcap",
            "link-qinq.pcap",
            "ipv4-fragments.pcap",
            "ipv6-fragments.pcap",
            "openssl-ipv6-tls11.pcap",
            "demo.pcapng",
            "tunnel-vxlan.pcap",
            "tunnel-vxlan-fragmented.pcap",
            "tunnel-geneve.pcap",
            "tunnel-gre-teb.pcap",
            "tunnel-gre-ip.pcap",
            "tunnel-erspan2.pcap",
            "tunnel-erspan3.pcap",
            "tunnel-mpls.pcap",
            "tunnel-mpls-pw.pcap",
            "tunnel-nested.pcap",
            "tunnel-gtpu.pcap",
            "tunnel-gtpu-ipv6.pcap",
            "tunnel-pppoe-qinq.pcap",
            "tunnel-capwap-8023.pcap",
            "tunnel-capwap-80211.pcap",
            "dns-cname-custom-domain.pcap",
            "dns-privatelink-nosni.pcap",
            "dns-tcp-nosni.pcap",
            "dns-tunnel-vxlan.pcap",
            "dns-tunnel-nested.pcap",
        ] {
            let mut cap = Capture::from_file(dir.join(name)).unwrap();
            while let Ok(p) = cap.next_packet() {
                // DNS queries (to port 53) and untagged bare ACKs are not
                // needed; everything else is.
                let sliced = etherparse::SlicedPacket::from_ethernet(p.data);
                let query = matches!(
                    sliced.as_ref().map(|s| &s.transport),
                    Ok(Some(etherparse::TransportSlice::Udp(u))) if u.destination_port() == 53
                );
                let ack = sliced.as_ref().is_ok_and(is_bare_ack);
                assert!(
                    prog.filter(p.data) != (query || ack),
                    "{name}: frame {seen}: kept {} query {query} ack {ack} {:?}",
                    prog.filter(p.data),
                    sliced
                        .as_ref()
                        .map(|s| (s.net.is_some(), s.transport.is_some()))
                );
                seen += 1;
                acks += u64::from(ack);
            }
        }
        assert!(seen > 200 && acks > 20, "{seen} frames, {acks} bare ACKs");
        // A DNS response inside a VLAN tag is kept.
        let mut dns = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(7.try_into().unwrap())
            .ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                64,
            )
            .udp(53, 40000)
            .write(&mut dns, &[0u8; 20])
            .unwrap();
        assert!(prog.filter(&dns));
        // An ARP request and a UDP datagram to port 53 (a DNS query) are not kept.
        let arp = [
            0xffu8, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0, 1, 8, 0, 6, 4,
            0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ];
        assert!(!prog.filter(&arp));
        let mut udp = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(5353, 53)
            .write(&mut udp, &[0u8; 20])
            .unwrap();
        assert!(!prog.filter(&udp));
    }

    /// An untagged bare ACK, by etherparse: TCP without payload, SYN, FIN or
    /// RST, in an unfragmented IPv4 packet or right after an IPv6 header.
    fn is_bare_ack(s: &etherparse::SlicedPacket<'_>) -> bool {
        let untagged = s.vlan().is_none();
        let Some(etherparse::TransportSlice::Tcp(t)) = &s.transport else {
            return false;
        };
        let plain = match &s.net {
            Some(etherparse::NetSlice::Ipv4(ip)) => {
                !ip.header().is_fragmenting_payload()
                    && usize::from(ip.header().total_len())
                        == ip.header().slice().len() + t.slice().len()
            }
            Some(etherparse::NetSlice::Ipv6(ip)) => {
                ip.header().next_header() == etherparse::IpNumber::TCP
                    && usize::from(ip.header().payload_length()) == t.slice().len()
            }
            _ => false,
        };
        untagged && plain && !t.syn() && !t.fin() && !t.rst() && t.payload().is_empty()
    }

    #[test]
    fn open_missing_interface_names_it() {
        let opts = LiveOptions {
            promisc: false,
            snaplen: 65535,
            buffer_bytes: 1 << 20,
            bpf: default_bpf(&TunnelPorts::default()),
        };
        let err = LiveSource::open("tlsc-missing0", &opts).err().unwrap();
        let msg = err.to_string();
        assert!(msg.contains("tlsc-missing0"), "{msg}");
    }
}
