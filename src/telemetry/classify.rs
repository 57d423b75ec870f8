//! Pure classification of Django's 401/403 responses: kind, authn, permissions, user, reason.
//!
//! Longer than 400 lines only with its unit tests, which sit beside the pure code.

use crate::rules::context::ContextHeaders;
use crate::telemetry::identity::{self, HashKey, IdHash, Token};
use crate::telemetry::vocabulary::{Authn, Kind};
use http::HeaderMap;

/// The most permissions taken from one response.
const MAX_PERMISSIONS: usize = 8;
/// The longest reason kept, in characters.
const MAX_REASON: usize = 200;

/// One 401 or 403 from Django, with its context.
#[derive(Debug, Clone, PartialEq)]
pub struct Denial {
    pub status: u16,
    pub kind: Kind,
    /// Whether Django's companion gave the kind (else it is a fallback).
    pub kind_from_django: bool,
    pub authn: Authn,
    pub user: Option<IdHash>,
    pub session: Option<IdHash>,
    pub token: Option<IdHash>,
    /// Unverified JWT subject, hashed like a user id.
    pub token_subject: Option<IdHash>,
    pub permissions: Vec<String>,
    pub reason: Option<String>,
    /// What only Django knows, from the companion's diagnosis headers.
    pub diagnosis: Diagnosis,
}

/// What a denied permission is in Django's eyes (`X-Authz-Permission-State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionState {
    /// A row in the database: the user simply does not have it.
    Exists,
    /// Declared by a model, no row: a migration not applied.
    NotMigrated,
    /// Neither in the database nor declared: a wrong codename.
    Unknown,
    /// No `app_label.`.
    Malformed,
    /// The check denied, but the primary database grants it: a cached permission set that is
    /// stale (`X-Authz-Grant` says how it is granted).
    StaleCache,
    /// The check read a replica that does not have the grant yet; the primary has it (the
    /// replica's alias follows `~`).
    ReplicaLag,
    /// The user holds it, but `is_active` is false: `ModelBackend` grants nothing then.
    InactiveUser,
    /// `has_perm(perm, obj)`, and no backend implements object permissions (`ModelBackend`
    /// ignores `obj`): never granted, whatever the user holds.
    NoObjectBackend,
    /// An object permission backend refused this object: a policy at work (an owner-only
    /// rule), nothing to grant.
    ObjectDenied,
}

impl PermissionState {
    /// Every state, in the order of `label`'s values.
    pub const ALL: [PermissionState; 9] = [
        PermissionState::Exists,
        PermissionState::NotMigrated,
        PermissionState::Unknown,
        PermissionState::Malformed,
        PermissionState::StaleCache,
        PermissionState::ReplicaLag,
        PermissionState::InactiveUser,
        PermissionState::NoObjectBackend,
        PermissionState::ObjectDenied,
    ];

    /// The metric label value (`authz_edge_permission_state_denials_total{state}`).
    pub fn label(self) -> &'static str {
        match self {
            PermissionState::Exists => "exists",
            PermissionState::NotMigrated => "not_migrated",
            PermissionState::Unknown => "unknown",
            PermissionState::Malformed => "malformed",
            PermissionState::StaleCache => "stale_cache",
            PermissionState::ReplicaLag => "replica_lag",
            PermissionState::InactiveUser => "inactive_user",
            PermissionState::NoObjectBackend => "no_object_backend",
            PermissionState::ObjectDenied => "object_denied",
        }
    }

    fn parse(v: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.label() == v)
    }
}

/// One denied permission with its state and, for a typo, the nearest existing one (for a
/// lagging replica, its alias).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionFact {
    pub permission: String,
    pub state: PermissionState,
    pub nearest: Option<String>,
}

/// A role test that refused a signed-in user (`X-Authz-Role`): the test's name (`is_superuser`,
/// `is_staff`, a `user_passes_test` function's) and the user's flags now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTest {
    pub test: String,
    /// `is_superuser=False, is_staff=True, is_active=True`, the flags the companion reported.
    pub flags: String,
}

impl RoleTest {
    /// Parses `test=NAME; is_superuser=0; is_staff=1; is_active=1`; `None` without a usable
    /// test name.
    pub fn parse(v: &[u8]) -> Option<RoleTest> {
        let text = std::str::from_utf8(v).ok()?;
        let mut test = None;
        let mut flags = Vec::new();
        for part in text.split(';') {
            let Some((k, val)) = part.trim().split_once('=') else {
                continue;
            };
            let (k, val) = (k.trim(), val.trim());
            match k {
                "test" => {
                    let ok = !val.is_empty()
                        && val.len() <= 64
                        && val.bytes().all(|c| {
                            c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'<' | b'>')
                        });
                    test = ok.then(|| val.to_string());
                }
                "is_superuser" | "is_staff" | "is_active" if flags.len() < 3 => {
                    let on = match val {
                        "1" => "True",
                        "0" => "False",
                        _ => continue,
                    };
                    flags.push(format!("{k}={on}"));
                }
                _ => {}
            }
        }
        Some(RoleTest {
            test: test?,
            flags: flags.join(", "),
        })
    }
}

/// Why Django had no user although the request carried a session or credentials
/// (`X-Authz-Anonymous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnonymousReason {
    SessionUndecodable,
    SessionUnknown,
    BackendRemoved,
    NoAuthMiddleware,
    CredentialsRejected,
    /// A session that was never signed in: an ordinary anonymous visitor.
    SessionWithoutUser,
    /// Signed in once, then invalidated (password change, user deleted): ordinary too.
    SessionInvalidated,
    /// The session is past its age (`SESSION_COOKIE_AGE`): ordinary, a visitor who came back.
    SessionExpired,
    /// The session's user exists but is inactive: Django signs them out (`ModelBackend`
    /// refuses inactive users). Not a session fault: findings name it `inactive_user`.
    UserInactive,
}

impl AnonymousReason {
    pub const ALL: [AnonymousReason; 9] = [
        AnonymousReason::SessionUndecodable,
        AnonymousReason::SessionUnknown,
        AnonymousReason::BackendRemoved,
        AnonymousReason::NoAuthMiddleware,
        AnonymousReason::CredentialsRejected,
        AnonymousReason::SessionWithoutUser,
        AnonymousReason::SessionInvalidated,
        AnonymousReason::SessionExpired,
        AnonymousReason::UserInactive,
    ];

    pub fn label(self) -> &'static str {
        match self {
            AnonymousReason::SessionUndecodable => "session_undecodable",
            AnonymousReason::SessionUnknown => "session_unknown",
            AnonymousReason::BackendRemoved => "backend_removed",
            AnonymousReason::NoAuthMiddleware => "no_auth_middleware",
            AnonymousReason::CredentialsRejected => "credentials_rejected",
            AnonymousReason::SessionWithoutUser => "session_without_user",
            AnonymousReason::SessionInvalidated => "session_invalidated",
            AnonymousReason::SessionExpired => "session_expired",
            AnonymousReason::UserInactive => "user_inactive",
        }
    }

    fn parse(v: &[u8]) -> Option<Self> {
        let v = v.trim_ascii();
        Self::ALL
            .into_iter()
            .find(|r| v.eq_ignore_ascii_case(r.label().as_bytes()))
    }

    /// Whether it points at a broken set-up rather than an ordinary anonymous visitor.
    pub fn is_fault(self) -> bool {
        !matches!(
            self,
            AnonymousReason::SessionWithoutUser
                | AnonymousReason::SessionInvalidated
                | AnonymousReason::SessionExpired
                | AnonymousReason::UserInactive
        )
    }
}

/// The companion's diagnosis headers, parsed; empty without the companion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    pub permissions: Vec<PermissionFact>,
    /// Unapplied migrations of the apps whose permissions are not migrated.
    pub migrations: Option<String>,
    pub anonymous: Option<AnonymousReason>,
    /// On a CSRF failure: `scheme=… host=… origin=…` as Django saw them.
    pub csrf: Option<String>,
    /// How the primary database grants the first denied permission (`direct`, `group:NAME`),
    /// for a stale cache, a lagging replica, an inactive user.
    pub grant: Option<String>,
    /// The role test that refused a signed-in user, without a permission in question.
    pub role: Option<RoleTest>,
}

/// The companion's diagnosis header names (all under `X-Authz-`, so always stripped).
pub const PERMISSION_STATE_HEADER: &str = "x-authz-permission-state";
pub const MIGRATIONS_HEADER: &str = "x-authz-migrations";
pub const ANONYMOUS_HEADER: &str = "x-authz-anonymous";
pub const CSRF_HEADER: &str = "x-authz-csrf";
pub const PATH_HEADER: &str = "x-authz-path";
pub const RUN_AS_HEADER: &str = "x-authz-run-as";
pub const GRANT_HEADER: &str = "x-authz-grant";
pub const ROLE_HEADER: &str = "x-authz-role";

/// Parses `perm=state[~nearest],…` (at most eight entries, each name checked like a permission).
pub fn parse_permission_states(v: &[u8]) -> Vec<PermissionFact> {
    let Ok(text) = std::str::from_utf8(v) else {
        return Vec::new();
    };
    let ok_name = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
    };
    text.split(',')
        .filter_map(|entry| {
            let (permission, rest) = entry.trim().split_once('=')?;
            let (state, nearest) = match rest.split_once('~') {
                Some((s, n)) => (s, Some(n)),
                None => (rest, None),
            };
            Some(PermissionFact {
                permission: Some(permission).filter(|p| ok_name(p))?.to_string(),
                state: PermissionState::parse(state)?,
                nearest: nearest.filter(|n| ok_name(n)).map(str::to_string),
            })
        })
        .take(MAX_PERMISSIONS)
        .collect()
}

/// Reads the companion's diagnosis headers from a denial response.
pub fn diagnosis(response: &HeaderMap) -> Diagnosis {
    let text = |name: &str, max: usize| {
        response
            .get(name)
            .map(|v| sanitize_text(v.as_bytes(), max))
            .filter(|t| !t.is_empty())
    };
    Diagnosis {
        permissions: response
            .get(PERMISSION_STATE_HEADER)
            .map(|v| parse_permission_states(v.as_bytes()))
            .unwrap_or_default(),
        migrations: text(MIGRATIONS_HEADER, 300),
        anonymous: response
            .get(ANONYMOUS_HEADER)
            .and_then(|v| AnonymousReason::parse(v.as_bytes())),
        csrf: text(CSRF_HEADER, 300),
        grant: text(GRANT_HEADER, 120),
        role: response
            .get(ROLE_HEADER)
            .and_then(|v| RoleTest::parse(v.as_bytes())),
    }
}

/// Whether a response is a denial this proxy watches: a 401 or 403, or a 302 to the login
/// page. The companion marks the redirects it knows are (its kind header on a 302); without
/// it, a `Location` whose path is one of `[context] login_paths` is one.
#[inline]
pub fn is_denial(
    status: u16,
    marked: bool,
    location: Option<&[u8]>,
    login_paths: &[String],
) -> bool {
    match status {
        401 | 403 => true,
        302 => marked || location.is_some_and(|l| is_login_location(l, login_paths)),
        _ => false,
    }
}

/// Whether a `Location` (relative or absolute) points at one of `login_paths`, by its path
/// alone (the query, such as `?next=`, and the host do not matter).
pub fn is_login_location(location: &[u8], login_paths: &[String]) -> bool {
    if login_paths.is_empty() {
        return false;
    }
    let mut rest = location.trim_ascii();
    // `scheme://host/path` or `//host/path`: the path starts at the first `/` after the host.
    let after_scheme = rest
        .windows(3)
        .position(|w| w == b"://")
        .filter(|i| rest[..*i].iter().all(u8::is_ascii_alphabetic))
        .map(|i| i + 3)
        .or_else(|| rest.starts_with(b"//").then_some(2));
    if let Some(host_at) = after_scheme {
        rest = &rest[host_at..];
        rest = match rest.iter().position(|b| *b == b'/') {
            Some(i) => &rest[i..],
            None => b"/",
        };
    }
    let end = rest
        .iter()
        .position(|b| matches!(b, b'?' | b'#'))
        .unwrap_or(rest.len());
    let path = &rest[..end];
    login_paths.iter().any(|p| p.as_bytes() == path)
}

/// Classifies a response from Django; `None` unless it is a 401, a 403 or a 302 (which the
/// caller found to be a redirect to the login page, `is_denial`).
pub fn classify(
    status: u16,
    request: &HeaderMap,
    response: &HeaderMap,
    names: &ContextHeaders,
    key: &HashKey,
) -> Option<Denial> {
    if !matches!(status, 401 | 403 | 302) {
        return None;
    }
    let kind_header = response.get(&names.kind);
    let companion = kind_header.is_some() || response.contains_key(&names.route);
    let (kind, kind_from_django) = match kind_header {
        Some(v) => (Kind::parse(v.as_bytes()), true),
        // A 401, or a redirect to the login page.
        None if status != 403 => (Kind::Login, false),
        None => (Kind::Other, false),
    };

    let user = response
        .get(&names.user)
        .map(|v| v.as_bytes().trim_ascii())
        .filter(|v| !v.is_empty() && v.len() <= 256)
        .map(|v| key.hash("user", v));

    let session = request
        .get_all(http::header::COOKIE)
        .iter()
        .find_map(|v| identity::cookie_value(v.as_bytes(), &names.session_cookie))
        .filter(|v| !v.is_empty())
        .map(|v| key.hash("session", v));
    let auth = request
        .get(http::header::AUTHORIZATION)
        .and_then(|v| identity::parse_authorization(v.as_bytes()));
    let (token, token_subject) = match auth {
        Some(Token::Opaque(t)) => (
            Some(key.hash("token", t)),
            identity::jwt_subject_unverified(t).map(|s| key.hash("user", s.as_bytes())),
        ),
        _ => (None, None),
    };

    let authn = if user.is_some() {
        Authn::Authenticated
    } else if companion || (session.is_none() && auth.is_none()) {
        // Django said no user, or the request carried nothing to identify one.
        Authn::Anonymous
    } else {
        Authn::Unknown
    };

    let permissions = response
        .get(&names.permission)
        .map(|v| parse_permissions(v.as_bytes()))
        .unwrap_or_default();
    let reason = response
        .get(&names.reason)
        .map(|v| sanitize_text(v.as_bytes(), MAX_REASON));

    Some(Denial {
        status,
        kind,
        kind_from_django,
        authn,
        user,
        session,
        token,
        token_subject,
        permissions,
        reason,
        diagnosis: if companion {
            diagnosis(response)
        } else {
            Diagnosis::default()
        },
    })
}

/// Splits `app.codename, app.other` into at most eight well-formed permission names.
pub fn parse_permissions(v: &[u8]) -> Vec<String> {
    v.split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|p| {
            !p.is_empty()
                && p.len() <= 100
                && p.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
        })
        .take(MAX_PERMISSIONS)
        .filter_map(|p| std::str::from_utf8(p).ok().map(str::to_string))
        .collect()
}

/// Keeps printable text, escaping control characters, truncated to `max` characters.
pub fn sanitize_text(v: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(v);
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars().take(max) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Sanitises a route label from `X-Authz-Route`; `None` when it is not a usable label.
pub fn route_label(v: &[u8]) -> Option<&str> {
    if v.first() != Some(&b'/') || v.len() > 200 {
        return None;
    }
    if !v
        .iter()
        .all(|c| c.is_ascii_graphic() && !matches!(c, b'"' | b'\\'))
    {
        return None;
    }
    std::str::from_utf8(v).ok()
}

/// How many body bytes are searched for Django's CSRF failure page.
const SNIFF_BYTES: usize = 4096;
const CSRF_MARKER: &[u8] = b"CSRF verification failed";

/// Looks for Django's CSRF failure page in the first few KiB of a body as it streams past.
///
/// Keeps only a short tail of the previous chunk, so the marker is found across chunk
/// boundaries without buffering the response.
#[derive(Debug, Default)]
pub struct CsrfSniffer {
    seen: usize,
    tail: [u8; 32],
    tail_len: usize,
    pub found: bool,
}

impl CsrfSniffer {
    /// Feeds the next chunk; returns whether the marker has been seen.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.found || self.seen >= SNIFF_BYTES {
            return self.found;
        }
        let take = chunk.len().min(SNIFF_BYTES - self.seen);
        let chunk = &chunk[..take];
        self.seen += take;
        // Check the seam between the kept tail and this chunk, then the chunk itself.
        let seam_len = (CSRF_MARKER.len() - 1).min(chunk.len());
        let mut seam = [0u8; 64];
        seam[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
        seam[self.tail_len..self.tail_len + seam_len].copy_from_slice(&chunk[..seam_len]);
        if contains(&seam[..self.tail_len + seam_len], CSRF_MARKER) || contains(chunk, CSRF_MARKER)
        {
            self.found = true;
            return true;
        }
        let keep = (CSRF_MARKER.len() - 1).min(chunk.len());
        if keep < CSRF_MARKER.len() - 1 {
            // A short chunk: append to the tail, keeping its last bytes.
            let mut joined = [0u8; 64];
            joined[..self.tail_len].copy_from_slice(&self.tail[..self.tail_len]);
            joined[self.tail_len..self.tail_len + keep].copy_from_slice(chunk);
            let total = self.tail_len + keep;
            let start = total.saturating_sub(CSRF_MARKER.len() - 1);
            self.tail_len = total - start;
            self.tail[..self.tail_len].copy_from_slice(&joined[start..total]);
        } else {
            self.tail[..keep].copy_from_slice(&chunk[chunk.len() - keep..]);
            self.tail_len = keep;
        }
        false
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ContextHeaders {
        ContextHeaders::default()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().expect("header value"));
        }
        m
    }

    #[test]
    fn plain_2xx_is_not_a_denial() {
        let k = HashKey::new(b"k");
        assert_eq!(
            classify(200, &HeaderMap::new(), &HeaderMap::new(), &names(), &k),
            None
        );
    }

    #[test]
    fn companion_headers_drive_the_denial() {
        let k = HashKey::new(b"k");
        let req = headers(&[("cookie", "sessionid=abc")]);
        let resp = headers(&[
            ("x-authz-kind", "permission"),
            ("x-authz-user", "42"),
            (
                "x-authz-permission",
                "reports.export_report, bad perm!, reports.view",
            ),
            ("x-authz-reason", "no\tway"),
        ]);
        let d = classify(403, &req, &resp, &names(), &k).expect("denial");
        assert_eq!(d.kind, Kind::Permission);
        assert!(d.kind_from_django);
        assert_eq!(d.authn, Authn::Authenticated);
        assert_eq!(d.user, Some(k.hash("user", b"42")));
        assert_eq!(d.session, Some(k.hash("session", b"abc")));
        assert_eq!(d.permissions, vec!["reports.export_report", "reports.view"]);
        assert_eq!(d.reason.as_deref(), Some("no\\tway"));
    }

    #[test]
    fn fallbacks_without_the_companion() {
        let k = HashKey::new(b"k");
        let d = classify(401, &HeaderMap::new(), &HeaderMap::new(), &names(), &k).expect("denial");
        assert_eq!((d.kind, d.authn), (Kind::Login, Authn::Anonymous));
        let req = headers(&[("cookie", "sessionid=abc")]);
        let d = classify(403, &req, &HeaderMap::new(), &names(), &k).expect("denial");
        assert_eq!((d.kind, d.authn), (Kind::Other, Authn::Unknown));
        let req = headers(&[("authorization", "Token xyz")]);
        let d = classify(403, &req, &HeaderMap::new(), &names(), &k).expect("denial");
        assert_eq!(d.authn, Authn::Unknown);
        assert_eq!(d.token, Some(k.hash("token", b"xyz")));
    }

    #[test]
    fn companion_without_user_means_anonymous() {
        let k = HashKey::new(b"k");
        let req = headers(&[("cookie", "sessionid=abc")]);
        let resp = headers(&[("x-authz-kind", "permission")]);
        let d = classify(403, &req, &resp, &names(), &k).expect("denial");
        assert_eq!(d.authn, Authn::Anonymous);
    }

    #[test]
    fn a_302_is_a_denial_when_marked_or_sent_to_a_login_path() {
        let paths = vec!["/accounts/login/".to_string()];
        let is =
            |status, marked, loc: &str| is_denial(status, marked, Some(loc.as_bytes()), &paths);
        assert!(is(302, false, "/accounts/login/?next=/x/"));
        assert!(is(
            302,
            false,
            "https://example.com/accounts/login/?next=/x/"
        ));
        assert!(is(302, false, "//example.com/accounts/login/"));
        assert!(is(302, false, "/accounts/login/#top"));
        assert!(is(302, true, "/elsewhere/"), "the companion's mark");
        assert!(!is(302, false, "/accounts/login/extra"));
        assert!(!is(302, false, "/accounts/logout/"));
        assert!(!is(302, false, "https://example.com"));
        assert!(!is(302, false, "/x/?next=/accounts/login/"));
        assert!(!is(301, true, "/accounts/login/"), "only Django's 302");
        assert!(!is(303, false, "/accounts/login/"));
        assert!(is(401, false, "") && is(403, false, ""));
        assert!(!is_denial(302, false, None, &paths));
        assert!(!is_denial(302, false, Some(b"/accounts/login/"), &[]));
    }

    #[test]
    fn route_labels_are_sanitised() {
        assert_eq!(route_label(b"/r/<int:pk>/"), Some("/r/<int:pk>/"));
        assert_eq!(route_label(b"r/"), None);
        assert_eq!(route_label(b"/a b/"), None);
        assert_eq!(route_label(b"/a\"b/"), None);
        assert_eq!(route_label("/é/".as_bytes()), None);
    }

    #[test]
    fn csrf_page_found_across_chunks() {
        let page = b"<html><h1>Forbidden <span>(403)</span></h1><p>CSRF verification failed. Request aborted.</p>";
        for split in 1..page.len() {
            let mut s = CsrfSniffer::default();
            let (a, b) = page.split_at(split);
            s.feed(a);
            assert!(s.feed(b), "split at {split}");
        }
        let mut s = CsrfSniffer::default();
        for b in page.iter() {
            s.feed(std::slice::from_ref(b));
        }
        assert!(s.found);
        let mut s = CsrfSniffer::default();
        assert!(!s.feed(b"<h1>Forbidden</h1>"));
    }
}
