//! Basic authentication with bcrypt hashes, checked one at a time and at
//! most a few a second, with the credentials that passed remembered.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;

use super::*;

/// Basic authentication: the users and what has passed.
pub(super) struct Auth {
    pub(super) users: std::collections::HashMap<String, String>,
    /// Keyed hashes of `user:password` strings that passed, newest last.
    pub(super) passed: Mutex<VecDeque<u64>>,
    pub(super) hasher: ahash::RandomState,
    /// One bcrypt at a time, and when the last ones ran.
    pub(super) checks: Mutex<VecDeque<Instant>>,
}

impl Auth {
    pub(super) fn new(users: std::collections::HashMap<String, String>) -> Auth {
        Auth {
            users,
            passed: Mutex::new(VecDeque::new()),
            hasher: ahash::RandomState::new(),
            checks: Mutex::new(VecDeque::new()),
        }
    }

    /// True when the request may be served.
    pub(super) fn allows(&self, authorization: Option<&str>) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(b64) = authorization.and_then(|a| {
            let (scheme, rest) = a.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        }) else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return false;
        };
        let Some((user, password)) = std::str::from_utf8(&raw)
            .ok()
            .and_then(|s| s.split_once(':'))
        else {
            return false;
        };
        let Some(hash) = self.users.get(user) else {
            return false;
        };
        let key = self.hasher.hash_one(&raw[..]);
        if self.lock_passed().contains(&key) {
            return true;
        }
        {
            // One check at a time, at most BCRYPT_PER_SECOND a second.
            let mut checks = crate::sync::lock(&self.checks);
            let now = Instant::now();
            while checks
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                checks.pop_front();
            }
            if checks.len() >= BCRYPT_PER_SECOND as usize {
                return false;
            }
            checks.push_back(now);
            if !bcrypt::verify(password, hash).unwrap_or(false) {
                return false;
            }
        }
        let mut passed = self.lock_passed();
        passed.push_back(key);
        if passed.len() > AUTH_CACHE {
            passed.pop_front();
        }
        true
    }

    pub(super) fn lock_passed(&self) -> std::sync::MutexGuard<'_, VecDeque<u64>> {
        crate::sync::lock(&self.passed)
    }
}
