//! Any bytes as a frame of any supported link type, tunnels included (the corpus
//! holds VXLAN, Geneve, GRE, ERSPAN, MPLS, GTP-U, PPPoE and CAPWAP frames): decoding never panics, and
//! the Ethernet/IPv4/TCP fast path agrees with the full decoder.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tlscensus::decode::{Decoded, FragmentCache, TunnelPorts, decode_frame, decode_with_fragments, fast_ipv4_tcp};

const LINKTYPES: [i32; 10] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frame)) = data.split_first() else { return };
    let lt = LINKTYPES[usize::from(sel) % LINKTYPES.len()];
    if let Ok(Decoded::Tcp { seg, .. }) = decode_frame(lt, frame) {
        assert!(seg.payload.len() <= frame.len());
    }
    if let Some((src, dst, seg)) = fast_ipv4_tcp(lt, frame) {
        assert_eq!(decode_frame(lt, frame), Ok(Decoded::Tcp { src, dst, seg }));
    }
    let mut frag = FragmentCache::new(4, 1 << 16, 1_000_000_000);
    let _ = decode_with_fragments(1, lt, frame, &TunnelPorts::default(), &mut frag, &mut |_| {});
});
