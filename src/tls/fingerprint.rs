//! Client fingerprints of a ClientHello: JA4 (FoxIO's TLS client
//! fingerprint, BSD-3; the other JA4+ methods are under a non-commercial
//! licence and not implemented) and the MD5 of JA3.
//!
//! Input: a ClientHello's version field, cipher suites and raw extension
//! block (as the hello parser has them). Output: a small fixed-size
//! [`Fingerprint`] (36 + 16 bytes, no allocation kept), computed once per
//! ClientHello. Rules, from FoxIO's JA4 technical details: `t`, the version
//! (highest non-GREASE supported_versions, else the hello's: `13` `12` `11`
//! `10` `s3` `s2`, `00` otherwise), `d`/`i` for SNI present or not, cipher
//! and extension counts without GREASE capped at 99, the first ALPN value's
//! first and last characters (their hex digits when not ASCII alphanumeric;
//! `00` without ALPN); then the first 12 hex digits of the SHA-256 of the
//! sorted cipher list, and of the sorted extension list without SNI and
//! ALPN followed by `_` and the signature algorithms in wire order
//! (`000000000000` for an empty list). JA3: `version,ciphers,extensions,
//! groups,point formats` in decimal, `-`-joined, GREASE removed (as
//! Wireshark computes it), hashed with MD5. Nothing here panics: a broken
//! extension ends the walk with what was read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use md5::{Digest, Md5};

use super::version::is_grease;
use crate::policy::eval::{list8, list16};
use crate::policy::{Offer, PolicySet, Verdicts};
use ring::digest::{SHA256, digest};

/// The fingerprints of one ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    ja4: [u8; 36],
    /// Computed when something reports it (JA3 costs an MD5 a hello).
    ja3_md5: Option<[u8; 16]>,
}

impl Fingerprint {
    /// The JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_b186095e22b6`.
    pub fn ja4(&self) -> &str {
        std::str::from_utf8(&self.ja4).unwrap_or("")
    }

    /// The JA4's bytes (ASCII; no UTF-8 check, for lookups and writers).
    pub fn ja4_bytes(&self) -> &[u8; 36] {
        &self.ja4
    }

    /// A fingerprint from its printed forms (a saved state): a JA4 and,
    /// optionally, a JA3 hash of 32 hex digits; `None` if either is not one.
    pub fn from_parts(ja4: &str, ja3_hash: Option<&str>) -> Option<Fingerprint> {
        if !crate::hosts::labels::is_ja4(ja4) {
            return None;
        }
        let mut f = Fingerprint {
            ja4: [0; 36],
            ja3_md5: None,
        };
        f.ja4.copy_from_slice(ja4.as_bytes());
        if let Some(h) = ja3_hash {
            let b = h.as_bytes();
            if b.len() != 32 {
                return None;
            }
            let mut md5 = [0u8; 16];
            for (i, pair) in b.chunks_exact(2).enumerate() {
                let hex = std::str::from_utf8(pair).ok()?;
                md5[i] = u8::from_str_radix(hex, 16).ok()?;
            }
            f.ja3_md5 = Some(md5);
        }
        Some(f)
    }

    /// Whether two hellos have the same JA4 (a byte compare).
    pub fn same_ja4(&self, other: &Fingerprint) -> bool {
        self.ja4 == other.ja4
    }

    /// The MD5 of the JA3 string, when computed.
    pub fn ja3_md5(&self) -> Option<[u8; 16]> {
        self.ja3_md5
    }

    /// The JA3 hash (MD5 of the JA3 string), 32 hex digits, when computed.
    pub fn ja3_hash(&self) -> Option<String> {
        let md5 = self.ja3_md5?;
        let mut h = [0u8; 32];
        hex_into(&md5, &mut h);
        Some(String::from_utf8_lossy(&h).into_owned())
    }
}

const EXT_SNI: u16 = 0;
const EXT_GROUPS: u16 = 10;
const EXT_POINT_FORMATS: u16 = 11;
const EXT_SIGNATURE_ALGORITHMS: u16 = 13;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const EXT_EXTENDED_MASTER_SECRET: u16 = 23;
const EXT_KEY_SHARE: u16 = 51;
const EXT_RENEGOTIATION_INFO: u16 = 0xff01;

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Big-endian u16 values of `b` (an odd last byte is ignored).
fn u16s(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| u16::from_be_bytes([c[0], c[1]]))
}

/// The first 12 hex digits of the SHA-256 of `s`, or twelve zeros when `s`
/// is empty.
fn sha12(s: &[u8], out: &mut [u8]) {
    if s.is_empty() {
        out.fill(b'0');
        return;
    }
    let d = digest(&SHA256, s);
    hex_into(&d.as_ref()[..6], out);
}

/// `b` as lowercase hex into `out` (two digits a byte).
pub fn hex_into(b: &[u8], out: &mut [u8]) {
    for (x, o) in b.iter().zip(out.chunks_exact_mut(2)) {
        o[0] = DIGITS[usize::from(x >> 4)];
        o[1] = DIGITS[usize::from(x & 0x0f)];
    }
}

/// Appends `values` as 4-digit lowercase hex, comma-joined.
fn hex_list(values: &[u16], out: &mut Vec<u8>) {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut h = [0u8; 4];
        hex_into(&v.to_be_bytes(), &mut h);
        out.extend_from_slice(&h);
    }
}

/// Appends `values` in decimal, `-`-joined.
fn dec_list(values: impl Iterator<Item = u16>, out: &mut Vec<u8>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b'-');
        }
        crate::text::decimal(out, u64::from(v));
    }
}

/// JA4's version code.
fn version_code(v: u16) -> [u8; 2] {
    match v {
        0x0304 => *b"13",
        0x0303 => *b"12",
        0x0302 => *b"11",
        0x0301 => *b"10",
        0x0300 => *b"s3",
        0x0002 => *b"s2",
        0xfeff => *b"d1",
        0xfefd => *b"d2",
        0xfefc => *b"d3",
        _ => *b"00",
    }
}

/// JA4's two ALPN characters for the first ALPN value.
fn alpn_code(first: Option<&[u8]>) -> [u8; 2] {
    let Some(v) = first.filter(|v| !v.is_empty()) else {
        return *b"00";
    };
    let (a, z) = (v[0], v[v.len() - 1]);
    if a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric() {
        return [a, z];
    }
    // The hex rule: the first byte's high digit, the last byte's low digit.
    [DIGITS[usize::from(a >> 4)], DIGITS[usize::from(z & 0x0f)]]
}

fn count(n: usize) -> [u8; 2] {
    let n = n.min(99);
    [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]
}

/// The raw strings behind a hello's fingerprints (`--raw-fingerprints`):
/// JA4_r (the sorted lists JA4 hashes) and the JA3 string. They are held
/// while the flow waits for its answer, so their bytes come out of a budget
/// shared by one table's flows and go back when the strings are dropped.
#[derive(Debug)]
pub struct RawFingerprint {
    pub ja4_r: Box<str>,
    pub ja3: Box<str>,
    budget: Arc<AtomicUsize>,
}

impl PartialEq for RawFingerprint {
    fn eq(&self, other: &Self) -> bool {
        (&self.ja4_r, &self.ja3) == (&other.ja4_r, &other.ja3)
    }
}

impl Eq for RawFingerprint {}

impl Drop for RawFingerprint {
    fn drop(&mut self) {
        self.budget
            .fetch_add(self.ja4_r.len() + self.ja3.len(), Ordering::Relaxed);
    }
}

/// Bytes a flow table's held details may take; returned when dropped.
#[derive(Debug)]
pub struct Held {
    bytes: usize,
    budget: Arc<AtomicUsize>,
}

impl Held {
    /// `bytes` out of `budget`, if it has room.
    pub fn take(budget: &Arc<AtomicUsize>, bytes: usize) -> Option<Held> {
        budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            })
            .ok()
            .map(|_| Held {
                bytes,
                budget: Arc::clone(budget),
            })
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.fetch_add(self.bytes, Ordering::Relaxed);
    }
}

/// A hold is bookkeeping, not a fact: any two are equal.
impl PartialEq for Held {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Held {}

/// Bytes of raw fingerprint strings one flow table holds at most (about
/// 2,000 hellos of a browser's size); beyond, a hello's strings are not kept
/// (its JA4 and JA3 hash are) and the miss is counted.
pub const RAW_BUDGET: usize = 4 << 20;

/// Bytes of handshake details (cipher lists, session IDs, the server's
/// choices) one flow table holds at most, from the hello until the event is
/// written: about 10,000 handshakes of a browser's size; beyond, a
/// handshake's details are left out of its event and the miss is counted.
pub const DETAIL_BUDGET: usize = 4 << 20;

/// Entries of a [`Fingerprinter`]'s cache of hashed JA4 parts (32 bytes
/// each, 16 KiB per flow table). A hit compares a 64-bit keyed hash of the
/// lists: a different hello matches by chance with odds of 2^-64, and
/// cannot be made to on purpose (the keys are random per table).
const CACHE_SLOTS: usize = 512;

/// Values computed from a hello, by a keyed 64-bit hash of their inputs
/// (never 0: 0 marks an empty slot), [`CACHE_SLOTS`] entries allocated on
/// first use. Each key has two slots, from its low and its high bits: a
/// new entry takes its first, and the entry it finds there moves to that
/// entry's other slot. Two stacks whose keys share a slot do not evict
/// each other hello after hello, as they would in a direct-mapped cache.
struct Cache<V> {
    slots: Vec<(u64, V)>,
}

impl<V: Copy + Default> Cache<V> {
    const fn new() -> Self {
        Cache { slots: Vec::new() }
    }

    fn places(key: u64) -> [usize; 2] {
        [
            key as usize % CACHE_SLOTS,
            (key >> 32) as usize % CACHE_SLOTS,
        ]
    }

    fn get(&self, key: u64) -> Option<V> {
        Self::places(key)
            .into_iter()
            .find_map(|i| self.slots.get(i).filter(|(k, _)| *k == key))
            .map(|(_, v)| *v)
    }

    /// Keeps `value` for `key`; `allocate`: make the slots if there are
    /// none yet (a one-off fingerprinter allocates none).
    fn put(&mut self, key: u64, value: V, allocate: bool) {
        if self.slots.is_empty() && allocate {
            self.slots = vec![(0, V::default()); CACHE_SLOTS];
        }
        let [first, _] = Self::places(key);
        let Some(slot) = self.slots.get_mut(first) else {
            return;
        };
        let old = std::mem::replace(slot, (key, value));
        if old.0 != 0 && old.0 != key {
            let [a, b] = Self::places(old.0);
            let other = if a == first { b } else { a };
            if let Some(s) = self.slots.get_mut(other) {
                *s = old;
            }
        }
    }
}

/// Computes fingerprints with buffers reused from hello to hello (one per
/// flow table: no allocation per hello once warm), and the raw strings when
/// asked for.
pub struct Fingerprinter {
    exts: Vec<u16>,
    ciphers: Vec<u16>,
    sig: Vec<u16>,
    text: Vec<u8>,
    ja3_text: Vec<u8>,
    /// Compute JA3 too (the raw strings need it).
    ja3: bool,
    /// The hashed parts of JA4 (b and c) by a keyed hash of their sorted
    /// lists.
    cache: Cache<[u8; 24]>,
    /// JA3 hashes by a keyed hash of JA3's inputs in order.
    ja3_cache: Cache<[u8; 16]>,
    /// Random keys: hellos cannot be crafted to collide in the cache.
    keys: ahash::RandomState,
    /// Keys of the order-free sums of the cipher and extension lists.
    sum_keys: (u64, u64),
    /// Hashed parts computed (cache misses) so far.
    computed: u64,
    /// Bytes left for raw strings; `None`: raw strings are not wanted.
    raw_budget: Option<Arc<AtomicUsize>>,
    /// Hellos whose raw strings did not fit the budget (taken by the counters).
    pub raw_dropped: u64,
    /// Bytes left for the hello and server-hello details the richer event
    /// layouts show; `None`: not wanted.
    detail_budget: Option<Arc<AtomicUsize>>,
    /// Handshakes whose details did not fit the budget (taken by the counters).
    pub details_dropped: u64,
    /// Which server names' hellos are fingerprinted (`None`: every hello's).
    wanted: Option<NameFilter>,
    /// Hellos not fingerprinted: their server name can lead to no target.
    pub skipped: u64,
    /// The server policies each fingerprinted hello is judged by.
    policies: Option<Arc<PolicySet>>,
    /// The verdicts on the hello fingerprinted last ([`Fingerprinter::take_verdicts`]).
    verdicts: Verdicts,
}

/// Whether a ClientHello naming this server can lead to a flow that is
/// inventoried (a target, or `--all`): a census fingerprints those only.
pub type NameFilter = std::rc::Rc<dyn Fn(&str) -> bool>;

impl Default for Fingerprinter {
    fn default() -> Self {
        let keys = ahash::RandomState::new();
        let sum_keys = (keys.hash_one(1u8), keys.hash_one(2u8));
        Fingerprinter {
            exts: Vec::new(),
            ciphers: Vec::new(),
            sig: Vec::new(),
            text: Vec::new(),
            ja3_text: Vec::new(),
            ja3: false,
            cache: Cache::new(),
            ja3_cache: Cache::new(),
            keys,
            sum_keys,
            computed: 0,
            raw_budget: None,
            raw_dropped: 0,
            detail_budget: None,
            details_dropped: 0,
            wanted: None,
            skipped: 0,
            policies: None,
            verdicts: Verdicts::default(),
        }
    }
}

impl Fingerprinter {
    /// JA4 only (what the inventory keeps).
    pub fn ja4_only() -> Self {
        Fingerprinter::default()
    }

    /// JA4 and JA3.
    pub fn with_ja3() -> Self {
        Fingerprinter {
            ja3: true,
            ..Fingerprinter::default()
        }
    }

    /// JA4, JA3 and each hello's raw strings, holding at most `budget`
    /// bytes of them.
    pub fn with_raw(budget: usize) -> Self {
        Fingerprinter {
            ja3: true,
            raw_budget: Some(Arc::new(AtomicUsize::new(budget))),
            ..Fingerprinter::default()
        }
    }

    /// Also keeps each handshake's details (the client's cipher list and
    /// session ID, the server's choices), holding at most `budget` bytes of
    /// them for the table.
    pub fn with_details(mut self, budget: usize) -> Self {
        self.detail_budget = Some(Arc::new(AtomicUsize::new(budget)));
        self
    }

    /// Also judges each fingerprinted hello by `policies` (none: no cost).
    pub fn with_policies(mut self, policies: Arc<PolicySet>) -> Self {
        self.policies = (!policies.is_empty()).then_some(policies);
        self
    }

    /// The verdicts on the hello fingerprinted last (empty when no policy
    /// is configured), leaving none.
    pub fn take_verdicts(&mut self) -> Verdicts {
        std::mem::take(&mut self.verdicts)
    }

    /// Whether handshake details are kept.
    pub fn wants_details(&self) -> bool {
        self.detail_budget.is_some()
    }

    /// `bytes` of details out of the budget; `None` when details are not
    /// wanted, or (counted) when the budget has no room.
    pub fn hold_detail(&mut self, bytes: usize) -> Option<Held> {
        let held = Held::take(self.detail_budget.as_ref()?, bytes);
        self.details_dropped += u64::from(held.is_none());
        held
    }

    /// Fingerprints only hellos without a server name or with one `wanted`
    /// accepts (a flow whose name leads to no target is never inventoried:
    /// its JA4 would be computed for nothing).
    pub fn only_for(mut self, wanted: NameFilter) -> Self {
        self.wanted = Some(wanted);
        self
    }

    /// Whether a hello naming `sni` is to be fingerprinted (counts a skip).
    pub fn wants(&mut self, sni: Option<&str>) -> bool {
        let wanted = match (&self.wanted, sni) {
            (Some(f), Some(name)) => f(name),
            _ => true,
        };
        self.skipped += u64::from(!wanted);
        wanted
    }

    /// The fingerprints of a ClientHello: its version field, cipher suites
    /// and extension block (type, length, data repeated); and its raw
    /// strings when they are wanted and fit the budget.
    pub fn fingerprint(
        &mut self,
        hello_version: u16,
        ciphers: impl Iterator<Item = u16>,
        extensions: &[u8],
    ) -> (Fingerprint, Option<Arc<RawFingerprint>>) {
        // The ciphers without GREASE, once, in wire order (every use below
        // walks this list).
        let mut cs = std::mem::take(&mut self.ciphers);
        cs.clear();
        cs.extend(ciphers.filter(|c| !is_grease(*c)));
        let result = if self.policies.is_some() {
            self.fingerprint_with::<true>(hello_version, &mut cs, extensions)
        } else {
            self.fingerprint_with::<false>(hello_version, &mut cs, extensions)
        };
        self.ciphers = cs;
        result
    }

    /// `JUDGE`: the walk also gathers what server policies judge by (the
    /// common path without policies compiles without it).
    fn fingerprint_with<const JUDGE: bool>(
        &mut self,
        hello_version: u16,
        cs: &mut [u16],
        extensions: &[u8],
    ) -> (Fingerprint, Option<Arc<RawFingerprint>>) {
        // The hashed parts depend only on the two lists as sets (JA4 sorts
        // them) and the signature algorithms in order: a stack that says
        // hello again (the common case, whatever order it shuffles its
        // extensions in) costs one walk with a keyed, order-free sum, not
        // collecting, sorting and two SHA-256s.
        let (k0, k1) = self.sum_keys;
        let mix = |x: u16, k: u64| {
            let v = (u64::from(x) ^ k).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            v ^ (v >> 29)
        };
        let (mut sni, mut alpn, mut sigalgs, mut versions) = (false, None, &[][..], &[][..]);
        let (mut groups, mut formats) = (&[][..], &[][..]);
        // What a server's choice depends on besides (read only for policies).
        let mut offer = Offer {
            legacy_version: hello_version,
            ..Offer::default()
        };
        let (mut n_exts, mut n_hashed, mut ext_sum) = (0usize, 0usize, 0u64);
        let mut rest = extensions;
        while let [a, b, c, d, tail @ ..] = rest {
            let t = u16::from_be_bytes([*a, *b]);
            let len = usize::from(u16::from_be_bytes([*c, *d]));
            let Some(data) = tail.get(..len) else {
                break;
            };
            rest = &tail[len..];
            if is_grease(t) {
                continue;
            }
            n_exts += 1;
            match t {
                EXT_SNI => sni = true,
                EXT_ALPN => {
                    // protocol_name_list<2..2^16-1> of opaque<1..2^8-1>
                    if let [_, _, n, names @ ..] = data {
                        alpn = names.get(..usize::from(*n));
                    }
                }
                EXT_SIGNATURE_ALGORITHMS => sigalgs = data.get(2..).unwrap_or(&[]),
                EXT_SUPPORTED_VERSIONS => versions = data.get(1..).unwrap_or(&[]),
                EXT_GROUPS => groups = data.get(2..).unwrap_or(&[]),
                EXT_POINT_FORMATS => formats = data.get(1..).unwrap_or(&[]),
                _ => {}
            }
            if JUDGE {
                // The first of a repeated extension is the one a server reads.
                match t {
                    EXT_SNI => offer.server_name = true,
                    EXT_SUPPORTED_VERSIONS if offer.versions.is_none() => {
                        offer.versions = Some(list8(data));
                    }
                    EXT_GROUPS if offer.groups.is_none() => offer.groups = Some(list16(data)),
                    EXT_SIGNATURE_ALGORITHMS if offer.sigalgs.is_none() => {
                        offer.sigalgs = Some(list16(data));
                    }
                    EXT_KEY_SHARE if offer.key_shares.is_none() => {
                        offer.key_shares = Some(list16(data));
                    }
                    EXT_EXTENDED_MASTER_SECRET => offer.extended_master_secret = true,
                    EXT_RENEGOTIATION_INFO => offer.renegotiation_info = true,
                    _ => {}
                }
            }
            if t != EXT_SNI && t != EXT_ALPN {
                n_hashed += 1;
                ext_sum = ext_sum.wrapping_add(mix(t, k1));
            }
        }
        if JUDGE && let Some(policies) = &self.policies {
            offer.ciphers = cs;
            self.verdicts = policies.judge(&offer);
        }
        let version = u16s(versions)
            .filter(|v| !is_grease(*v))
            .max()
            .unwrap_or(hello_version);
        let (mut n_ciphers, mut cipher_sum) = (0usize, 0u64);
        for &c in cs.iter() {
            n_ciphers += 1;
            cipher_sum = cipher_sum.wrapping_add(mix(c, k0));
        }
        let mut sig_hash = 0u64;
        for s in u16s(sigalgs).filter(|s| !is_grease(*s)) {
            sig_hash = (sig_hash ^ u64::from(s)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let key = self.keys.hash_one((
            cipher_sum,
            ext_sum,
            n_ciphers,
            n_hashed,
            sig_hash,
            sigalgs.len(),
        )) | 1;

        let mut ja4 = [b'0'; 36];
        ja4[0] = b't';
        ja4[1..3].copy_from_slice(&version_code(version));
        ja4[3] = if sni { b'd' } else { b'i' };
        ja4[4..6].copy_from_slice(&count(n_ciphers));
        ja4[6..8].copy_from_slice(&count(n_exts));
        ja4[8..10].copy_from_slice(&alpn_code(alpn));
        ja4[10] = b'_';
        ja4[23] = b'_';
        let want_raw = self.raw_budget.is_some();
        let hit = match self.cache.get(key) {
            Some(parts) if !want_raw => {
                ja4[11..23].copy_from_slice(&parts[..12]);
                ja4[24..36].copy_from_slice(&parts[12..]);
                true
            }
            _ => false,
        };
        if hit && !self.ja3 {
            return (Fingerprint { ja4, ja3_md5: None }, None);
        }
        // JA3 by a keyed hash of its inputs in wire order (a stack that
        // says hello again costs a walk, not the string and an MD5).
        let ja3_key = (self.ja3 && !want_raw)
            .then(|| self.ja3_key(hello_version, cs, extensions, groups, formats) | 1);
        let ja3_hit = ja3_key.and_then(|key| self.ja3_cache.get(key));
        if hit && ja3_hit.is_some() {
            return (
                Fingerprint {
                    ja4,
                    ja3_md5: ja3_hit,
                },
                None,
            );
        }
        // The lists themselves: for JA3 (wire order) or a miss (sorted).
        let Fingerprinter {
            exts,
            sig,
            text,
            ja3_text,
            ..
        } = self;
        exts.clear();
        let mut rest = extensions;
        while let [a, b, c, d, tail @ ..] = rest {
            let t = u16::from_be_bytes([*a, *b]);
            let len = usize::from(u16::from_be_bytes([*c, *d]));
            if tail.len() < len {
                break;
            }
            rest = &tail[len..];
            if !is_grease(t) {
                exts.push(t);
            }
        }
        // JA3 keeps wire order: build it before sorting.
        let mut ja3_md5 = ja3_hit;
        if self.ja3 && ja3_hit.is_none() {
            ja3_text.clear();
            crate::text::decimal(ja3_text, u64::from(hello_version));
            ja3_text.push(b',');
            dec_list(cs.iter().copied(), ja3_text);
            ja3_text.push(b',');
            dec_list(exts.iter().copied(), ja3_text);
            ja3_text.push(b',');
            dec_list(u16s(groups).filter(|g| !is_grease(*g)), ja3_text);
            ja3_text.push(b',');
            dec_list(formats.iter().map(|f| u16::from(*f)), ja3_text);
            let mut md5 = [0u8; 16];
            md5.copy_from_slice(&Md5::digest(&ja3_text[..]));
            ja3_md5 = Some(md5);
            if let Some(key) = ja3_key {
                self.ja3_cache.put(key, md5, self.computed > 0);
            }
        }
        if hit {
            return (Fingerprint { ja4, ja3_md5 }, None);
        }
        exts.retain(|e| *e != EXT_SNI && *e != EXT_ALPN);
        sig.clear();
        sig.extend(u16s(sigalgs).filter(|s| !is_grease(*s)));
        cs.sort_unstable();
        exts.sort_unstable();
        text.clear();
        hex_list(cs, text);
        sha12(text, &mut ja4[11..23]);
        text.push(b'_');
        let exts_start = text.len();
        hex_list(exts, text);
        if !exts.is_empty() && !sig.is_empty() {
            text.push(b'_');
            hex_list(sig, text);
        }
        sha12(&text[exts_start..], &mut ja4[24..36]);
        // A one-off (the first hello of a fingerprinter) allocates no cache.
        let mut parts = [0u8; 24];
        parts[..12].copy_from_slice(&ja4[11..23]);
        parts[12..].copy_from_slice(&ja4[24..36]);
        self.cache.put(key, parts, self.computed > 0);
        self.computed += 1;
        let fp = Fingerprint { ja4, ja3_md5 };
        if !want_raw {
            return (fp, None);
        }
        let raw = self.keep_raw(&fp);
        (fp, raw)
    }

    /// A keyed hash of JA3's inputs: the version, then the ciphers, the
    /// extension types and the groups in wire order without GREASE, and
    /// the point formats, each list followed by its length (so the
    /// sequence of values hashed says where each list ends).
    fn ja3_key(
        &self,
        hello_version: u16,
        ciphers: &[u16],
        extensions: &[u8],
        groups: &[u8],
        formats: &[u8],
    ) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = self.keys.build_hasher();
        h.write_u16(hello_version);
        for &c in ciphers {
            h.write_u16(c);
        }
        h.write_usize(ciphers.len());
        let mut n = 0usize;
        let mut rest = extensions;
        while let [a, b, c, d, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*c, *d]));
            if tail.len() < len {
                break;
            }
            rest = &tail[len..];
            let t = u16::from_be_bytes([*a, *b]);
            if !is_grease(t) {
                h.write_u16(t);
                n += 1;
            }
        }
        h.write_usize(n);
        n = 0;
        for g in u16s(groups).filter(|g| !is_grease(*g)) {
            h.write_u16(g);
            n += 1;
        }
        h.write_usize(n);
        for f in formats {
            h.write_u16(u16::from(*f));
        }
        h.write_usize(formats.len());
        h.finish()
    }

    /// The raw strings of the hello just fingerprinted (in `text` and
    /// `ja3_text`), if the budget has room.
    fn keep_raw(&mut self, fp: &Fingerprint) -> Option<Arc<RawFingerprint>> {
        let budget = self.raw_budget.as_ref()?;
        let need = 11 + self.text.len() + self.ja3_text.len();
        let taken = budget.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(need)
        });
        if taken.is_err() {
            self.raw_dropped += 1;
            return None;
        }
        let mut ja4_r = String::with_capacity(11 + self.text.len());
        ja4_r.push_str(&fp.ja4()[..11]);
        ja4_r.push_str(&String::from_utf8_lossy(&self.text));
        Some(Arc::new(RawFingerprint {
            ja4_r: ja4_r.into_boxed_str(),
            ja3: String::from_utf8_lossy(&self.ja3_text).into(),
            budget: Arc::clone(budget),
        }))
    }
}

/// The fingerprints (JA4, JA3) of a ClientHello (a one-off: reports and
/// tests; the flow tables use a [`Fingerprinter`]).
pub fn fingerprint(hello_version: u16, ciphers: &[u16], extensions: &[u8]) -> Fingerprint {
    Fingerprinter::with_ja3()
        .fingerprint(hello_version, ciphers.iter().copied(), extensions)
        .0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::craft::extension as ext;

    fn alpn(names: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(n.len() as u8);
            list.extend_from_slice(n);
        }
        let mut d = (list.len() as u16).to_be_bytes().to_vec();
        d.extend(list);
        ext(EXT_ALPN, &d)
    }

    #[test]
    fn ja4_alpn_rules() {
        // FoxIO's examples of the hex rule.
        let cases: [(&[u8], &str); 8] = [
            (&[0xab], "ab"),
            (&[0x20], "20"),
            (&[0xab, 0xcd], "ad"),
            (&[0x20, 0x61], "21"),
            (&[0x30, 0xab], "3b"),
            (&[0x61, 0x20], "60"),
            (&[0x30, 0x31, 0xab, 0xcd], "3d"),
            (&[0x30, 0xab, 0xcd, 0x31], "01"),
        ];
        for (v, want) in cases {
            assert_eq!(alpn_code(Some(v)), want.as_bytes(), "{v:?}");
        }
        assert_eq!(&alpn_code(Some(b"h2")), b"h2");
        assert_eq!(&alpn_code(Some(b"http/1.1")), b"h1");
        assert_eq!(&alpn_code(Some(b"x")), b"xx");
        assert_eq!(&alpn_code(None), b"00");
        assert_eq!(&alpn_code(Some(b"")), b"00");
    }

    /// FoxIO's worked example: the extension list and signature algorithms
    /// of their technical details hash to e5627efa2ab1 (6d807ffa2a79 without
    /// signature algorithms).
    #[test]
    fn ja4_extension_hash_example() {
        let exts = [
            0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
            0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
        ];
        let sig = [
            0x0403u16, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ];
        let mut block = Vec::new();
        for e in exts {
            let data: Vec<u8> = match e {
                0x000d => {
                    let mut d = ((sig.len() * 2) as u16).to_be_bytes().to_vec();
                    sig.iter().for_each(|s| d.extend(s.to_be_bytes()));
                    d
                }
                0x002b => vec![2, 3, 4],
                _ => vec![],
            };
            block.extend(match e {
                0x0010 => alpn(&[b"h2", b"http/1.1"]),
                _ => ext(e, &data),
            });
        }
        let f = fingerprint(0x0303, &[0x1301, 0x1302], &block);
        assert_eq!(&f.ja4()[..10], "t13d0216h2");
        assert_eq!(&f.ja4()[24..], "e5627efa2ab1");
        // Without signature algorithms (an empty list) the extension list
        // alone is hashed: FoxIO's 6d807ffa2a79.
        let no_sig: Vec<u8> = exts
            .iter()
            .flat_map(|e| match *e {
                0x000d => ext(*e, &[0, 0]),
                _ => ext(*e, &[]),
            })
            .collect();
        let f = fingerprint(0x0303, &[], &no_sig);
        assert_eq!(&f.ja4()[24..], "6d807ffa2a79");
        assert_eq!(&f.ja4()[11..23], "000000000000");
    }

    #[test]
    fn ja4_grease_counts_and_versions() {
        // GREASE ciphers, extensions and versions are ignored everywhere.
        let mut block = ext(0x0a0a, &[]);
        block.extend(ext(EXT_SUPPORTED_VERSIONS, &[4, 0x2a, 0x2a, 3, 3]));
        let f = fingerprint(0x0301, &[0x1a1a, 0x002f], &block);
        assert_eq!(&f.ja4()[..10], "t12i010100");
        // No supported_versions: the hello's version; SSL 3.0 and unknown.
        assert_eq!(
            &fingerprint(0x0300, &[0x002f], &[]).ja4()[..10],
            "ts3i010000"
        );
        assert_eq!(
            &fingerprint(0x0305, &[0x002f], &[]).ja4()[..10],
            "t00i010000"
        );
        // Over 99 entries: 99.
        let many: Vec<u16> = (1..=150).collect();
        assert_eq!(&fingerprint(0x0303, &many, &[]).ja4()[4..6], "99");
        // Empty lists hash to zeros.
        let f = fingerprint(0x0303, &[], &[]);
        assert_eq!(f.ja4(), "t12i000000_000000000000_000000000000");
    }

    #[test]
    fn ja3_string_and_hash() {
        // JA3 of a hello with ciphers 47 and 53, extensions 0, 10 (groups
        // 29, 23) and 11 (format 0), GREASE dropped; the MD5 of
        // "771,47-53,0-10-11,29-23,0".
        let mut block = ext(0, &[0, 0]);
        block.extend(ext(EXT_GROUPS, &[0, 6, 0x2a, 0x2a, 0, 29, 0, 23]));
        block.extend(ext(EXT_POINT_FORMATS, &[1, 0]));
        block.extend(ext(0x1a1a, &[]));
        let f = fingerprint(0x0303, &[0x002f, 0x0a0a, 0x0035], &block);
        assert_eq!(
            f.ja3_hash().as_deref(),
            Some("780f051449fc49c0047fdecbdb1b53c8")
        );
        // A broken extension ends the walk with what was read: nothing.
        let f = fingerprint(0x0303, &[1], &[0, 1, 0xff, 0xff, 1]);
        assert_eq!(&f.ja4()[..10], "t12i010000");
    }

    /// FoxIO's tls12.pcap sample (Firefox): the hello rebuilt from its
    /// published JA4_ro (wire order) gives their JA4 and JA4_r.
    #[test]
    fn ja4_r_foxio_sample() {
        let ciphers = [
            0x1301, 0x1303, 0x1302, 0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009,
            0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
        ];
        let sig = [
            0x0403u16, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203,
            0x0201,
        ];
        let exts = [
            0x0000u16, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x0022, 0x0033,
            0x002b, 0x000d, 0x002d, 0x001c, 0x0015,
        ];
        let mut block = Vec::new();
        for e in exts {
            block.extend(match e {
                0x0010 => alpn(&[b"h2", b"http/1.1"]),
                0x002b => ext(e, &[4, 3, 4, 3, 3]),
                0x000d => {
                    let mut d = ((sig.len() * 2) as u16).to_be_bytes().to_vec();
                    sig.iter().for_each(|s| d.extend(s.to_be_bytes()));
                    ext(e, &d)
                }
                _ => ext(e, &[]),
            });
        }
        let mut f = Fingerprinter::with_raw(RAW_BUDGET);
        let (fp, raw) = f.fingerprint(0x0303, ciphers.into_iter(), &block);
        assert_eq!(fp.ja4(), "t13d1715h2_5b57614c22b0_3d5424432f57");
        let raw = raw.expect("raw strings within the budget");
        assert_eq!(
            &*raw.ja4_r,
            "t13d1715h2_002f,0035,009c,009d,1301,1302,1303,c009,c00a,c013,c014,c02b,c02c,c02f,\
             c030,cca8,cca9_0005,000a,000b,000d,0015,0017,001c,0022,0023,002b,002d,0033,ff01_\
             0403,0503,0603,0804,0805,0806,0401,0501,0601,0203,0201"
        );
        assert!(
            raw.ja3.starts_with("771,4865-4867-4866-49195-"),
            "{}",
            raw.ja3
        );
        // The strings come out of the budget and go back when dropped.
        let held = raw.ja4_r.len() + raw.ja3.len();
        let left = |f: &Fingerprinter| f.raw_budget.as_ref().map(|b| b.load(Ordering::Relaxed));
        assert_eq!(left(&f), Some(RAW_BUDGET - held));
        drop(raw);
        assert_eq!(left(&f), Some(RAW_BUDGET));
    }

    #[test]
    fn raw_budget_bound_counted() {
        let mut f = Fingerprinter::with_raw(300);
        let ciphers = [0x1301u16, 0x1302, 0x1303];
        let (_, first) = f.fingerprint(0x0303, ciphers.into_iter(), &[]);
        assert!(first.is_some());
        let mut kept = vec![first];
        for _ in 0..20 {
            kept.push(f.fingerprint(0x0303, ciphers.into_iter(), &[]).1);
        }
        let missing = kept.iter().filter(|r| r.is_none()).count() as u64;
        assert!(missing > 0);
        assert_eq!(f.raw_dropped, missing);
        // Hashes are never dropped, only strings; freed room is used again.
        kept.clear();
        assert!(f.fingerprint(0x0303, ciphers.into_iter(), &[]).1.is_some());
        // Without raw strings asked for, none are made; JA3 only when asked.
        let mut plain = Fingerprinter::ja4_only();
        let (fp, raw) = plain.fingerprint(0x0303, ciphers.into_iter(), &[]);
        assert!(raw.is_none() && fp.ja3_hash().is_none());
        let mut ja3 = Fingerprinter::with_ja3();
        let (fp, raw) = ja3.fingerprint(0x0303, ciphers.into_iter(), &[]);
        assert!(raw.is_none() && fp.ja3_hash().is_some());
    }

    /// The cache gives what a fresh computation gives: the same stack with
    /// its extensions shuffled (as Chrome does) hits; another cipher list
    /// does not.
    #[test]
    fn cache_agrees_with_fresh() {
        let mut block = ext(EXT_SUPPORTED_VERSIONS, &[4, 3, 4, 3, 3]);
        block.extend(ext(EXT_GROUPS, &[0, 2, 0, 29]));
        block.extend(ext(EXT_SIGNATURE_ALGORITHMS, &[0, 4, 4, 3, 8, 4]));
        let mut shuffled = ext(EXT_SIGNATURE_ALGORITHMS, &[0, 4, 4, 3, 8, 4]);
        shuffled.extend(ext(EXT_GROUPS, &[0, 2, 0, 29]));
        shuffled.extend(ext(EXT_SUPPORTED_VERSIONS, &[4, 3, 4, 3, 3]));
        let mut grease = ext(0x0a0a, &[]);
        grease.extend_from_slice(&block);
        let cases: [(&[u16], &[u8]); 6] = [
            (&[0x1301, 0x1302], &block),
            (&[0x1301, 0x1302], &shuffled),
            (&[0x1302, 0x1301], &block),
            (&[0x1301, 0x1303], &block),
            (&[0x1301, 0x1302, 0x2a2a], &block),
            (&[0x1301, 0x1302], &grease),
        ];
        for mut warm in [Fingerprinter::ja4_only(), Fingerprinter::with_ja3()] {
            let ja3 = warm.ja3;
            // Twice: misses, then hits.
            for _ in 0..2 {
                for (ciphers, exts) in cases {
                    let cached = warm.fingerprint(0x0303, ciphers.iter().copied(), exts).0;
                    let fresh = fingerprint(0x0303, ciphers, exts);
                    assert_eq!(cached.ja4(), fresh.ja4(), "{ciphers:?}");
                    if ja3 {
                        assert_eq!(cached.ja3_hash(), fresh.ja3_hash(), "{ciphers:?}");
                    }
                }
            }
        }
        let mut warm = Fingerprinter::with_ja3();
        let (x, y) = (
            warm.fingerprint(0x0303, [0x1301u16, 0x1302].into_iter(), &block)
                .0,
            warm.fingerprint(0x0303, [0x1301u16, 0x1302].into_iter(), &shuffled)
                .0,
        );
        assert!(
            x.same_ja4(&y) && x.ja3_hash() != y.ja3_hash(),
            "JA3 keeps wire order"
        );
        let a = warm
            .fingerprint(0x0303, [0x1301u16, 0x1302].into_iter(), &block)
            .0;
        let b = warm
            .fingerprint(0x0303, [0x1301u16, 0x1303].into_iter(), &block)
            .0;
        assert!(!a.same_ja4(&b));
    }

    /// Keys that share a first slot are both kept (each moves to its other
    /// slot in turn); a one-off allocates nothing.
    #[test]
    fn cache_two_slots_per_key() {
        let mut c = Cache::<u8>::new();
        c.put(7, 1, false);
        assert!(c.slots.is_empty() && c.get(7).is_none());
        // Same low bits (first slot), different high bits (other slot).
        let (a, b, third) = (7 | (1 << 32), 7 | (2 << 32), 7 | (3 << 32));
        c.put(a, 1, true);
        c.put(b, 2, true);
        assert_eq!((c.get(a), c.get(b)), (Some(1), Some(2)));
        c.put(a, 3, true);
        assert_eq!((c.get(a), c.get(b)), (Some(3), Some(2)));
        c.put(third, 4, true);
        assert_eq!(c.get(third), Some(4));
        assert_eq!(c.slots.iter().filter(|(k, _)| *k != 0).count(), 3);
        assert_eq!(c.get(5), None);
    }
}
