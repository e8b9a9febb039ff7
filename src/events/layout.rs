//! The layouts an event is written in (`--events-format`): tlscensus' own
//! fields (native), the Elastic Common Schema, Zeek's ssl.log (tab-separated
//! or JSON) and OCSF Network Activity.
//!
//! Input: a [`FlowEvent`]. Output: one line (with its newline) at the end
//! of a buffer; Zeek's tab-separated layout also has lines before the first
//! event and after the last ([`Layout::header`], [`Layout::footer`]).
//! Invariant: every layout writes a fact only where it is known; what a
//! layout cannot show is left out (JSON) or unset (`-`), never guessed.

use super::FlowEvent;
use crate::policy::PolicySet;

/// The layouts of `--events-format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// tlscensus' own fields (docs/reference.md "Event fields").
    #[default]
    Native,
    /// Elastic Common Schema, its version [`super::ecs::ECS_VERSION`].
    Ecs,
    /// Zeek's ssl.log, tab-separated, with its header lines.
    Zeek,
    /// Zeek's ssl.log as Zeek's JSON writer writes it.
    ZeekJson,
    /// OCSF Network Activity, its version [`super::ocsf::OCSF_VERSION`].
    Ocsf,
}

impl Layout {
    /// The layout shows what the hellos offered and chose beyond the
    /// census' facts (cipher suites, groups, ALPN, session IDs): the tables
    /// keep those details only then.
    pub fn wants_details(self) -> bool {
        self != Layout::Native
    }

    /// Writes `ev`'s line (with its newline) at the end of `out`;
    /// `policies` names the flow's policy verdicts.
    #[inline]
    pub fn write(self, ev: &FlowEvent, policies: &PolicySet, out: &mut Vec<u8>) {
        match self {
            Layout::Native => ev.write_json_judged(policies, out),
            Layout::Ecs => super::ecs::write(ev, policies, out),
            Layout::Zeek => super::zeek::write_tsv(ev, policies, out),
            Layout::ZeekJson => super::zeek::write_json(ev, policies, out),
            Layout::Ocsf => super::ocsf::write(ev, policies, out),
        }
    }

    /// What precedes the first event of an output opened at `now_ns`
    /// (Unix nanoseconds): Zeek's header lines (with the policy column when
    /// `policies` has any); nothing for the others.
    pub fn header(self, policies: &PolicySet, now_ns: u64, out: &mut Vec<u8>) {
        if self == Layout::Zeek {
            super::zeek::header(!policies.is_empty(), now_ns, out);
        }
    }

    /// What follows the last event of an output closed at `now_ns`: Zeek's
    /// `#close` line; nothing for the others.
    pub fn footer(self, now_ns: u64, out: &mut Vec<u8>) {
        if self == Layout::Zeek {
            super::zeek::footer(now_ns, out);
        }
    }
}
