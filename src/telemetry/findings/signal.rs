//! One denial reduced to what findings need: its cause, route, subject and who it hit.
//!
//! Pure functions of what classification found, so that every rule has a unit test.

use super::Cause;
use crate::telemetry::classify::{AnonymousReason, Denial, PermissionState};
use crate::telemetry::vocabulary::{Authn, Kind};

/// What a denial, a PermissionError or an unreadable static file contributes to findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Signal {
    pub cause: Cause,
    pub status: u16,
    /// The permission, or the directory for `filesystem_permission`.
    pub subject: Option<String>,
    /// Who was affected: a user's hash, else the session's or the token's.
    pub actor: Option<u64>,
    /// Django's word on it (nearest codename, migrations, why no user, CSRF reason and what
    /// Django saw), for the evidence.
    pub detail: Option<String>,
    /// Whether Django's companion gave the facts (else the edge inferred them).
    pub companion: bool,
    /// `django` or `proxy`, for `filesystem_permission`.
    pub source: Option<&'static str>,
}

impl Signal {
    fn new(cause: Cause, d: &Denial, companion: bool) -> Signal {
        Signal {
            cause,
            status: d.status,
            subject: None,
            actor: d
                .user
                .or(d.token_subject)
                .or(d.session)
                .or(d.token)
                .map(|h| h.bits),
            detail: None,
            companion,
            source: None,
        }
    }
}

/// The cause a denial points to, if any; most denials (an object check, a plain refusal, a
/// login asked of a visitor who never signed in) point to none.
pub fn of_denial(d: &Denial) -> Option<Signal> {
    let facts = &d.diagnosis;
    if d.kind == Kind::Csrf {
        let mut s = Signal::new(Cause::CsrfFailures, d, d.kind_from_django);
        let detail = [d.reason.as_deref(), facts.csrf.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("; ");
        s.detail = Some(detail).filter(|t| !t.is_empty());
        return Some(s);
    }
    let carried = d.session.is_some() || d.token.is_some();
    if let Some(why) = facts.anonymous {
        if why == AnonymousReason::UserInactive {
            // Signed out by Django for being inactive: `signed_out` tells the words so.
            let mut s = Signal::new(Cause::InactiveUser, d, true);
            s.subject = d.permissions.first().cloned();
            s.detail = Some("signed_out".to_string());
            return Some(s);
        }
        if !why.is_fault() {
            return None;
        }
        let mut s = Signal::new(Cause::SessionNotRecognised, d, true);
        s.detail = Some(why.label().to_string());
        return Some(s);
    }
    if !d.kind_from_django && carried && d.kind == Kind::Login && d.authn != Authn::Authenticated {
        // The edge alone: a 401 to a request that carried a session cookie or credentials.
        return Some(Signal::new(Cause::SessionNotRecognised, d, false));
    }
    let signed_in = d.authn == Authn::Authenticated;
    // A signed-in user sent to the login page: the login page sends them back (a loop).
    let bounced = signed_in && d.status == 302;
    // The first denied permission with a state says what the denial is.
    let Some(fact) = facts.permissions.first() else {
        if let (Some(role), true) = (&facts.role, signed_in) {
            let mut s = Signal::new(Cause::RoleRequired, d, true);
            s.detail = Some(format!("{}|{}", role.test, role.flags));
            return Some(s);
        }
        return bounced.then(|| Signal::new(Cause::LoginRedirectLoop, d, d.kind_from_django));
    };
    let cause = match fact.state {
        // An object check refused with the permission held at large is a policy at work (or,
        // without the companion's word on backends, unknown): never "grant it".
        PermissionState::Exists if d.kind == Kind::Object => return None,
        PermissionState::Exists if bounced => Cause::LoginRedirectLoop,
        PermissionState::Exists if signed_in => Cause::PermissionNotGranted,
        PermissionState::Exists | PermissionState::ObjectDenied => return None,
        PermissionState::NotMigrated => Cause::PermissionNotMigrated,
        PermissionState::Unknown | PermissionState::Malformed => Cause::UnknownPermission,
        PermissionState::StaleCache | PermissionState::ReplicaLag => Cause::StalePermissionCache,
        PermissionState::InactiveUser => Cause::InactiveUser,
        PermissionState::NoObjectBackend => Cause::NoObjectPermissionBackend,
    };
    let mut s = Signal::new(cause, d, true);
    s.subject = Some(fact.permission.clone());
    let grant = || facts.grant.clone();
    s.detail = match fact.state {
        PermissionState::NotMigrated => facts.migrations.clone(),
        PermissionState::Unknown => fact.nearest.clone(),
        PermissionState::Malformed => Some(format!(
            "malformed:{}",
            fact.nearest.as_deref().unwrap_or("")
        )),
        // `replica:ALIAS|GRANT` or `|GRANT`: the words say which (text.rs).
        PermissionState::ReplicaLag => Some(format!(
            "replica:{}|{}",
            fact.nearest.as_deref().unwrap_or("replica"),
            grant().unwrap_or_default()
        )),
        PermissionState::StaleCache => Some(format!("|{}", grant().unwrap_or_default())),
        PermissionState::InactiveUser | PermissionState::NoObjectBackend => grant(),
        PermissionState::Exists | PermissionState::ObjectDenied => None,
    };
    Some(s)
}

/// A 500 that the companion marked as a `PermissionError` on `path` (a directory), in a Django
/// process running as `run_as` (`uid:gid`).
pub fn of_permission_error(status: u16, path: &str, run_as: Option<&str>) -> Signal {
    Signal {
        cause: Cause::FilesystemPermission,
        status,
        subject: Some(path.to_string()),
        actor: None,
        detail: run_as.map(str::to_string),
        companion: true,
        source: Some("django"),
    }
}

/// A static file the proxy's own user may not read, under `dir`.
pub fn of_unreadable_static(dir: &str) -> Signal {
    Signal {
        cause: Cause::FilesystemPermission,
        status: 403,
        subject: Some(dir.to_string()),
        actor: None,
        detail: None,
        companion: false,
        source: Some("proxy"),
    }
}

/// Whether a companion anonymous reason is worth a metric label as given.
pub fn anonymous_label(d: &Denial) -> Option<&'static str> {
    let carried = d.session.is_some() || d.token.is_some();
    match d.diagnosis.anonymous {
        Some(why) => Some(why.label()),
        None if carried && d.authn != Authn::Authenticated && d.kind == Kind::Login => {
            Some("unexplained")
        }
        None => None,
    }
}
