//! The causes only Django's facts tell apart (a stale cache, an inactive user, an object check
//! without an object backend, a role test, a redirect to the login page): each from real
//! classification of the companion's headers, opened once with its words and closed once.

use super::tests::{denial, engine, feed, world};
use super::*;
use crate::telemetry::classify::Denial;

/// Feeds `per_second` (made for user `u`) for users `0..users`, each second of `0..secs`, then
/// ticks on to second 120; returns the finding that opened, after checking that exactly one
/// opened and it closed exactly once, more than `QUIET_SECS` after the last denial.
fn one_episode(route: &str, users: u32, secs: u64, per_second: impl Fn(u32) -> Denial) -> Finding {
    let f = engine();
    let mut changes = Vec::new();
    for s in 0..120 {
        if s < secs {
            for u in 0..users {
                feed(&f, route, &per_second(u), s);
            }
        }
        changes.extend(f.tick(&world(s)).into_iter().map(|x| (s, x)));
    }
    assert_eq!(changes.len(), 2, "{changes:#?}");
    let (opened_at, opened) = &changes[0];
    let (closed_at, closed) = &changes[1];
    assert!(opened.active && !closed.active, "{changes:#?}");
    assert!(*opened_at < secs, "opened at {opened_at}");
    assert!(*closed_at > secs - 1 + QUIET_SECS, "closed at {closed_at}");
    assert_eq!(closed.cause, opened.cause);
    opened.clone()
}

/// User `u`'s 403 for `perm` in `state`, with the companion's grant and role headers.
fn signed_in(u: u32, kind: &str, perm: &str, state: &str, extra: &[(&str, &str)]) -> Denial {
    let user = u.to_string();
    let mut resp = vec![("x-authz-kind", kind), ("x-authz-user", user.as_str())];
    if !perm.is_empty() {
        resp.push(("x-authz-permission", perm));
        resp.push(("x-authz-permission-state", state));
    }
    resp.extend_from_slice(extra);
    denial(403, &[("cookie", "sessionid=s")], &resp)
}

#[test]
fn a_stale_permission_cache_says_the_grant_exists_and_how() {
    let route = "/reports/<int:pk>/export/";
    let perm = "reports.export_report";
    let x = one_episode(route, 2, 3, |u| {
        signed_in(
            u,
            "permission",
            perm,
            "reports.export_report=stale_cache",
            &[("x-authz-grant", "group:exporters")],
        )
    });
    assert_eq!(x.cause, "stale_permission_cache");
    assert_eq!(x.permission.as_deref(), Some(perm));
    assert_eq!(
        x.evidence,
        "6 denials of reports.export_report for 2 users on /reports/<int:pk>/export/ in the last 60 s, all signed in: the check denied, yet a query on the primary database that bypasses every cache finds the grant (through the group 'exporters'): the permission set the check read is stale (a cached permission set); they began 20 s after the release changed to r2."
    );
    assert_eq!(
        x.fix,
        "Nothing needs granting: clear the cached permission sets (the cache the permission checks read, e.g. django.core.cache's) and expire them when grants change; reports.export_report is granted in the database."
    );
    assert!(!x.fix.starts_with("Grant"));
}

#[test]
fn a_lagging_replica_is_told_from_a_stale_cache() {
    let x = one_episode("/r/", 2, 3, |u| {
        signed_in(
            u,
            "permission",
            "reports.export_report",
            "reports.export_report=replica_lag~replica",
            &[("x-authz-grant", "direct")],
        )
    });
    assert_eq!(x.cause, "stale_permission_cache");
    assert!(
        x.evidence.contains("the primary database grants it directly; the read replica 'replica' the check read does not have the grant yet (it lags)"),
        "{}",
        x.evidence
    );
    assert!(
        x.fix.contains("wait for the replica 'replica' to catch up"),
        "{}",
        x.fix
    );
}

#[test]
fn an_inactive_user_who_holds_the_permission_is_named() {
    let x = one_episode("/r/", 2, 3, |u| {
        signed_in(
            u,
            "permission",
            "reports.export_report",
            "reports.export_report=inactive_user",
            &[("x-authz-grant", "direct")],
        )
    });
    assert_eq!(x.cause, "inactive_user");
    assert!(
        x.evidence.contains("the users hold the permission (directly) but their accounts are inactive (is_active=False)"),
        "{}",
        x.evidence
    );
    assert!(x.fix.starts_with("Reactivate the accounts"), "{}", x.fix);
}

#[test]
fn an_object_check_without_an_object_backend_is_named_and_an_owner_policy_is_not() {
    let x = one_episode("/reports/<int:pk>/edit/", 2, 3, |u| {
        signed_in(
            u,
            "object",
            "reports.change_report",
            "reports.change_report=no_object_backend",
            &[("x-authz-grant", "group:editors")],
        )
    });
    assert_eq!(x.cause, "no_object_permission_backend");
    assert!(
        x.evidence.contains("the view checks has_perm(reports.change_report, obj) and no backend in AUTHENTICATION_BACKENDS implements object permissions (ModelBackend refuses every check with an object), although the users hold it through the group 'editors'"),
        "{}",
        x.evidence
    );
    assert_eq!(
        x.fix,
        "Check has_perm('reports.change_report') without the object in the view, or add an object permission backend (django-guardian's ObjectPermissionBackend, django-rules) to AUTHENTICATION_BACKENDS; granting reports.change_report will not help."
    );
    // An owner-only backend refusing non-owners, or an object check the companion could not
    // look into: no signal at all, however many (the spike detector watches the rate).
    for state in [
        "reports.change_report=object_denied",
        "reports.change_report=exists",
    ] {
        let d = signed_in(1, "object", "reports.change_report", state, &[]);
        assert_eq!(signal::of_denial(&d), None, "{state}");
    }
}

#[test]
fn a_role_test_names_the_test_and_the_flags_only_as_a_surge() {
    let role = "test=is_superuser; is_superuser=0; is_staff=1; is_active=1";
    let x = one_episode("/staff/", 4, 3, |u| {
        signed_in(u, "other", "", "", &[("x-authz-role", role)])
    });
    assert_eq!(x.cause, "role_required");
    assert_eq!(x.permission, None);
    assert_eq!(
        x.evidence,
        "12 denials for 4 users on /staff/ in the last 60 s, all signed in and above the route's baseline: the view's role test is_superuser refused them (their flags now: is_superuser=False, is_staff=True, is_active=True); they began 20 s after the release changed to r2."
    );
    assert_eq!(
        x.fix,
        "If these users' roles changed by mistake, restore is_superuser for them (the admin, or `manage.py shell`); if the change was meant, update the view's test (is_superuser) to the role they have now."
    );
    // One user refused now and then is the test doing its job.
    let f = engine();
    for s in 0..90 {
        if s % 10 == 0 {
            feed(
                &f,
                "/staff/",
                &signed_in(1, "other", "", "", &[("x-authz-role", role)]),
                s,
            );
        }
        assert!(f.tick(&world(s)).is_empty(), "second {s}");
    }
}

/// A 302 to the login page, as the companion marks it: `kind` login for an anonymous visitor,
/// permission for a signed-in user.
fn redirect(user: Option<u32>, session: u32, resp: &[(&str, &str)]) -> Denial {
    let id = user.map(|u| u.to_string());
    let mut all = vec![
        ("location", "/accounts/login/?next=/reports/1/print/"),
        (
            "x-authz-kind",
            if id.is_some() { "permission" } else { "login" },
        ),
    ];
    if let Some(id) = id.as_deref() {
        all.push(("x-authz-user", id));
    }
    all.extend_from_slice(resp);
    let cookie = format!("sessionid=s{session}");
    denial(302, &[("cookie", cookie.as_str())], &all)
}

#[test]
fn a_signed_in_user_sent_to_the_login_page_is_a_redirect_loop() {
    let x = one_episode("/reports/<int:pk>/print/", 3, 4, |u| {
        redirect(
            Some(u),
            u,
            &[
                ("x-authz-permission", "reports.export_report"),
                ("x-authz-permission-state", "reports.export_report=exists"),
            ],
        )
    });
    assert_eq!(x.cause, "login_redirect_loop");
    assert_eq!(x.status, 302);
    assert_eq!(
        x.evidence,
        "12 redirects to the login page of reports.export_report for 3 users on /reports/<int:pk>/print/ in the last 60 s, all signed in: Django sends a signed-in user who lacks reports.export_report to the login page, which sends them back (a redirect loop); they began 20 s after the release changed to r2."
    );
    assert!(
        x.fix.starts_with(
            "Answer 403 to signed-in users: raise_exception=True on permission_required"
        ),
        "{}",
        x.fix
    );
}

#[test]
fn login_redirects_of_requests_with_a_session_are_sessions_not_recognised() {
    let x = one_episode("/accounts/profile/", 2, 3, |u| {
        redirect(None, u, &[("x-authz-anonymous", "session_undecodable")])
    });
    assert_eq!(x.cause, "session_not_recognised");
    assert_eq!(x.status, 302);
    assert!(
        x.evidence
            .starts_with("6 redirects to the login page for 2 sessions on /accounts/profile/"),
        "{}",
        x.evidence
    );
    // An anonymous visitor without a cookie sent to the login page is what login_required is for.
    let plain = crate::telemetry::classify::classify(
        302,
        &http::HeaderMap::new(),
        &super::tests::headers(&[
            ("location", "/accounts/login/?next=/accounts/profile/"),
            ("x-authz-kind", "login"),
        ]),
        &crate::rules::context::ContextHeaders::default(),
        &crate::telemetry::identity::HashKey::new(b"k"),
    )
    .expect("a denial");
    assert_eq!(signal::of_denial(&plain), None);
}

#[test]
fn role_headers_parse_strictly() {
    use crate::telemetry::classify::RoleTest;
    let r = RoleTest::parse(b"test=staff_check; is_staff=0; is_superuser=0").expect("role");
    assert_eq!(r.test, "staff_check");
    assert_eq!(r.flags, "is_staff=False, is_superuser=False");
    for bad in [
        &b"is_staff=0"[..],
        b"test=",
        b"test=a b",
        b"test=\"><script>",
        &[b't', b'e', b's', b't', b'=', 0xff][..],
    ] {
        assert_eq!(
            RoleTest::parse(bad),
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // A flag that is not 0 or 1 is left out, not guessed.
    let r = RoleTest::parse(b"test=t; is_active=yes").expect("role");
    assert_eq!(r.flags, "");
}

#[test]
fn refusals_answered_just_before_a_grant_do_not_open_permission_not_granted() {
    // Three users refused (a plain `exists`), then the grant: the same users' denials now say
    // the primary grants it, with a few `exists` answers still among them (the companion
    // keeps a plain refusal a second). One finding: the stale cache.
    let f = engine();
    let route = "/reports/<int:pk>/export/";
    let perm = "reports.export_report";
    let mut opened = Vec::new();
    let denial = |u: u32, state: &str| {
        let grant = [("x-authz-grant", "direct")];
        signed_in(u, "permission", perm, &format!("{perm}={state}"), &grant)
    };
    for s in 0..10 {
        for u in 0..3 {
            // In the first second, four cached refusals per user beside a fresh answer.
            let refusals = if s == 0 { 4 } else { 0 };
            for _ in 0..refusals {
                feed(&f, route, &denial(u, "exists"), s);
            }
            feed(&f, route, &denial(u, "stale_cache"), s);
        }
        opened.extend(f.tick(&world(s)).into_iter().map(|x| x.cause));
    }
    assert_eq!(opened, ["stale_permission_cache"]);
}

#[test]
fn users_signed_out_for_being_inactive_are_named_inactive_not_a_session_fault() {
    let x = one_episode("/accounts/profile/", 2, 3, |u| {
        let cookie = format!("sessionid=s{u}");
        denial(
            302,
            &[("cookie", cookie.as_str())],
            &[
                ("location", "/accounts/login/?next=/accounts/profile/"),
                ("x-authz-kind", "login"),
                ("x-authz-anonymous", "user_inactive"),
            ],
        )
    });
    assert_eq!(x.cause, "inactive_user");
    assert_eq!(x.status, 302);
    assert_eq!(
        x.evidence,
        "6 redirects to the login page for 2 users on /accounts/profile/ in the last 60 s: the sessions' users are now inactive (is_active=False), and ModelBackend no longer loads an inactive user, so Django answers them as anonymous; they began 20 s after the release changed to r2."
    );
    assert!(
        x.fix
            .starts_with("Reactivate the accounts (is_active=True)"),
        "{}",
        x.fix
    );
}
