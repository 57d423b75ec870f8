//! The context headers: the names Django's companion and the request carry context in, which
//! the edge reads, strips from responses and refuses from clients.

use crate::config;
use http::HeaderName;

/// The context header names of `[context]` (parsed when the file is read).
pub struct ContextHeaders {
    pub user: HeaderName,
    pub kind: HeaderName,
    pub permission: HeaderName,
    pub route: HeaderName,
    pub reason: HeaderName,
    pub release: HeaderName,
    /// Every configured name, for stripping.
    pub all: [HeaderName; 6],
    pub session_cookie: String,
    /// `[context] login_paths`: a 302 to one of them is a denial.
    pub login_paths: Vec<String>,
}

impl ContextHeaders {
    /// The `[context]` section's names.
    pub fn from_config(c: &config::Context) -> Self {
        let names = [
            c.user_header.clone(),
            c.kind_header.clone(),
            c.permission_header.clone(),
            c.route_header.clone(),
            c.reason_header.clone(),
            c.release_header.clone(),
        ];
        let [user, kind, permission, route, reason, release] = names.clone();
        ContextHeaders {
            user,
            kind,
            permission,
            route,
            reason,
            release,
            all: names,
            session_cookie: c.session_cookie.clone(),
            login_paths: c.login_paths.clone(),
        }
    }
}

impl Default for ContextHeaders {
    /// The contract's names: `X-Authz-User`, ..., `X-App-Release`, cookie `sessionid`.
    fn default() -> Self {
        ContextHeaders::from_config(&config::Context::default())
    }
}
