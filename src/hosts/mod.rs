//! Who a source is: the software behind its hellos (client labels from a
//! fingerprint catalogue) and its name (passive host names).

pub mod dhcp;
pub mod kerberos;
pub mod labels;
pub mod learn;
pub mod names;
pub mod nbns;
pub mod resolve;

use std::net::IpAddr;
use std::sync::Arc;

use crate::policy::PolicySet;
use labels::Labels;
use names::{HostNames, NameSource};

/// What the reports ask about a source: its software's label, its name.
#[derive(Clone, Copy)]
pub struct Who<'a> {
    pub labels: &'a Labels,
    pub names: &'a HostNames,
    /// The server policies verdicts are by (their names, by position).
    pub policies: &'a PolicySet,
}

impl<'a> Who<'a> {
    /// The names of the policies set in `bits` (configuration order).
    pub fn policy_names(self, bits: u16) -> Vec<&'a str> {
        self.policies.names(bits)
    }

    /// The catalogue's label of a JA4.
    pub fn label(self, ja4: &str) -> Option<&'a str> {
        self.labels.get(ja4.as_bytes()).map(|l| &**l)
    }

    /// The name of `ip` at capture time `at`, and where it came from.
    pub fn name(self, ip: IpAddr, at: u64) -> Option<(Arc<str>, NameSource)> {
        self.names.lookup(ip, at)
    }
}
