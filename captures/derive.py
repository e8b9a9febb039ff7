#!/usr/bin/env python3
"""Derives capture variants from the real captures made by make-captures.sh.

The TLS bytes are never changed: only link layers, encapsulation, order,
fragmentation, direction and file damage, as mirror ports and capture tools
produce them. Pure standard library; deterministic.

Usage: python3 derive.py DIR
"""
import struct
import sys
from pathlib import Path

LT_NULL, LT_ETHERNET, LT_RAW, LT_LOOP, LT_SLL, LT_SLL2 = 0, 1, 101, 108, 113, 276
SERVER = bytes([192, 0, 2, 1])


def read_pcap(path):
    data = Path(path).read_bytes()
    magic = data[:4]
    if magic == b"\xd4\xc3\xb2\xa1":
        e, nsec = "<", False
    elif magic == b"\xa1\xb2\xc3\xd4":
        e, nsec = ">", False
    elif magic == b"\x4d\x3c\xb2\xa1":
        e, nsec = "<", True
    else:
        raise SystemExit(f"{path}: not a classic pcap")
    linktype = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
    out, off = [], 24
    while off + 16 <= len(data):
        sec, frac, caplen, origlen = struct.unpack(e + "IIII", data[off:off + 16])
        usec = frac // 1000 if nsec else frac
        out.append([sec, usec, data[off + 16:off + 16 + caplen], origlen])
        off += 16 + caplen
    return linktype, out


def write_pcap(path, linktype, pkts, nsec=False, big=False):
    e = ">" if big else "<"
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    buf = bytearray(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 262144, linktype))
    for sec, usec, frame, *rest in pkts:
        orig = max(rest[0] if rest else len(frame), len(frame))
        buf += struct.pack(e + "IIII", sec, usec * 1000 if nsec else usec, len(frame), orig)
        buf += frame
    Path(path).write_bytes(bytes(buf))


def write_pcapng(path, linktypes, pkts):
    """pkts: (if_id, sec, usec, frame). Microsecond timestamps (default resolution)."""
    def block(btype, body):
        body += b"\x00" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack("<II", btype, n) + body + struct.pack("<I", n)
    buf = bytearray(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
    for lt in linktypes:
        buf += block(1, struct.pack("<HHI", lt, 0, 262144))
    for if_id, sec, usec, frame in pkts:
        ts = sec * 1_000_000 + usec
        body = struct.pack("<IIIII", if_id, ts >> 32, ts & 0xFFFFFFFF, len(frame), len(frame)) + frame
        buf += block(6, body)
    Path(path).write_bytes(bytes(buf))


def csum(b):
    if len(b) % 2:
        b += b"\x00"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def eth_split(frame):
    """(ethernet header, ethertype, network bytes) of an untagged frame."""
    return frame[:14], struct.unpack("!H", frame[12:14])[0], frame[14:]


def ipv4_fix(ip):
    """Recomputes the IPv4 header and TCP checksums."""
    ip = bytearray(ip)
    ihl = (ip[0] & 0xF) * 4
    ip[10:12] = b"\x00\x00"
    ip[10:12] = struct.pack("!H", csum(bytes(ip[:ihl])))
    if ip[9] == 6 and (struct.unpack("!H", ip[6:8])[0] & 0x3FFF) == 0:
        tcp = bytearray(ip[ihl:struct.unpack("!H", ip[2:4])[0]])
        tcp[16:18] = b"\x00\x00"
        pseudo = bytes(ip[12:20]) + struct.pack("!BBH", 0, 6, len(tcp))
        tcp[16:18] = struct.pack("!H", csum(pseudo + bytes(tcp)))
        ip[ihl:ihl + len(tcp)] = tcp
    return bytes(ip)


def tcp_payload_len(ip):
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0xF) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        return total - ihl - (ip[ihl + 12] >> 4) * 4
    plen = struct.unpack("!H", ip[4:6])[0]
    return plen - (ip[40 + 12] >> 4) * 4


def from_server(ip):
    if ip[0] >> 4 == 4:
        return ip[12:16] == SERVER
    return ip[8:24] == bytes.fromhex("20010db8000000000000000000000001")


def fragment_v4(frame, sizes):
    hdr, et, ip = eth_split(frame)
    ihl = (ip[0] & 0xF) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    payload = ip[ihl:total]
    frags, off = [], 0
    for i, size in enumerate(sizes + [len(payload)]):
        chunk = payload[off:off + size] if i < len(sizes) else payload[off:]
        if not chunk:
            break
        more = off + len(chunk) < len(payload)
        h = bytearray(ip[:ihl])
        h[2:4] = struct.pack("!H", ihl + len(chunk))
        h[4:6] = struct.pack("!H", 0x4242)
        h[6:8] = struct.pack("!H", (0x2000 if more else 0) | (off // 8))
        frags.append(hdr + ipv4_fix(bytes(h) + chunk))
        off += len(chunk)
    return frags


def fragment_v6(frame, sizes):
    hdr, et, ip = eth_split(frame)
    nh, payload = ip[6], ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
    frags, off = [], 0
    for i, size in enumerate(sizes + [len(payload)]):
        chunk = payload[off:off + size] if i < len(sizes) else payload[off:]
        if not chunk:
            break
        more = off + len(chunk) < len(payload)
        fh = struct.pack("!BBHI", nh, 0, (off // 8) << 3 | (1 if more else 0), 0x6161)
        fixed = bytearray(ip[:40])
        fixed[4:6] = struct.pack("!H", 8 + len(chunk))
        fixed[6] = 44
        frags.append(hdr + bytes(fixed) + fh + chunk)
        off += len(chunk)
    return frags


def relink(frame, linktype):
    """An Ethernet frame re-encapsulated in another link type."""
    hdr, et, net = eth_split(frame)
    v6 = et == 0x86DD
    if linktype == "vlan":
        return hdr[:12] + struct.pack("!HH", 0x8100, 100) + hdr[12:14] + net
    if linktype == "qinq":
        return hdr[:12] + struct.pack("!HHHH", 0x88A8, 200, 0x8100, 100) + hdr[12:14] + net
    if linktype == LT_SLL:
        return struct.pack("!HHH", 0, 1, 6) + hdr[6:12] + b"\x00\x00" + struct.pack("!H", et) + net
    if linktype == LT_SLL2:
        return struct.pack("!HHIHBB", et, 0, 3, 1, 0, 6) + hdr[6:12] + b"\x00\x00" + net
    if linktype == LT_RAW:
        return net
    if linktype == LT_NULL:
        return struct.pack("<I", 30 if v6 else 2) + net
    if linktype == LT_LOOP:
        return struct.pack(">I", 24 if v6 else 2) + net
    raise ValueError(linktype)


TUNNEL_A, TUNNEL_B = bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])
OUTER_ETH = bytes.fromhex("020000000001020000000002")


def outer_ipv4(proto, payload, ident=0x5151):
    """An IPv4 packet between the tunnel endpoints (which must never become hosts)."""
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0, TUNNEL_A, TUNNEL_B)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def udp(dport, payload):
    return struct.pack("!HHHH", 49152, dport, 8 + len(payload), 0) + payload


def vxlan(frame):
    return struct.pack("!BBBBI", 0x08, 0, 0, 0, 4242 << 8) + frame


def geneve(frame):
    # One 8-byte option (class 0x0103, type 0x80, length 1 word), as Azure and OVS send options.
    opt = struct.pack("!HBBI", 0x0103, 0x80, 1, 0xDEADBEEF)
    return struct.pack("!BBHI", len(opt) // 4, 0, 0x6558, 4242 << 8) + opt + frame


def gre(proto, inner, key=None, seq=None, checksum=False):
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    h = struct.pack("!HH", flags, proto)
    if checksum:
        h += struct.pack("!HH", 0, 0)
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    return h + inner


def erspan2(frame, seq):
    # Version 1 (type II), VLAN 0, CoS 0, session 7, index 0.
    return gre(0x88BE, struct.pack("!HHI", 0x1000, 7, 0) + frame, seq=seq)


def erspan3(frame, seq, platform):
    h = struct.pack("!HHIHH", 0x2000, 7, seq * 1000, 0, 0x0001 if platform else 0)
    sub = struct.pack("!II", 0x0800_0000, 0) if platform else b""
    return gre(0x22EB, h + sub + frame, seq=seq)


def mpls(labels, inner):
    out = b""
    for i, label in enumerate(labels):
        bos = 1 if i == len(labels) - 1 else 0
        out += struct.pack("!I", label << 12 | bos << 8 | 64)
    return out + inner


def outer_ipv6(nh, payload):
    """An IPv6 packet between the tunnel endpoints 2001:db8:ffff::a and ::b."""
    a = bytes.fromhex("20010db8ffff000000000000000000a0")
    b = bytes.fromhex("20010db8ffff000000000000000000b0")
    return struct.pack("!IHBB", 0x6000_0000, len(payload), nh, 64) + a + b + payload


def gtpu(packet, seq):
    """A GTP-U G-PDU (TEID 0x1234); every other packet with a sequence number
    and a PDU session container extension header, as 5G user planes send."""
    if seq % 2:
        body = struct.pack("!HBB", seq & 0xFFFF, 0, 0x85) + bytes([1, 0x10, 0x01, 0x00]) + packet
        return struct.pack("!BBHI", 0x36, 0xFF, len(body), 0x1234) + body
    return struct.pack("!BBHI", 0x30, 0xFF, len(packet), 0x1234) + packet


def pppoe(ip, v6):
    """A PPPoE session frame's payload (session 0x0042) carrying an IP packet."""
    proto = 0x0057 if v6 else 0x0021
    return struct.pack("!BBHHH", 0x11, 0, 0x0042, len(ip) + 2, proto) + ip


def capwap(frame, native):
    """A CAPWAP data packet (HLEN 2 words, WBID 1): the 802.3 frame, or
    (native) the same packet as an 802.11 QoS data frame to the DS with
    LLC/SNAP, as a wireless LAN controller receives it from an access point."""
    hdr = struct.pack("!BBBB", 0, 2 << 3, (1 << 1) | (1 if native else 0), 0) + b"\0" * 4
    if not native:
        return hdr + frame
    _, et, net = eth_split(frame)
    dot11 = bytes([0x88, 0x01, 0, 0]) + frame[6:12] + frame[0:6] + frame[0:6] + b"\0\0" + b"\0\0"
    return hdr + dot11 + bytes([0xAA, 0xAA, 0x03, 0, 0, 0]) + struct.pack("!H", et) + net


def tunnel(frame, kind, seq):
    """The frame as a mirror port in a tunnel delivers it (outer Ethernet included)."""
    hdr, et, net = eth_split(frame)
    if kind == "vxlan":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(17, udp(4789, vxlan(frame)), seq)
    if kind == "vxlan-8472":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(17, udp(8472, vxlan(frame)), seq)
    if kind == "geneve":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(17, udp(6081, geneve(frame)), seq)
    if kind == "gre-teb":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(47, gre(0x6558, frame, key=9, checksum=True), seq)
    if kind == "gre-ip":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(47, gre(et, net), seq)
    if kind == "erspan2":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(47, erspan2(frame, seq), seq)
    if kind == "erspan3":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(47, erspan3(frame, seq, seq % 2 == 0), seq)
    if kind == "mpls":
        return hdr[:12] + b"\x88\x47" + mpls([1001, 2002], net)
    if kind == "mpls-pw":
        return OUTER_ETH + b"\x88\x47" + mpls([3003, 4004], b"\x00\x00\x00\x00" + frame)
    if kind == "gtpu":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(17, udp(2152, gtpu(net, seq)), seq)
    if kind == "gtpu-ipv6":
        return OUTER_ETH + b"\x86\xdd" + outer_ipv6(17, udp(2152, gtpu(net, seq)))
    if kind == "pppoe-qinq":
        # Service tag 100, customer tag 200, then the PPPoE session.
        tags = struct.pack("!HHHH", 0x88A8, 100, 0x8100, 200)
        return hdr[:12] + tags + b"\x88\x64" + pppoe(net, et == 0x86DD)
    if kind == "capwap-8023":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(17, udp(5247, capwap(frame, False)), seq)
    if kind == "capwap-80211":
        return OUTER_ETH + b"\x08\x00" + outer_ipv4(17, udp(5247, capwap(frame, True)), seq)
    if kind == "nested":
        # VXLAN inside GRE inside MPLS: VXLAN's outer frame is itself tunnelled.
        inner = tunnel(frame, "vxlan", seq)
        return OUTER_ETH + b"\x88\x47" + mpls([5005], outer_ipv4(47, gre(0x6558, inner), seq))
    raise ValueError(kind)


def write_tunnelled(path, pkts, kind):
    """Every frame of `pkts` in the tunnel `kind` (outer IP ID / sequence = frame number)."""
    out = []
    for i, (s, u, f, _) in enumerate(pkts):
        t = tunnel(f, kind, i + 1)
        out.append([s, u, t, len(t)])
    write_pcap(path, LT_ETHERNET, out)


def fragment_outer(frame, size):
    """The outer IPv4 packet of a tunnelled frame cut into `size`-byte fragments, last first."""
    payload_len = len(frame) - 14 - 20
    return fragment_v4(frame, [size] * ((payload_len - 1) // size))[::-1]


def main(d):
    d = Path(d)
    load = lambda n: read_pcap(d / f"{n}.pcap")[1]
    base = sorted(load("openssl-tls10-rejected") + load("openssl-tls12") + load("openssl-ipv6-tls11"),
                  key=lambda p: (p[0], p[1]))

    for name, lt, dlt in [("vlan", "vlan", LT_ETHERNET), ("qinq", "qinq", LT_ETHERNET),
                          ("sll", LT_SLL, LT_SLL), ("sll2", LT_SLL2, LT_SLL2), ("raw", LT_RAW, LT_RAW),
                          ("null", LT_NULL, LT_NULL), ("loop", LT_LOOP, LT_LOOP)]:
        write_pcap(d / f"link-{name}.pcap", dlt, [[s, u, relink(f, lt), len(relink(f, lt))] for s, u, f, _ in base])
    write_pcap(d / "link-ethernet-nsec-bigendian.pcap", LT_ETHERNET, base, nsec=True, big=True)

    # Mirror-port tunnels around the same frames (issue 5): the inner flows must
    # come out exactly as from the plain frames.
    for kind in ["vxlan", "vxlan-8472", "geneve", "gre-teb", "gre-ip", "erspan2", "erspan3", "mpls",
                 "mpls-pw", "nested", "gtpu", "gtpu-ipv6", "pppoe-qinq", "capwap-8023", "capwap-80211"]:
        write_tunnelled(d / f"tunnel-{kind}.pcap", base, kind)
    # Passive DNS inside the tunnels: real dnsmasq answers and the handshakes
    # that follow them (make-dns-captures.sh), merged in time order.
    dns = sorted(load("dns-cname-custom-domain") + load("dns-privatelink-nosni") + load("dns-tcp-nosni")
                 + load("dns-expired-nosni"), key=lambda p: (p[0], p[1]))
    for kind in ["vxlan", "geneve", "gre-teb", "gre-ip", "erspan2", "erspan3", "mpls", "mpls-pw", "nested"]:
        write_tunnelled(d / f"dns-tunnel-{kind}.pcap", dns, kind)

    # VXLAN whose outer packets the tunnel fragmented (every frame, 256-byte pieces).
    pkts = []
    for i, (s, u, f, _) in enumerate(base):
        for piece in fragment_outer(tunnel(f, "vxlan", i + 1), 256):
            pkts.append([s, u, piece, len(piece)])
    write_pcap(d / "tunnel-vxlan-fragmented.pcap", LT_ETHERNET, pkts)

    # pcapng with two interfaces of different link types (libpcap refuses these).
    a = [(0, s, u, f) for s, u, f, _ in load("openssl-tls10-rejected")]
    b = [(1, s, u, relink(f, LT_RAW)) for s, u, f, _ in load("openssl-tls12")]
    c = [(2, s, u, relink(f, LT_SLL2)) for s, u, f, _ in load("openssl-tls11")]
    write_pcapng(d / "mixed-linktypes.pcapng", [LT_ETHERNET, LT_RAW, LT_SLL2],
                 sorted(a + b + c, key=lambda p: (p[1], p[2])))

    # Split ClientHello: data segments delivered in reverse, one retransmitted,
    # plus an overlapping copy of the first 100 payload bytes.
    pk = load("openssl-tls12-split-hello")
    client_data = [i for i, p in enumerate(pk) if not from_server(p[2][14:]) and tcp_payload_len(p[2][14:]) > 0]
    first_burst = []
    for i in client_data:
        if first_burst and i != first_burst[-1] + 1:
            break
        first_burst.append(i)
    seg = [pk[i] for i in first_burst]
    rest = [p for i, p in enumerate(pk) if i not in first_burst]
    insert_at = first_burst[0]
    reordered = rest[:insert_at] + list(reversed(seg)) + [seg[0]] + rest[insert_at:]
    write_pcap(d / "tcp-reordered-retransmitted.pcap", LT_ETHERNET, reordered)

    # IPv4 fragments (out of order) of every client data packet of a rejected TLS 1.0 hello.
    out = []
    for p in load("openssl-tls10-rejected"):
        ip = p[2][14:]
        if not from_server(ip) and tcp_payload_len(ip) > 40:
            frags = fragment_v4(p[2], [64, 48])
            out += [[p[0], p[1], f, len(f)] for f in [frags[-1]] + frags[:-1]]
        else:
            out.append(p)
    write_pcap(d / "ipv4-fragments.pcap", LT_ETHERNET, out)
    out = []
    for p in load("openssl-ipv6-tls11"):
        ip = p[2][14:]
        if not from_server(ip) and tcp_payload_len(ip) > 40:
            out += [[p[0], p[1], f, len(f)] for f in fragment_v6(p[2], [48, 64])]
        else:
            out.append(p)
    write_pcap(d / "ipv6-fragments.pcap", LT_ETHERNET, out)

    # Asymmetric routing: only the server's direction.
    so = [p for p in load("openssl-tls10-rejected") + load("openssl-tls12") if from_server(p[2][14:])]
    write_pcap(d / "server-only.pcap", LT_ETHERNET, sorted(so, key=lambda p: (p[0], p[1])))
    # Only the client's direction: unanswered.
    write_pcap(d / "client-only.pcap", LT_ETHERNET, [p for p in load("openssl-tls13") if not from_server(p[2][14:])])

    # Capture started mid-flow: no SYN/SYN-ACK before the ClientHello, and a
    # flow seen only after its handshake.
    t12 = load("openssl-tls12")
    t13 = load("python-tls12")
    first_data = next(i for i, p in enumerate(t12) if tcp_payload_len(p[2][14:]) > 0)
    data13 = [i for i, p in enumerate(t13) if tcp_payload_len(p[2][14:]) > 0]
    write_pcap(d / "midflow.pcap", LT_ETHERNET, t12[first_data:] + t13[data13[4]:])

    # The same client address and port reused for a second connection.
    r1 = load("openssl-tls10-rejected")
    r2 = load("openssl-tls12")
    def ports(frame):
        ip = frame[14:]
        ihl = (ip[0] & 0xF) * 4
        return struct.unpack("!HH", ip[ihl:ihl + 4])
    c1 = ports(r1[0][2])
    c2 = ports(r2[0][2])
    def rewrite(frame):
        ip = bytearray(frame[14:])
        ihl = (ip[0] & 0xF) * 4
        sp, dp = struct.unpack("!HH", ip[ihl:ihl + 4])
        m = {c2[0]: c1[0], c2[1]: c1[1]}
        ip[ihl:ihl + 4] = struct.pack("!HH", m.get(sp, sp), m.get(dp, dp))
        if bytes(ip[12:16]) != SERVER:
            ip[12:16] = r1[0][2][14 + 12:14 + 16]
        else:
            ip[16:20] = r1[0][2][14 + 12:14 + 16]
        return frame[:14] + ipv4_fix(bytes(ip))
    last = r1[-1][0] + 1
    shifted = [[last + (p[0] - r2[0][0]), p[1], rewrite(p[2]), p[3]] for p in r2]
    write_pcap(d / "port-reuse.pcap", LT_ETHERNET, r1 + shifted)

    # A file cut off inside its last packet (as when tcpdump is killed).
    raw = (d / "demo-classic.pcap")
    write_pcap(raw, LT_ETHERNET, sorted(load("openssl-tls10-rejected") + load("openssl-tls13"), key=lambda p: (p[0], p[1])))
    data = raw.read_bytes()
    (d / "truncated.pcap").write_bytes(data[:-20])
    raw.unlink()

    # Snap length 96: headers only; no handshake can be read.
    write_pcap(d / "snaplen-96.pcap", LT_ETHERNET, [[s, u, f[:96], len(f)] for s, u, f, _ in load("openssl-tls12")])
    print("derived variants written")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
