//! The findings engine's rules, each on real classification of response headers.
//!
//! Longer than 400 lines because it holds a test for every rule of every cause.

use super::*;
use crate::rules::context::ContextHeaders;
use crate::telemetry::classify::{classify, Denial};
use crate::telemetry::identity::HashKey;
use http::HeaderMap;
use std::time::Duration;

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (k, v) in pairs {
        m.append(
            http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    m
}

/// A denial as classification makes it from a request and Django's response headers.
pub(super) fn denial(status: u16, req: &[(&str, &str)], resp: &[(&str, &str)]) -> Denial {
    classify(
        status,
        &headers(req),
        &headers(resp),
        &ContextHeaders::default(),
        &HashKey::new(b"k"),
    )
    .expect("a denial")
}

/// User `u`'s denial of `perm` in state `state` (the companion's headers).
pub(super) fn perm_denial(u: u32, perm: &str, state: &str) -> Denial {
    let user = u.to_string();
    denial(
        403,
        &[("cookie", "sessionid=s")],
        &[
            ("x-authz-kind", "permission"),
            ("x-authz-user", &user),
            ("x-authz-permission", perm),
            ("x-authz-permission-state", state),
            ("x-authz-migrations", "reports.0002_approve_report"),
        ],
    )
}

pub(super) fn engine() -> Findings {
    let gauge = IntGaugeVec::new(
        prometheus::Opts::new("authz_edge_finding_active", "test"),
        &["cause", "route"],
    )
    .expect("gauge");
    Findings::new(gauge)
}

pub(super) const T0: u64 = 1_800_000_000;

pub(super) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

pub(super) fn world(secs: u64) -> World<'static> {
    World {
        now: at(secs),
        release: Some("r2"),
        release_changed_at: (T0 - 20) as f64,
        reloads: &[],
        proxy_user: (65534, 65534),
        tuning: Tuning::default(),
    }
}

/// Feeds `d` on `route` at second `secs`.
pub(super) fn feed(f: &Findings, route: &str, d: &Denial, secs: u64) {
    if let Some(s) = signal::of_denial(d) {
        f.observe(&Arc::from(route), s, (T0 + secs) as f64);
    }
}

pub(super) fn gauge_of(f: &Findings, cause: &str, route: &str) -> i64 {
    f.gauge.with_label_values(&[cause, route]).get()
}

#[test]
fn each_companion_fact_points_to_its_cause() {
    let cause = |d: &Denial| signal::of_denial(d).map(|s| s.cause);
    assert_eq!(
        cause(&perm_denial(
            1,
            "reports.approve_report",
            "reports.approve_report=not_migrated"
        )),
        Some(Cause::PermissionNotMigrated)
    );
    assert_eq!(
        cause(&perm_denial(
            1,
            "reports.exprot",
            "reports.exprot=unknown~reports.export_report"
        )),
        Some(Cause::UnknownPermission)
    );
    assert_eq!(
        cause(&perm_denial(
            1,
            "export_report",
            "export_report=malformed~reports.export_report"
        )),
        Some(Cause::UnknownPermission)
    );
    assert_eq!(
        cause(&perm_denial(
            1,
            "reports.export_report",
            "reports.export_report=exists"
        )),
        Some(Cause::PermissionNotGranted)
    );
    // Without the state (no companion diagnosis), a permission denial names nothing by itself.
    assert_eq!(
        cause(&denial(
            403,
            &[],
            &[
                ("x-authz-kind", "permission"),
                ("x-authz-user", "1"),
                ("x-authz-permission", "a.b")
            ]
        )),
        None
    );
    let anon = |why: &str| {
        denial(
            403,
            &[("cookie", "sessionid=s")],
            &[("x-authz-kind", "login"), ("x-authz-anonymous", why)],
        )
    };
    assert_eq!(
        cause(&anon("session_undecodable")),
        Some(Cause::SessionNotRecognised)
    );
    assert_eq!(
        cause(&anon("no_auth_middleware")),
        Some(Cause::SessionNotRecognised)
    );
    assert_eq!(
        cause(&anon("session_without_user")),
        None,
        "an ordinary visitor"
    );
    // The edge alone: a 401 to a request with a session cookie.
    let edge = denial(401, &[("cookie", "sessionid=s")], &[]);
    let s = signal::of_denial(&edge).expect("edge signal");
    assert_eq!((s.cause, s.companion), (Cause::SessionNotRecognised, false));
    // A 401 without a cookie or credentials is an ordinary login prompt.
    assert_eq!(cause(&denial(401, &[], &[])), None);
    // CSRF from the companion, with Django's reason and what it saw.
    let csrf = denial(
        403,
        &[],
        &[
            ("x-authz-kind", "csrf"),
            (
                "x-authz-reason",
                "CSRF verification failed: Origin checking failed",
            ),
            ("x-authz-csrf", "scheme=http host=shop origin=https://shop"),
        ],
    );
    let s = signal::of_denial(&csrf).expect("csrf");
    assert_eq!(s.cause, Cause::CsrfFailures);
    assert_eq!(
        s.detail.as_deref(),
        Some("CSRF verification failed: Origin checking failed; scheme=http host=shop origin=https://shop")
    );
}

#[test]
fn a_permission_not_migrated_opens_with_its_migration_and_closes_when_denials_stop() {
    let f = engine();
    let route = "/reports/<int:pk>/approve/";
    let state = "reports.approve_report=not_migrated";
    // Four denials from one user: not enough.
    for i in 0..4 {
        feed(
            &f,
            route,
            &perm_denial(1, "reports.approve_report", state),
            i,
        );
    }
    assert!(f.tick(&world(4)).is_empty());
    // A second user and a fifth denial: it opens.
    feed(
        &f,
        route,
        &perm_denial(2, "reports.approve_report", state),
        5,
    );
    let opened = f.tick(&world(5));
    assert_eq!(opened.len(), 1, "{opened:?}");
    let x = &opened[0];
    assert_eq!(x.cause, "permission_not_migrated");
    assert_eq!(x.route, route);
    assert_eq!(x.status, 403);
    assert_eq!(x.permission.as_deref(), Some("reports.approve_report"));
    assert_eq!(x.release.as_deref(), Some("r2"));
    assert_eq!((x.denials, x.distinct_users, x.active), (5, 2, true));
    assert_eq!(
        x.evidence,
        "5 denials of reports.approve_report for 2 users on /reports/<int:pk>/approve/ in the last 60 s: Django says the permission is declared by a model but has no database row, and migration reports.0002_approve_report is not applied; they began 20 s after the release changed to r2."
    );
    assert_eq!(
        x.fix,
        "Run `python manage.py migrate` (applies reports.0002_approve_report) for release r2, then grant reports.approve_report to the users who need it."
    );
    assert_eq!(gauge_of(&f, "permission_not_migrated", route), 1);
    // Still going: it stays open, its figures grow, nothing new is reported.
    feed(
        &f,
        route,
        &perm_denial(3, "reports.approve_report", state),
        10,
    );
    assert!(f.tick(&world(10)).is_empty());
    assert_eq!(f.snapshot()[0].denials, 6);
    // Quiet for more than 30 s: it closes.
    assert!(f.tick(&world(40)).is_empty());
    let closed = f.tick(&world(41));
    assert_eq!(closed.len(), 1);
    assert!(!closed[0].active);
    assert!(closed[0].closed.is_some());
    assert_eq!(gauge_of(&f, "permission_not_migrated", route), 0);
}

#[test]
fn a_typo_and_a_missing_app_label_name_the_nearest_permission() {
    let f = engine();
    for u in 0..5 {
        feed(
            &f,
            "/a/",
            &perm_denial(
                u,
                "reports.exprot_report",
                "reports.exprot_report=unknown~reports.export_report",
            ),
            1,
        );
        feed(
            &f,
            "/b/",
            &perm_denial(
                u,
                "export_report",
                "export_report=malformed~reports.export_report",
            ),
            1,
        );
    }
    let mut opened = f.tick(&world(2));
    opened.sort_by(|a, b| a.route.cmp(&b.route));
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[0].cause, "unknown_permission");
    assert!(
        opened[0]
            .evidence
            .contains("Django knows no such permission"),
        "{}",
        opened[0].evidence
    );
    assert!(opened[0]
        .evidence
        .contains("(the nearest is reports.export_report)"));
    assert_eq!(
        opened[0].fix,
        "Fix the codename in the view's permission check: reports.exprot_report -> reports.export_report, and redeploy."
    );
    assert!(
        opened[1].evidence.contains("has no app label"),
        "{}",
        opened[1].evidence
    );
    assert_eq!(
        opened[1].fix,
        "Write the permission as app_label.codename in the view's check: export_report -> reports.export_report."
    );
}

#[test]
fn a_permission_not_granted_needs_a_surge_over_several_users() {
    let f = engine();
    let route = "/reports/<int:pk>/export/";
    let state = "reports.export_report=exists";
    // One user denied now and then, for two minutes: the expected refusals of daily use.
    for s in 0..120 {
        if s % 3 == 0 {
            feed(
                &f,
                route,
                &perm_denial(7, "reports.export_report", state),
                s,
            );
        }
        assert!(f.tick(&world(s)).is_empty(), "opened at {s}");
    }
    // Then twelve users, two denials a second each, for a few seconds: a surge.
    let mut opened = Vec::new();
    for s in 120..130 {
        for u in 0..12 {
            feed(
                &f,
                route,
                &perm_denial(100 + u, "reports.export_report", state),
                s,
            );
        }
        opened.extend(f.tick(&world(s)));
    }
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].cause, "permission_not_granted");
    assert!(opened[0].fix.starts_with("Grant reports.export_report"));
}

#[test]
fn a_csrf_surge_after_a_reload_says_which_keys_the_reload_changed() {
    let f = engine();
    let reloads = [ReloadEvent {
        at: (T0 + 5) as f64,
        generation: 3,
        changed: vec!["forwarding.trusted_proxies".to_string()],
    }];
    let csrf = |u: u32| {
        let user = u.to_string();
        denial(
            403,
            &[("cookie", "sessionid=s")],
            &[
                ("x-authz-kind", "csrf"),
                ("x-authz-user", &user),
                ("x-authz-reason", "CSRF verification failed: Origin checking failed - https://shop does not match any trusted origins."),
                ("x-authz-csrf", "scheme=http host=shop origin=https://shop"),
            ],
        )
    };
    let mut opened = Vec::new();
    for s in 10..20 {
        for u in 0..3 {
            feed(&f, "/form/", &csrf(u), s);
        }
        opened.extend(f.tick(&World {
            reloads: &reloads,
            release_changed_at: 0.0,
            ..world(s)
        }));
    }
    assert_eq!(opened.len(), 1, "{opened:?}");
    let x = &opened[0];
    assert_eq!(x.cause, "csrf_failures");
    assert!(
        x.evidence.contains("Django says: CSRF verification failed: Origin checking failed - https://shop does not match any trusted origins.; scheme=http host=shop origin=https://shop"),
        "{}",
        x.evidence
    );
    assert!(
        x.evidence.ends_with("; they began 5 s after the proxy's config reload (generation 3) that changed forwarding.trusted_proxies."),
        "{}",
        x.evidence
    );
    assert!(x.fix.contains("forwarding.trusted_proxies"), "{}", x.fix);
}

#[test]
fn a_few_expected_denials_after_a_deploy_open_nothing() {
    let f = engine();
    // Two users each hit a missing permission once, a CSRF form expires, a stale cookie gets a
    // 401: single denials of every kind, right after the release changed.
    for (user, sec) in [(1, 1), (2, 2)] {
        feed(
            &f,
            "/a/",
            &perm_denial(
                user,
                "reports.approve_report",
                "reports.approve_report=not_migrated",
            ),
            sec,
        );
    }
    feed(
        &f,
        "/b/",
        &perm_denial(3, "reports.export_report", "reports.export_report=exists"),
        2,
    );
    feed(&f, "/c/", &denial(403, &[], &[("x-authz-kind", "csrf")]), 3);
    feed(
        &f,
        "/d/",
        &denial(401, &[("cookie", "sessionid=old")], &[]),
        3,
    );
    for s in 0..90 {
        assert!(f.tick(&world(s)).is_empty());
    }
    assert!(f.snapshot().is_empty());
}

#[test]
fn a_spike_after_a_release_opens_only_when_nothing_explains_it() {
    let metrics = crate::telemetry::metrics::Metrics::new(100, 100);
    let f = engine();
    let stats = metrics.routes.get("/x/");
    stats.spiking[1].store(true, Ordering::Relaxed);
    f.spike_started(
        stats.clone(),
        403,
        at(0),
        (5.0, 0.1),
        (Some("permission".into()), None),
    );
    // Waits for a more specific cause first.
    assert!(f.tick(&world(5)).is_empty());
    let opened = f.tick(&world(10));
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].cause, "spike_after_release");
    assert!(
        opened[0]
            .evidence
            .contains("rose to 5.00/s (baseline 0.10/s)"),
        "{}",
        opened[0].evidence
    );
    assert!(opened[0]
        .evidence
        .contains("Django's companion (deploy/django) would tell"));
    // The spike ends: so does the finding.
    stats.spiking[1].store(false, Ordering::Relaxed);
    let closed = f.tick(&world(11));
    assert_eq!((closed.len(), closed[0].active), (1, false));

    // On another route the denials have a named cause: no spike_after_release.
    let g = engine();
    let other = metrics.routes.get("/y/");
    other.spiking[1].store(true, Ordering::Relaxed);
    for u in 0..6 {
        feed(&g, "/y/", &perm_denial(u, "y.z", "y.z=not_migrated"), 0);
    }
    g.spike_started(other, 403, at(0), (5.0, 0.1), (None, None));
    let mut causes: Vec<&str> = (0..20)
        .flat_map(|s| g.tick(&world(s)))
        .map(|x| x.cause)
        .collect();
    causes.dedup();
    assert_eq!(causes, vec!["permission_not_migrated"]);
}

#[test]
fn filesystem_permission_names_the_directory_and_the_fix() {
    let f = engine();
    for s in 0..3 {
        f.observe(
            &Arc::from("/upload/"),
            signal::of_permission_error(500, "/srv/app/media/uploads", Some("1000:1000")),
            (T0 + s) as f64,
        );
        f.observe(
            &Arc::from("/static/"),
            signal::of_unreadable_static("/srv/static/img"),
            (T0 + s) as f64,
        );
    }
    let mut opened = f.tick(&world(3));
    opened.sort_by(|a, b| a.route.cmp(&b.route));
    assert_eq!(opened.len(), 2);
    assert_eq!(opened[0].path.as_deref(), Some("/srv/static/img"));
    assert_eq!(opened[0].source, Some("proxy"));
    assert_eq!(opened[0].fix, "chown -R 65534:65534 /srv/static/img (the proxy's user), or chmod -R o+rX /srv/static/img.");
    assert_eq!(opened[1].cause, "filesystem_permission");
    assert_eq!(opened[1].source, Some("django"));
    assert_eq!(opened[1].permission, None);
    assert!(
        opened[1]
            .evidence
            .contains("Django (PermissionError) could not open files under /srv/app/media/uploads"),
        "{}",
        opened[1].evidence
    );
    assert_eq!(
        opened[1].fix,
        "chown -R 1000:1000 /srv/app/media/uploads (the user Django runs as), or chmod -R u+rwX /srv/app/media/uploads for it; check that the volume is not mounted read-only."
    );
}

#[test]
fn candidates_and_findings_stay_bounded_under_distinct_subjects() {
    let f = engine();
    for i in 0..5_000u32 {
        let perm = format!("app.p{i}");
        let state = format!("{perm}=not_migrated");
        for u in 0..5 {
            feed(&f, &format!("/r{i}/"), &perm_denial(u, &perm, &state), 1);
        }
        if i % 100 == 0 {
            f.tick(&world(1));
        }
    }
    f.tick(&world(2));
    assert!(f.lock().candidates.len() <= MAX_CANDIDATES);
    assert_eq!(f.snapshot().len(), MAX_FINDINGS);
    assert!(f.snapshot().iter().all(|x| x.active));
}

/// An incident, then silence: exactly one open and one close, however long the engine runs
/// past the close (it used to reopen from the window that still held the incident's denials,
/// 8 to 12 times per incident). A later incident opens it once more, and closes once.
#[test]
fn an_episode_opens_once_and_closes_once() {
    let f = engine();
    let route = "/reports/<int:pk>/approve/";
    let state = "reports.approve_report=not_migrated";
    let mut changes: Vec<(u64, bool)> = Vec::new();
    let run =
        |changes: &mut Vec<(u64, bool)>, from: u64, to: u64, denying: std::ops::Range<u64>| {
            for s in from..to {
                if denying.contains(&s) {
                    for u in 0..3 {
                        feed(
                            &f,
                            route,
                            &perm_denial(u, "reports.approve_report", state),
                            s,
                        );
                    }
                }
                changes.extend(f.tick(&world(s)).iter().map(|x| (s, x.active)));
            }
        };
    // Denials for 20 s, then 160 s of silence: past the close and past the 60 s window.
    run(&mut changes, 0, 180, 0..20);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(changes[0].1 && !changes[1].1, "{changes:?}");
    assert!(changes[1].0 > 19 + QUIET_SECS, "{changes:?}");
    // The same cause again much later: one more episode, again once each.
    run(&mut changes, 180, 400, 300..310);
    assert_eq!(changes.len(), 4, "{changes:?}");
    assert!(changes[2].1 && !changes[3].1, "{changes:?}");
    assert_eq!(gauge_of(&f, "permission_not_migrated", route), 0);
}
