//! Server TLS policies, and what each would make of a ClientHello.
//!
//! Input: the policies of the configuration, built-in presets
//! ([`presets`]) and files ([`file`]), each turned into a
//! [`ServerPolicy`]; then, per ClientHello, an [`Offer`]: the slices of the
//! hello that the fingerprinter's one walk over it found. Output: one
//! [`Verdict`] per policy, packed into a [`Verdicts`] word that travels
//! with the flow's facts to the inventory, the counters and the events.
//! Judging ([`eval`]) follows the server side of the RFCs: the version
//! first (supported_versions, else the legacy field), then the cipher
//! suite, then the group and the signature algorithm that suite needs, then
//! the policy's requirements. At most [`MAX_POLICIES`] policies; nothing here
//! allocates per hello or panics on any input.

pub mod eval;
pub mod file;
pub mod presets;

pub use eval::Offer;

/// Policies one configuration may judge by: each is a label value of
/// `tlscensus_policy_flows_total` and a bit of a host's record.
pub const MAX_POLICIES: usize = 8;

/// The protocol versions a policy can accept, oldest first: bit `i` of a
/// version mask is `VERSIONS[i]`.
pub const VERSIONS: [u16; 5] = [0x0300, 0x0301, 0x0302, 0x0303, 0x0304];

/// The bit of a version mask for wire version `v` (SSL 3.0 to TLS 1.3).
pub const fn version_bit(v: u16) -> u8 {
    match v {
        0x0300..=0x0304 => 1 << (v - 0x0300),
        _ => 0,
    }
}

crate::label_set! {
    /// A requirement a policy may add to what negotiation needs.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Requirement {
        /// supported_groups lists a post-quantum hybrid group.
        PqHybridGroup = "pq-hybrid-group",
        /// key_share carries a post-quantum hybrid share (no extra round trip).
        PqHybridKeyShare = "pq-hybrid-key-share",
        /// extended_master_secret (RFC 7627), below TLS 1.3.
        ExtendedMasterSecret = "extended-master-secret",
        /// renegotiation_info or its SCSV (RFC 5746), below TLS 1.3.
        SecureRenegotiation = "secure-renegotiation",
        /// server_name (SNI).
        ServerName = "server-name",
    }
}

crate::label_set! {
    /// `reason` values of `tlscensus_policy_flows_total`: why a flow fails
    /// a policy (`none` when it passes, `no_hello` when it could not be
    /// judged).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Reason {
        None = "none",
        NoCommonVersion = "no_common_version",
        NoCommonSuite = "no_common_suite",
        NoCommonGroup = "no_common_group",
        NoCommonSigalg = "no_common_signature_algorithm",
        MissingRequirement = "missing_requirement",
        /// No whole ClientHello was read (mid-stream, or cut by the capture).
        NoHello = "no_hello",
    }
}

crate::label_set! {
    /// `verdict` values of `tlscensus_policy_flows_total`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum Outcome {
        Pass = "pass",
        Fail = "fail",
        Unknown = "unknown",
    }
}

impl Reason {
    /// The verdict this reason goes with.
    pub const fn outcome(self) -> Outcome {
        match self {
            Reason::None => Outcome::Pass,
            Reason::NoHello => Outcome::Unknown,
            _ => Outcome::Fail,
        }
    }
}

/// What a server holding one policy would do with one ClientHello.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The handshake would fail; for a missing requirement, which one.
    Fail(Reason, Option<Requirement>),
}

impl Verdict {
    pub const fn reason(self) -> Reason {
        match self {
            Verdict::Pass => Reason::None,
            Verdict::Fail(r, _) => r,
        }
    }

    /// 4 bits: 0 is "not judged", 1 a pass, 2..=5 a failure by reason,
    /// 6.. a missing requirement by its index.
    const fn code(self) -> u32 {
        match self {
            Verdict::Pass => 1,
            Verdict::Fail(Reason::MissingRequirement, Some(r)) => 6 + r.index() as u32,
            Verdict::Fail(Reason::NoCommonVersion, _) => 2,
            Verdict::Fail(Reason::NoCommonSuite, _) => 3,
            Verdict::Fail(Reason::NoCommonGroup, _) => 4,
            Verdict::Fail(Reason::NoCommonSigalg, _) => 5,
            // (not made by judging; kept apart from a pass all the same)
            Verdict::Fail(_, _) => 2,
        }
    }

    const fn of_code(c: u32) -> Option<Verdict> {
        Some(match c {
            1 => Verdict::Pass,
            2 => Verdict::Fail(Reason::NoCommonVersion, None),
            3 => Verdict::Fail(Reason::NoCommonSuite, None),
            4 => Verdict::Fail(Reason::NoCommonGroup, None),
            5 => Verdict::Fail(Reason::NoCommonSigalg, None),
            6..=15 => {
                let i = (c - 6) as usize;
                if i < Requirement::ALL.len() {
                    Verdict::Fail(Reason::MissingRequirement, Some(Requirement::ALL[i]))
                } else {
                    return None;
                }
            }
            _ => return None,
        })
    }

    /// `pass`, or the reason (`missing_requirement:pq-hybrid-group`).
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail(Reason::MissingRequirement, Some(r)) => match r {
                Requirement::PqHybridGroup => "missing_requirement:pq-hybrid-group",
                Requirement::PqHybridKeyShare => "missing_requirement:pq-hybrid-key-share",
                Requirement::ExtendedMasterSecret => "missing_requirement:extended-master-secret",
                Requirement::SecureRenegotiation => "missing_requirement:secure-renegotiation",
                Requirement::ServerName => "missing_requirement:server-name",
            },
            Verdict::Fail(r, _) => r.as_str(),
        }
    }
}

/// One verdict per configured policy (by position), 4 bits each: 32 bits,
/// which a flow's facts carry without growing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts(u32);

impl Verdicts {
    pub fn set(&mut self, policy: usize, v: Verdict) {
        if policy < MAX_POLICIES {
            let shift = 4 * policy;
            self.0 = (self.0 & !(0xf << shift)) | (v.code() << shift);
        }
    }

    /// The verdict of policy `policy`; `None` when it was not judged.
    pub fn get(self, policy: usize) -> Option<Verdict> {
        if policy >= MAX_POLICIES {
            return None;
        }
        Verdict::of_code((self.0 >> (4 * policy)) & 0xf)
    }

    /// Whether any policy was judged.
    pub fn judged(self) -> bool {
        self.0 != 0
    }

    /// A bit per policy the flow fails (a code of 2 or more: any of a
    /// nibble's upper three bits), without a loop when none was judged.
    pub fn failed(self) -> u16 {
        const LOW: u32 = 0x1111_1111;
        let x = self.0;
        if x == 0 {
            return 0;
        }
        let mut nibbles = ((x >> 1) | (x >> 2) | (x >> 3)) & LOW;
        let mut bits = 0u16;
        while nibbles != 0 {
            let at = nibbles.trailing_zeros();
            bits |= 1 << (at / 4);
            nibbles &= nibbles - 1;
        }
        bits
    }
}

/// How a TLS 1.2-and-older suite agrees its keys (what it needs of the
/// hello's groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyExchange {
    /// ECDHE: a group both sides accept.
    Ecdhe,
    /// Finite-field DHE with the server's own parameters.
    Dhe,
    /// RSA key transport: the server's RSA key, no signature.
    Rsa,
    /// A TLS 1.3 suite (the key exchange is negotiated apart).
    Tls13,
    /// Anything else (static DH/ECDH, PSK, SRP, anonymous): nothing the
    /// hello's groups decide.
    Other,
}

/// Which certificate a suite's server signs with (TLS 1.2 and older).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authentication {
    Rsa,
    Ecdsa,
    Dss,
    /// TLS 1.3 suites, anonymous and PSK suites: nothing the suite decides.
    Any,
}

/// A cipher suite a policy accepts, and at which versions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    /// Version mask: where the policy accepts it and the RFCs allow it.
    pub versions: u8,
    pub kx: KeyExchange,
    pub auth: Authentication,
}

/// A server TLS policy: what a server configured with it accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerPolicy {
    /// Label value (`[a-z0-9][a-z0-9._-]*`, at most 40 bytes).
    pub name: String,
    /// One line saying what it is.
    pub title: String,
    /// Where it is published (a URL or a document), or the file it came from.
    pub source: String,
    /// Version mask over [`VERSIONS`].
    pub versions: u8,
    /// In the policy's order.
    pub suites: Vec<Suite>,
    /// Named groups, in the policy's order.
    pub groups: Vec<u16>,
    /// Signature schemes the server signs with, in the policy's order.
    pub sigalgs: Vec<u16>,
    pub require: Vec<Requirement>,
    /// Membership of `suites` by id: a bit per cipher suite value.
    suite_bits: SuiteBits,
}

/// A bit per cipher suite value (8 KiB), compared and shown by its suites.
#[derive(Clone, PartialEq, Eq)]
struct SuiteBits(Box<[u64; 1024]>);

impl std::fmt::Debug for SuiteBits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n: u32 = self.0.iter().map(|w| w.count_ones()).sum();
        write!(f, "SuiteBits({n} suites)")
    }
}

impl ServerPolicy {
    /// A policy from its parts (checked by [`file`]); suites listed twice
    /// are kept once, with both version masks.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        title: String,
        source: String,
        versions: u8,
        suites: Vec<Suite>,
        groups: Vec<u16>,
        sigalgs: Vec<u16>,
        require: Vec<Requirement>,
    ) -> ServerPolicy {
        let mut merged: Vec<Suite> = Vec::with_capacity(suites.len());
        for s in suites {
            match merged.iter_mut().find(|m| m.id == s.id) {
                Some(m) => m.versions |= s.versions,
                None => merged.push(s),
            }
        }
        let mut suite_bits = SuiteBits(Box::new([0u64; 1024]));
        for s in &merged {
            suite_bits.0[usize::from(s.id >> 6)] |= 1 << (s.id & 63);
        }
        let mut groups_seen = Vec::with_capacity(groups.len());
        for g in groups {
            if !groups_seen.contains(&g) {
                groups_seen.push(g);
            }
        }
        let mut sigalgs_seen = Vec::with_capacity(sigalgs.len());
        for s in sigalgs {
            if !sigalgs_seen.contains(&s) {
                sigalgs_seen.push(s);
            }
        }
        let mut require_seen = Vec::with_capacity(require.len());
        for r in require {
            if !require_seen.contains(&r) {
                require_seen.push(r);
            }
        }
        ServerPolicy {
            name,
            title,
            source,
            versions,
            suites: merged,
            groups: groups_seen,
            sigalgs: sigalgs_seen,
            require: require_seen,
            suite_bits,
        }
    }

    /// The suite `id` if the policy accepts it at some version.
    pub fn suite(&self, id: u16) -> Option<&Suite> {
        let word = self.suite_bits.0.get(usize::from(id >> 6))?;
        if word & (1 << (id & 63)) == 0 {
            return None;
        }
        self.suites.iter().find(|s| s.id == id)
    }

    /// The accepted versions' names, oldest first.
    pub fn version_names(&self) -> Vec<&'static str> {
        VERSIONS
            .iter()
            .filter(|v| self.versions & version_bit(**v) != 0)
            .filter_map(|v| crate::tls::names::version_name(*v))
            .collect()
    }
}

/// The policies of a configuration, in the order given (a policy's index is
/// its place in every [`Verdicts`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicySet {
    policies: Vec<ServerPolicy>,
}

impl PolicySet {
    /// At most [`MAX_POLICIES`] policies with distinct names.
    pub fn new(policies: Vec<ServerPolicy>) -> Result<PolicySet, String> {
        if policies.len() > MAX_POLICIES {
            return Err(format!(
                "{} policies given; at most {MAX_POLICIES}",
                policies.len()
            ));
        }
        for (i, p) in policies.iter().enumerate() {
            if policies[..i].iter().any(|q| q.name == p.name) {
                return Err(format!("two policies are named {:?}", p.name));
            }
        }
        Ok(PolicySet { policies })
    }

    /// The policies named by `--policy` values: each a preset's name or a
    /// policy file.
    pub fn from_args(values: &[String]) -> Result<PolicySet, String> {
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            out.push(resolve(v)?);
        }
        PolicySet::new(out)
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ServerPolicy> {
        self.policies.iter()
    }

    pub fn get(&self, i: usize) -> Option<&ServerPolicy> {
        self.policies.get(i)
    }

    /// The names of the policies set in `bits`, in configuration order.
    pub fn names(&self, bits: u16) -> Vec<&str> {
        (self.policies.iter().enumerate())
            .filter(|(i, _)| bits & (1 << i) != 0)
            .map(|(_, p)| p.name.as_str())
            .collect()
    }

    /// Every policy's verdict on one hello.
    pub fn judge(&self, offer: &Offer<'_>) -> Verdicts {
        let mut out = Verdicts::default();
        for (i, p) in self.policies.iter().enumerate() {
            out.set(i, eval::judge(p, offer));
        }
        out
    }
}

/// A preset by name, else the policy file at that path.
pub fn resolve(value: &str) -> Result<ServerPolicy, String> {
    if let Some(p) = presets::get(value) {
        return Ok(p);
    }
    let path = std::path::Path::new(value);
    if path.exists() {
        return file::load(path);
    }
    let names: Vec<&str> = presets::ALL.iter().map(|p| p.0).collect();
    Err(format!(
        "--policy {value:?}: neither a preset ({}) nor a policy file",
        names.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_pack_eight_policies() {
        let mut v = Verdicts::default();
        assert!(!v.judged());
        let all = [
            Verdict::Pass,
            Verdict::Fail(Reason::NoCommonVersion, None),
            Verdict::Fail(Reason::NoCommonSuite, None),
            Verdict::Fail(Reason::NoCommonGroup, None),
            Verdict::Fail(Reason::NoCommonSigalg, None),
        ];
        for i in 0..MAX_POLICIES {
            let verdict = match i.checked_sub(all.len()) {
                None => all[i],
                Some(j) => Verdict::Fail(
                    Reason::MissingRequirement,
                    Some(Requirement::ALL[j % Requirement::ALL.len()]),
                ),
            };
            v.set(i, verdict);
        }
        for i in 0..MAX_POLICIES {
            let got = v.get(i).unwrap();
            assert_eq!(got.reason().outcome() == Outcome::Pass, i == 0);
            v.set(i, got);
        }
        assert_eq!(v.failed(), 0xfe);
        let by_get = (0..MAX_POLICIES)
            .filter(|i| matches!(v.get(*i), Some(Verdict::Fail(..))))
            .fold(0u16, |b, i| b | 1 << i);
        assert_eq!(by_get, 0xfe);
        assert_eq!(Verdicts::default().failed(), 0);
        assert_eq!(v.get(8), None);
        v.set(8, Verdict::Pass); // beyond the cap: ignored
        assert_eq!(v.failed(), 0xfe);
        assert_eq!(
            v.get(5).map(Verdict::text),
            Some("missing_requirement:pq-hybrid-group")
        );
        for r in Requirement::ALL {
            let mut one = Verdicts::default();
            let verdict = Verdict::Fail(Reason::MissingRequirement, Some(r));
            one.set(MAX_POLICIES - 1, verdict);
            assert_eq!(one.get(MAX_POLICIES - 1), Some(verdict));
            assert_eq!(one.failed(), 1 << (MAX_POLICIES - 1));
            assert!(verdict.text().ends_with(r.as_str()));
        }
    }

    #[test]
    fn version_bits() {
        assert_eq!(version_bit(0x0300), 1);
        assert_eq!(version_bit(0x0304), 16);
        assert_eq!(version_bit(0x0305), 0);
        assert_eq!(version_bit(0x7f17), 0);
        assert_eq!(version_bit(0x0002), 0);
    }
}
