//! Django's denial heads as the companion writes them, and as anyone else might: the first
//! byte picks the status (401, 403, a 302), each following `name: value` line a header
//! (`cookie` and `authorization` go on the request). Classification, the findings' signal and
//! the words of a finding never panic; what is parsed stays bounded and strict.
#![no_main]
use authz_edge::rules::context::ContextHeaders;
use authz_edge::telemetry::classify::{self, RoleTest};
use authz_edge::telemetry::findings::{signal, Findings, World};
use authz_edge::telemetry::identity::HashKey;
use authz_edge::telemetry::spike::Tuning;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, COOKIE, LOCATION};
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let status = [401, 403, 302][usize::from(*first) % 3];
    let (mut req, mut resp) = (HeaderMap::new(), HeaderMap::new());
    for line in rest.split(|b| *b == b'\n').take(32) {
        let Some(i) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..i]),
            HeaderValue::from_bytes(line[i + 1..].trim_ascii()),
        ) else {
            continue;
        };
        if name == COOKIE || name == AUTHORIZATION {
            req.append(name, value);
        } else {
            resp.append(name, value);
        }
    }
    let names = ContextHeaders::default();
    let location = resp.get(LOCATION).map(|v| v.as_bytes());
    let marked = resp.contains_key(&names.kind);
    let _ = classify::is_denial(status, marked, location, &names.login_paths);
    let _ = classify::is_login_location(rest, &names.login_paths);
    if let Some(role) = RoleTest::parse(rest) {
        assert!(!role.test.is_empty() && role.test.len() <= 64);
    }
    let Some(d) = classify::classify(status, &req, &resp, &names, &HashKey::new(b"fuzz")) else {
        return;
    };
    assert!(d.permissions.len() <= 8 && d.diagnosis.permissions.len() <= 8);
    let Some(s) = signal::of_denial(&d) else {
        return;
    };
    // Enough of the same signal for any cause's rule: the finding's words are written.
    let findings = Findings::new(
        prometheus::IntGaugeVec::new(prometheus::Opts::new("g", "g"), &["cause", "route"])
            .expect("gauge"),
    );
    let route: Arc<str> = Arc::from("/r/");
    let t0 = 1_800_000_000.0;
    for i in 0..12u64 {
        let mut s = s.clone();
        s.actor = Some(i);
        findings.observe(&route, s, t0);
    }
    let world = World {
        now: UNIX_EPOCH + Duration::from_secs(t0 as u64),
        release: Some("r2"),
        release_changed_at: t0 - 5.0,
        reloads: &[],
        proxy_user: (1, 1),
        tuning: Tuning::default(),
    };
    for f in findings.tick(&world) {
        assert!(f.evidence.ends_with('.') && !f.fix.is_empty(), "{f:?}");
    }
});
