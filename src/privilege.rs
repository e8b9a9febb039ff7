//! Dropping root after the capture handles and the listener are open.
//!
//! Input: a user name. Output: the process runs as that user and group, with
//! no supplementary groups and only `CAP_NET_RAW` left (so an interface that
//! disappears and comes back can be reopened); or an error saying why not.
//! Invariant: when not started as root only the start-only capabilities
//! (`CAP_BPF`, `CAP_PERFMON`: the kernel skip is loaded by then) are given
//! up; a drop that cannot be completed is an error, never a silent run as
//! root.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User, geteuid, setgid, setgroups, setuid};

use crate::error::SetupError;

/// What happened.
#[derive(Debug, PartialEq, Eq)]
pub enum Dropped {
    /// Not root: kept the current user (and whatever capabilities it has).
    NotRoot,
    /// Asked to stay root (`--user root`).
    StayedRoot,
    /// Now running as this user.
    To { user: String, uid: u32, gid: u32 },
}

/// Capabilities used only at start (CAP_BPF loads the kernel skip), given
/// up by a process not started as root once it is set up.
const START_ONLY: [Capability; 2] = [Capability::CAP_BPF, Capability::CAP_PERFMON];

/// Makes the capture capabilities this process is permitted effective: a
/// binary with file capabilities that are permitted but not effective
/// (`setcap cap_net_raw,cap_bpf+p`, as in the container image, where a
/// capability the runtime did not grant must not make exec fail) starts with
/// them off.
pub fn raise_permitted() {
    for c in [
        Capability::CAP_NET_RAW,
        Capability::CAP_BPF,
        Capability::CAP_PERFMON,
    ] {
        if caps::has_cap(None, CapSet::Permitted, c).unwrap_or(false) {
            // A capability that cannot be raised stays off; opening the
            // interface then says what is missing.
            let _ = caps::raise(None, CapSet::Effective, c);
        }
    }
}

/// Switches to `user` if running as root; when not root, gives up the
/// start-only capabilities it may have been given.
pub fn drop_to(user: &str) -> Result<Dropped, SetupError> {
    if !geteuid().is_root() {
        for c in START_ONLY {
            // Not having them is fine; dropping them cannot fail otherwise.
            let _ = caps::drop(None, CapSet::Effective, c);
            let _ = caps::drop(None, CapSet::Permitted, c);
        }
        return Ok(Dropped::NotRoot);
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        SetupError::Privileges(format!("{what} (user {user:?}): {e}"))
    };
    let entry = User::from_name(user)
        .map_err(|e| fail("looking up the user", &e))?
        .ok_or_else(|| {
            SetupError::Privileges(format!(
                "no user {user:?} (create it, or pick another with --user)"
            ))
        })?;
    if entry.uid.is_root() {
        return Ok(Dropped::StayedRoot);
    }
    let keep: CapsHashSet = [Capability::CAP_NET_RAW].into_iter().collect();
    // Keep permitted capabilities across the uid change, then trim them.
    caps::securebits::set_keepcaps(true).map_err(|e| fail("keeping capabilities", &e))?;
    setgroups(&[entry.gid]).map_err(|e| fail("setting groups", &e))?;
    setgid(entry.gid).map_err(|e| fail("setting the group", &e))?;
    setuid(entry.uid).map_err(|e| fail("setting the user", &e))?;
    caps::set(None, CapSet::Permitted, &keep)
        .map_err(|e| fail("limiting capabilities to CAP_NET_RAW", &e))?;
    caps::set(None, CapSet::Effective, &keep)
        .map_err(|e| fail("limiting capabilities to CAP_NET_RAW", &e))?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        .map_err(|e| fail("clearing inheritable capabilities", &e))?;
    let _ = caps::securebits::set_keepcaps(false);
    // Make sure there is no way back.
    if setuid(Uid::from_raw(0)).is_ok()
        || (entry.gid.as_raw() != 0 && setgid(Gid::from_raw(0)).is_ok())
    {
        return Err(SetupError::Privileges(
            "could regain root after dropping it; refusing to run".into(),
        ));
    }
    Ok(Dropped::To {
        user: user.to_string(),
        uid: entry.uid.as_raw(),
        gid: entry.gid.as_raw(),
    })
}
