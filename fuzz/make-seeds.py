#!/usr/bin/env python3
"""Writes fuzz seeds (fuzz/corpus/<target>/seed-*) from the real captures in
captures/, so the fuzzers start from real frames and real handshake bytes."""
import struct
import sys
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent / "captures"))
from derive import read_pcap  # noqa: E402

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]


def tcp_payload(frame, lt):
    off = {1: 14, 113: 16, 276: 20, 101: 0, 0: 4, 108: 4}.get(lt)
    if off is None:
        return None
    if lt == 1:
        et = struct.unpack("!H", frame[12:14])[0]
        while et in (0x8100, 0x88A8):
            et = struct.unpack("!H", frame[off + 2:off + 4])[0]
            off += 4
    ip = frame[off:]
    if not ip:
        return None
    if ip[0] >> 4 == 4:
        ihl = (ip[0] & 0xF) * 4
        if ip[9] != 6:
            return None
        tcp = ip[ihl:struct.unpack("!H", ip[2:4])[0]]
    elif ip[0] >> 4 == 6 and ip[6] == 6:
        tcp = ip[40:]
    else:
        return None
    return tcp[(tcp[12] >> 4) * 4:] if len(tcp) >= 20 else None


def main():
    targets = ("whole_path", "decode_frame", "tls_extract", "reassembly", "server_certificate")
    out = {t: here / "corpus" / t for t in targets}
    for d in out.values():
        d.mkdir(parents=True, exist_ok=True)
    for cap in sorted((here.parent / "captures").glob("*.pcap")):
        try:
            lt, pkts = read_pcap(cap)
        except SystemExit:
            continue
        sel = LINKTYPES.index(lt) if lt in LINKTYPES else 1
        rec = b"".join(bytes([sel]) + struct.pack("<H", len(f)) + f for _, _, f, _ in pkts)
        (out["whole_path"] / f"seed-{cap.stem}").write_bytes(rec)
        for i, (_, _, f, _) in enumerate(pkts[:6]):
            (out["decode_frame"] / f"seed-{cap.stem}-{i}").write_bytes(bytes([sel]) + f)
        n = 0
        for _, _, f, _ in pkts:
            p = tcp_payload(f, lt)
            if p and n < 2:
                (out["tls_extract"] / f"seed-{cap.stem}-{n}").write_bytes(p)
                n += 1
        if cap.stem.startswith("cert-") or cap.stem.endswith("resumption"):
            # The server's stream start (source port 40000-42999) of the first
            # flow: ServerHello, Certificate, ... as parse_server_certificate sees it.
            flight, flow = b"", None
            for _, _, f, _ in pkts:
                p = tcp_payload(f, lt)
                sport, dport = struct.unpack("!HH", f[34:38]) if lt == 1 else (0, 0)
                if p and 40000 <= sport < 43000 and flow in (None, dport):
                    flow = dport
                    flight += p
            if flight:
                (out["server_certificate"] / f"seed-{cap.stem}").write_bytes(flight[:16384])
    (out["reassembly"] / "seed-basic").write_bytes(bytes(range(64)))
    host_name_seeds()
    print("seeds written")


# host_names: the first byte picks the service (fuzz_targets/host_names.rs),
# then each datagram after a 2-byte length.
NAME_KINDS = {67: 0, 68: 0, 546: 1, 547: 1, 137: 2, 5353: 3, 5355: 4, 88: 5, 53: 6}


def udp_payload(f):
    et = struct.unpack("!H", f[12:14])[0]
    ip = f[14:]
    if et == 0x0800 and ip[9] == 17:
        udp = ip[(ip[0] & 15) * 4:]
    elif et == 0x86DD and ip[6] == 17:
        udp = ip[40:]
    else:
        return None
    return struct.unpack("!HH", udp[:4]), udp[8:]


def host_name_seeds():
    d = here / "corpus" / "host_names"
    d.mkdir(parents=True, exist_ok=True)
    for cap in sorted((here.parent / "captures").glob("names-*.pcap")):
        _, pkts = read_pcap(cap)
        groups = {}
        for _, _, f, _ in pkts:
            u = udp_payload(f)
            if u is None:
                continue
            (sport, dport), payload = u
            kind = NAME_KINDS.get(sport, NAME_KINDS.get(dport))
            if kind is not None:
                groups.setdefault(kind, []).append(payload)
        for kind, payloads in groups.items():
            seed = bytes([kind]) + b"".join(struct.pack("!H", len(p)) + p for p in payloads[:12])
            (d / f"seed-{cap.stem}-{kind}").write_bytes(seed)


if __name__ == "__main__":
    main()
