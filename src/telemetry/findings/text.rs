//! The words of a finding: one sentence of evidence with its figures, one sentence of fix.

use super::Cause;

/// What the engine knows when it writes a finding.
pub struct Facts<'a> {
    pub cause: Cause,
    pub route: &'a str,
    pub status: u16,
    pub subject: Option<&'a str>,
    /// The most frequent detail of the signals (see `Signal::detail`).
    pub detail: Option<&'a str>,
    pub denials: u64,
    pub actors: usize,
    pub window_secs: u64,
    pub companion: bool,
    pub source: Option<&'a str>,
    pub release: Option<&'a str>,
    /// Seconds from the release change to the first denial, when it came after one.
    pub after_release: Option<f64>,
    /// The proxy's own config reload that preceded the first denial: seconds before it,
    /// generation and the keys it changed.
    pub after_reload: Option<(f64, u64, &'a [String])>,
    /// For `spike_after_release`: the rate and baseline per second, top kind and permission.
    pub spike: Option<(f64, f64, Option<&'a str>, Option<&'a str>)>,
    /// The proxy's user, for a fix on its own files.
    pub proxy_user: (u32, u32),
}

const COMPANION_WOULD_ADD: &str = "Django's companion (deploy/django) would tell whether the permission exists, is declared but not migrated, or is unknown";

fn when(f: &Facts<'_>) -> String {
    let after = |s: f64| {
        if s < 1.0 {
            "right after".to_string()
        } else {
            format!("{s:.0} s after")
        }
    };
    let mut parts = Vec::new();
    if let (Some(s), Some(r)) = (f.after_release, f.release) {
        parts.push(format!("{} the release changed to {r}", after(s)));
    }
    if let Some((s, generation, keys)) = f.after_reload {
        let keys = if keys.is_empty() {
            "no key".to_string()
        } else {
            keys.join(", ")
        };
        parts.push(format!(
            "{} the proxy's config reload (generation {generation}) that changed {keys}",
            after(s)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("; they began {}", parts.join(" and "))
    }
}

fn who(f: &Facts<'_>, noun: &str) -> String {
    if f.actors > 0 && !noun.is_empty() {
        format!(
            " for {} {noun}{}",
            f.actors,
            if f.actors == 1 { "" } else { "s" }
        )
    } else {
        String::new()
    }
}

/// The evidence sentence.
pub fn evidence(f: &Facts<'_>) -> String {
    // "{n} denials of {permission} for {k} users on {route} in the last 60 s"
    let head = |noun: &str, of: bool, actor: &str| {
        let noun = if f.status == 302 && noun == "denials" {
            "redirects to the login page"
        } else {
            noun
        };
        format!(
            "{} {noun}{}{} on {} in the last {} s",
            f.denials,
            match (of, f.subject) {
                (true, Some(s)) => format!(" of {s}"),
                _ => String::new(),
            },
            who(f, actor),
            f.route,
            f.window_secs
        )
    };
    let body = match f.cause {
        Cause::PermissionNotMigrated => format!(
            "{}: Django says the permission is declared by a model but has no database row{}",
            head("denials", true, "user"),
            f.detail
                .map(|m| format!(", and migration {m} is not applied"))
                .unwrap_or_default()
        ),
        Cause::UnknownPermission => match f.detail {
            Some(d) if d.starts_with("malformed:") => {
                let near = &d["malformed:".len()..];
                format!(
                    "{}: the permission has no app label, so Django can never grant it{}",
                    head("denials", true, "user"),
                    if near.is_empty() { String::new() } else { format!(" (the nearest is {near})") }
                )
            }
            near => format!(
                "{}: Django knows no such permission, neither in the database nor declared by a model{}",
                head("denials", true, "user"),
                near.map(|n| format!(" (the nearest is {n})")).unwrap_or_default()
            ),
        },
        Cause::PermissionNotGranted => format!(
            "{}, all signed in: the permission exists in the database and they do not have it",
            head("denials", true, "user")
        ),
        Cause::SessionNotRecognised if f.companion => format!(
            "{} of requests that carried a session cookie or credentials, answered as anonymous: {}",
            head("denials", false, "session"),
            anonymous_words(f.detail.unwrap_or(""))
        ),
        Cause::SessionNotRecognised => format!(
            "{} of requests that carried a session cookie or credentials, answered {} as if signed out; Django's companion would say why Django had no user",
            head("denials", false, "session"),
            f.status
        ),
        Cause::CsrfFailures => format!(
            "{}, above their baseline{}",
            head("CSRF failures", false, "user"),
            match f.detail {
                Some(d) => format!("; Django says: {d}"),
                None if !f.companion => "; Django's companion would add Django's reason and the scheme and host it saw".to_string(),
                None => String::new(),
            }
        ),
        Cause::SpikeAfterRelease => {
            let (rate, baseline, kind, perm) = f.spike.unwrap_or((0.0, 0.0, None, None));
            format!(
                "denials on {} rose to {rate:.2}/s (baseline {baseline:.2}/s){}{}{}",
                f.route,
                kind.map(|k| format!(", mostly kind {k}")).unwrap_or_default(),
                perm.map(|p| format!(", top permission {p}")).unwrap_or_default(),
                if f.companion {
                    String::new()
                } else {
                    format!("; {COMPANION_WOULD_ADD}")
                }
            )
        }
        Cause::StalePermissionCache => {
            let (replica, grant) = stale_detail(f.detail);
            match replica {
                Some(alias) => format!(
                    "{}, all signed in: the check denied, yet the primary database grants it {}; the read replica '{alias}' the check read does not have the grant yet (it lags)",
                    head("denials", true, "user"),
                    grant_words(grant)
                ),
                None => format!(
                    "{}, all signed in: the check denied, yet a query on the primary database that bypasses every cache finds the grant ({}): the permission set the check read is stale (a cached permission set)",
                    head("denials", true, "user"),
                    grant_words(grant)
                ),
            }
        }
        Cause::InactiveUser if f.detail == Some("signed_out") => format!(
            "{}: the sessions' users are now inactive (is_active=False), and ModelBackend no longer loads an inactive user, so Django answers them as anonymous",
            head("denials", true, "user"),
        ),
        Cause::InactiveUser => format!(
            "{}: the users hold the permission ({}) but their accounts are inactive (is_active=False), and ModelBackend grants nothing to an inactive user",
            head("denials", true, "user"),
            grant_words(f.detail.unwrap_or(""))
        ),
        Cause::NoObjectPermissionBackend => format!(
            "{}: the view checks has_perm({}, obj) and no backend in AUTHENTICATION_BACKENDS implements object permissions (ModelBackend refuses every check with an object){}",
            head("denials", true, "user"),
            f.subject.unwrap_or("?"),
            f.detail
                .filter(|g| !g.is_empty())
                .map(|g| format!(", although the users hold it {}", grant_words(g)))
                .unwrap_or_default()
        ),
        Cause::RoleRequired => {
            let (test, flags) = role_detail(f.detail);
            format!(
                "{}, all signed in and above the route's baseline: the view's role test {test} refused them{}{}",
                head("denials", false, "user"),
                if flags.is_empty() { String::new() } else { format!(" (their flags now: {flags})") },
                if f.status == 302 { ", sending them to the login page" } else { "" }
            )
        }
        Cause::LoginRedirectLoop => format!(
            "{}, all signed in: Django sends a signed-in user who {} to the login page, which sends them back (a redirect loop)",
            head("denials", true, "user"),
            match f.subject {
                Some(p) => format!("lacks {p}"),
                None => "fails the view's test".to_string(),
            }
        ),
        Cause::FilesystemPermission => format!(
            "{}: {} could not open files under {} (permission denied)",
            head("failures", false, ""),
            match f.source {
                Some("proxy") => "the proxy",
                _ => "Django (PermissionError)",
            },
            f.subject.unwrap_or("?")
        ),
    };
    format!("{body}{}.", when(f))
}

/// `replica:ALIAS|GRANT` or `|GRANT` (signal.rs): the lagging replica, if any, and the grant.
fn stale_detail(detail: Option<&str>) -> (Option<&str>, &str) {
    let (head, grant) = detail.unwrap_or("").split_once('|').unwrap_or(("", ""));
    (head.strip_prefix("replica:"), grant)
}

/// `TEST|FLAGS` (signal.rs).
fn role_detail(detail: Option<&str>) -> (&str, &str) {
    detail.unwrap_or("?").split_once('|').unwrap_or(("?", ""))
}

/// How the primary database grants a permission, in words: `direct`, `group:NAME`.
fn grant_words(grant: &str) -> String {
    match grant.split_once(':') {
        Some(("group", name)) => format!("through the group '{name}'"),
        _ if grant == "direct" => "directly".to_string(),
        _ if grant == "superuser" => "as a superuser".to_string(),
        _ => "granted".to_string(),
    }
}

/// The flag a role test asks for, by its name.
fn role_flag(test: &str) -> &'static str {
    if test.contains("superuser") {
        "is_superuser"
    } else if test.contains("staff") {
        "is_staff"
    } else {
        "the role the test asks for"
    }
}

fn anonymous_words(why: &str) -> &'static str {
    match why {
        "session_undecodable" => "the session did not decode (signed with another SECRET_KEY)",
        "session_unknown" => "the session key is unknown to the session store",
        "backend_removed" => {
            "the user's authentication backend is no longer in AUTHENTICATION_BACKENDS"
        }
        "no_auth_middleware" => {
            "request.user is missing: AuthenticationMiddleware is not installed"
        }
        "credentials_rejected" => "the credentials in Authorization were not accepted",
        _ => "Django had no user",
    }
}

/// The fix sentence.
pub fn fix(f: &Facts<'_>) -> String {
    let subject = f.subject.unwrap_or("the permission");
    match f.cause {
        Cause::PermissionNotMigrated => format!(
            "Run `python manage.py migrate`{} for release {}, then grant {subject} to the users who need it.",
            f.detail.map(|m| format!(" (applies {m})")).unwrap_or_default(),
            f.release.unwrap_or("in use")
        ),
        Cause::UnknownPermission => match f.detail {
            Some(d) if d.starts_with("malformed:") && d.len() > "malformed:".len() => format!(
                "Write the permission as app_label.codename in the view's check: {subject} -> {}.",
                &d["malformed:".len()..]
            ),
            Some(d) if d.starts_with("malformed:") => format!(
                "Write the permission as app_label.codename in the view's check ({subject} has no app label)."
            ),
            Some(near) => format!(
                "Fix the codename in the view's permission check: {subject} -> {near}, and redeploy."
            ),
            None => format!(
                "Declare {subject} in a model's Meta.permissions (and migrate), or fix the codename in the view's check."
            ),
        },
        Cause::PermissionNotGranted => format!(
            "Grant {subject} to the users or groups that need it, or drop the check if these users should not reach {}.",
            f.route
        ),
        Cause::SessionNotRecognised => match f.detail.unwrap_or("") {
            "session_undecodable" => "Restore the previous SECRET_KEY, or list it in SECRET_KEY_FALLBACKS while sessions roll over.".to_string(),
            "session_unknown" => "Check SESSION_ENGINE and the store it uses (database table, cache): sessions written before are gone.".to_string(),
            "backend_removed" => "Put the removed backend back in AUTHENTICATION_BACKENDS, or have users sign in again.".to_string(),
            "no_auth_middleware" => "Add django.contrib.auth.middleware.AuthenticationMiddleware to MIDDLEWARE, after SessionMiddleware.".to_string(),
            "credentials_rejected" => "Check the API authentication classes and the tokens clients send.".to_string(),
            _ => "Check AuthenticationMiddleware in MIDDLEWARE, SECRET_KEY changes and SESSION_ENGINE; install Django's companion to have the cause named.".to_string(),
        },
        Cause::CsrfFailures => {
            let plain_http = f.detail.is_some_and(|d| d.contains("scheme=http ") && d.contains("origin=https://"));
            if plain_http || f.after_reload.is_some_and(|(_, _, k)| k.iter().any(|k| k.starts_with("forwarding."))) {
                "Django sees plain HTTP behind the proxy: trust the load balancer again in forwarding.trusted_proxies so that X-Forwarded-Proto reaches Django (SECURE_PROXY_SSL_HEADER), or add the origin to CSRF_TRUSTED_ORIGINS.".to_string()
            } else {
                "Check CSRF_TRUSTED_ORIGINS, the CSRF cookie settings and what the proxy forwards (Host, X-Forwarded-Proto).".to_string()
            }
        }
        Cause::SpikeAfterRelease => format!(
            "Compare {} with the previous one for {}: its permission checks, migrations and settings; roll back if users are blocked.",
            f.release
                .map(|r| format!("release {r}"))
                .unwrap_or_else(|| "the release just deployed".to_string()),
            f.route
        ),
        Cause::StalePermissionCache => match stale_detail(f.detail).0 {
            Some(alias) => format!(
                "Nothing needs granting: read permissions from the primary (route the auth tables to it in DATABASE_ROUTERS' db_for_read) or wait for the replica '{alias}' to catch up; check its replication lag."
            ),
            None => format!(
                "Nothing needs granting: clear the cached permission sets (the cache the permission checks read, e.g. django.core.cache's) and expire them when grants change; {subject} is granted in the database."
            ),
        },
        Cause::InactiveUser if f.detail == Some("signed_out") => "Reactivate the accounts (is_active=True) if they were deactivated by mistake (a directory sync, a bulk admin action); if it was meant, nothing to do: Django signs inactive users out.".to_string(),
        Cause::InactiveUser => "Reactivate the accounts (is_active=True) if they were deactivated by mistake; if they are meant to be inactive, stop them signing in (AllowAllUsersModelBackend lets inactive users in).".to_string(),
        Cause::NoObjectPermissionBackend => format!(
            "Check has_perm('{subject}') without the object in the view, or add an object permission backend (django-guardian's ObjectPermissionBackend, django-rules) to AUTHENTICATION_BACKENDS; granting {subject} will not help."
        ),
        Cause::RoleRequired => {
            let test = role_detail(f.detail).0;
            format!(
                "If these users' roles changed by mistake, restore {} for them (the admin, or `manage.py shell`); if the change was meant, update the view's test ({test}) to the role they have now.",
                role_flag(test)
            )
        }
        Cause::LoginRedirectLoop => match f.subject {
            Some(p) => format!(
                "Answer 403 to signed-in users: raise_exception=True on permission_required (or PermissionRequiredMixin.raise_exception = True) in the view of {}; then grant {p} to the users who need it.",
                f.route
            ),
            None => format!(
                "Answer 403 to signed-in users: UserPassesTestMixin.raise_exception = True, or raise PermissionDenied in the view of {} instead of user_passes_test's redirect.",
                f.route
            ),
        },
        Cause::FilesystemPermission => match f.source {
            Some("proxy") => format!(
                "chown -R {}:{} {subject} (the proxy's user), or chmod -R o+rX {subject}.",
                f.proxy_user.0, f.proxy_user.1
            ),
            _ => format!(
                "chown -R {} {subject} (the user Django runs as), or chmod -R u+rwX {subject} for it; check that the volume is not mounted read-only.",
                f.detail.unwrap_or("APP_USER:APP_GROUP")
            ),
        },
    }
}
