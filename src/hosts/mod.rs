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

use labels::Labels;
use names::{HostNames, NameSource};

/// What the reports ask about a source: its software's label, its name.
#[derive(Clone, Copy)]
pub struct Who<'a> {
    pub labels: &'a Labels,
    pub names: &'a HostNames,
}

impl<'a> Who<'a> {
    /// The catalogue's label of a JA4.
    pub fn label(self, ja4: &str) -> Option<&'a str> {
        self.labels.get(ja4.as_bytes()).map(|l| &**l)
    }

    /// The name of `ip` at capture time `at`, and where it came from.
    pub fn name(self, ip: IpAddr, at: u64) -> Option<(Arc<str>, NameSource)> {
        self.names.lookup(ip, at)
    }
}
