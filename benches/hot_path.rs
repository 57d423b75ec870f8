//! Hot-path benches: route matching, classification, header stripping, the upstream request
//! rewrite, metric recording and the sampler's decision, for a plain 2xx and for a 403 with the
//! companion's headers.
//!
//! cargo bench --bench hot_path

use authz_edge::exchange::observe::{record, Observed};
use authz_edge::rules::context::ContextHeaders;
use authz_edge::rules::forwarding::{
    prepare_upstream_request, request_id, strip_context_from_response, Client,
};
use authz_edge::rules::routes::{with_normalised, Pattern, RouteMatcher};
use authz_edge::runtime::Runtime;
use authz_edge::telemetry::classify::classify;
use authz_edge::telemetry::identity::HashKey;
use authz_edge::telemetry::metrics::Metrics;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::HeaderMap;
use pingora::http::{RequestHeader, ResponseHeader};

fn names() -> ContextHeaders {
    ContextHeaders::default()
}

/// Fifty patterns shaped like a real Django project's.
fn matcher() -> RouteMatcher {
    let mut pats = Vec::new();
    for app in ["reports", "orders", "customers", "invoices", "users"] {
        for view in [
            "",
            "<int:pk>/",
            "<int:pk>/edit/",
            "<int:pk>/export/",
            "new/",
            "search/",
            "<slug:slug>/",
            "<uuid:id>/files/<path:rest>",
            "api/<int:pk>/",
            "stats/",
        ] {
            pats.push(Pattern::parse(&format!("/{app}/{view}")).expect("pattern"));
        }
    }
    RouteMatcher::new(pats)
}

fn bench_routes(c: &mut Criterion) {
    let m = matcher();
    c.bench_function("route_match/configured", |b| {
        b.iter(|| m.find(black_box("/invoices/123456/export/")))
    });
    c.bench_function("route_match/miss_then_normalise", |b| {
        b.iter(|| {
            let hit = m.find(black_box("/unknown/42/deep/abcdef0123456789abcd/"));
            with_normalised(black_box("/unknown/42/deep/abcdef0123456789abcd/"), |p| {
                black_box((hit, p.len()))
            })
        })
    });
}

fn bench_classify(c: &mut Criterion) {
    let key = HashKey::new(b"bench");
    let n = names();
    let req = HeaderMap::new();
    let mut resp_ok = HeaderMap::new();
    resp_ok.insert("content-type", "text/html".parse().expect("v"));
    resp_ok.insert("x-authz-route", "/reports/<int:pk>/".parse().expect("v"));
    c.bench_function("classify/2xx", |b| {
        b.iter(|| classify(black_box(200), &req, &resp_ok, &n, &key))
    });
    let mut req403 = HeaderMap::new();
    req403.insert(
        "cookie",
        "csrftoken=abc; sessionid=0123456789abcdef0123"
            .parse()
            .expect("v"),
    );
    let mut resp403 = HeaderMap::new();
    resp403.insert("x-authz-kind", "permission".parse().expect("v"));
    resp403.insert("x-authz-user", "4242".parse().expect("v"));
    resp403.insert(
        "x-authz-permission",
        "reports.export_report".parse().expect("v"),
    );
    resp403.insert(
        "x-authz-reason",
        "You do not have permission".parse().expect("v"),
    );
    c.bench_function("classify/403", |b| {
        b.iter(|| classify(black_box(403), &req403, &resp403, &n, &key))
    });
}

fn bench_strip(c: &mut Criterion) {
    let n = names();
    let mut base = ResponseHeader::build(200, None).expect("resp");
    base.insert_header("content-type", "text/html").expect("h");
    base.insert_header("x-authz-route", "/reports/<int:pk>/")
        .expect("h");
    base.insert_header("x-app-release", "v1").expect("h");
    c.bench_function("strip_context/2xx", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |r| strip_context_from_response(r, &n),
            criterion::BatchSize::SmallInput,
        )
    });
}

/// The request Django sees: forwarded headers, request id, hop-by-hop and context removal.
fn bench_forwarding(c: &mut Criterion) {
    let config = authz_edge::config::parse(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n",
    )
    .expect("config");
    let rt = Runtime::build(&config, 1, &Metrics::new(200, 200)).expect("runtime");
    let client = Client {
        ip: Some("192.0.2.17".parse().expect("ip")),
        tls: false,
    };
    let mut base = RequestHeader::build("GET", b"/reports/42/", None).expect("req");
    base.insert_header("Host", "example.com").expect("h");
    base.insert_header("User-Agent", "bench").expect("h");
    base.insert_header("Accept", "*/*").expect("h");
    c.bench_function("prepare_upstream_request/plain", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |r| {
                prepare_upstream_request(
                    r,
                    &rt.context,
                    &rt.trusted,
                    &client,
                    "0123456789abcdef0123456789abcdef",
                )
            },
            criterion::BatchSize::SmallInput,
        )
    });
    // The same rules on an HTTP/2 request (what `accept::h2` sends Django), written straight
    // from its header map, with `:authority` as `Host`.
    let mut h2 = RequestHeader::build("GET", b"/reports/42/", None).expect("req");
    h2.set_uri(
        "https://example.com/reports/42/"
            .parse::<http::Uri>()
            .expect("uri"),
    );
    h2.set_version(http::Version::HTTP_2);
    h2.insert_header("user-agent", "bench").expect("h");
    h2.insert_header("accept", "*/*").expect("h");
    let mut wire = bytes::BytesMut::with_capacity(1024);
    c.bench_function("upstream_head/h2", |b| {
        b.iter(|| {
            wire.clear();
            let fwd = authz_edge::upstream::request_head::Forward {
                context: &rt.context,
                trusted: &rt.trusted,
                client: &client,
                request_id: "0123456789abcdef0123456789abcdef",
                set: &[],
            };
            authz_edge::upstream::request_head::write_parsed(&fwd, black_box(&h2), None, &mut wire);
            wire.len()
        })
    });
    c.bench_function("request_id/new", |b| {
        b.iter(|| request_id(black_box(&base)))
    });
}

/// A browser-sized request head (about 700 bytes, 12 headers).
const BROWSER_HEAD: &str = "GET /reports/42/export/?format=csv HTTP/1.1\r\n\
        Host: shop.example.com\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36\r\n\
        Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8\r\n\
        Accept-Language: en-GB,en;q=0.9\r\n\
        Accept-Encoding: gzip, deflate, br\r\n\
        Referer: https://shop.example.com/reports/\r\n\
        Cookie: sessionid=abcdefghijklmnopqrstuvwxyz012345; csrftoken=ABCDEFGHIJKLMNOPQRSTUVWXYZ012345\r\n\
        Connection: keep-alive\r\n\
        Upgrade-Insecure-Requests: 1\r\n\
        Sec-Fetch-Dest: document\r\n\
        Sec-Fetch-Mode: navigate\r\n\
        Sec-Fetch-Site: same-origin\r\n\r\n";

/// The head guard's raw check.
fn bench_head_check(c: &mut Criterion) {
    let limits = authz_edge::config::Limits::default();
    c.bench_function("check_raw_head/browser", |b| {
        b.iter(|| {
            authz_edge::guard::head::check_raw_head(black_box(BROWSER_HEAD.as_bytes()), &limits)
        })
    });
}

/// The relay's decision and parse: the request header map built from the raw head.
fn bench_relay_plan(c: &mut Criterion) {
    let config = authz_edge::config::parse(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n",
    )
    .expect("config");
    let rt = Runtime::build(&config, 1, &Metrics::new(200, 200)).expect("runtime");
    let client = Client {
        ip: None,
        tls: false,
    };
    c.bench_function("relay_plan/browser", |b| {
        b.iter(|| {
            authz_edge::relay::plan(black_box(BROWSER_HEAD.as_bytes()), &rt, &client, || None)
                .is_some()
        })
    });
}

/// Fifty locations in one site, ten of them regexes, the rest prefixes, `^~` prefixes and
/// exact ones, as a large Django site's nginx config has them.
fn fifty_locations() -> String {
    let mut t = String::from(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n",
    );
    for i in 0..20 {
        t.push_str(&format!(
            "[[locations]]\npath = \"/app{i}/\"\nproxy = \"default\"\n"
        ));
    }
    for i in 0..10 {
        t.push_str(&format!(
            "[[locations]]\npath = \"= /page{i}\"\nreturn = {{ status = 204 }}\n"
        ));
        t.push_str(&format!(
            "[[locations]]\npath = \"^~ /static{i}/\"\nalias = \"/tmp/\"\n"
        ));
        t.push_str(&format!(
            "[[locations]]\npath = '~ ^/api/v{i}/items/[0-9]+/$'\nproxy = \"default\"\n"
        ));
    }
    t
}

/// Location matching: the relay's decision for a plain GET with one location (the default
/// config) and with fifty; and the site's match alone for a prefix that passes every regex,
/// for the last regex, and for an exact location.
fn bench_locations(c: &mut Criterion) {
    let config = authz_edge::config::parse(&fifty_locations()).expect("config");
    let rt = Runtime::build(&config, 1, &Metrics::new(200, 200)).expect("runtime");
    let client = Client {
        ip: None,
        tls: false,
    };
    let head = BROWSER_HEAD.replacen(
        "GET /reports/42/export/?format=csv ",
        "GET /app7/orders/12/?format=csv ",
        1,
    );
    assert!(authz_edge::relay::plan(head.as_bytes(), &rt, &client, || None).is_some());
    c.bench_function("relay_plan/browser_50_locations", |b| {
        b.iter(|| {
            authz_edge::relay::plan(black_box(head.as_bytes()), &rt, &client, || None).is_some()
        })
    });
    let site = rt.sites.for_host(Some("example.com"), None);
    assert_eq!(site.regex_count(), 10);
    for (name, path) in [
        ("locate_50/prefix_after_10_regexes", "/app7/orders/12/"),
        ("locate_50/tenth_regex", "/api/v9/items/12/"),
        ("locate_50/exact", "/page3"),
    ] {
        assert!(site.locate(path, path).is_some(), "{path}");
        c.bench_function(name, |b| {
            b.iter(|| {
                let uri = authz_edge::rules::locations::uri_of(black_box(path));
                site.locate(path, &uri).map(|f| f.index)
            })
        });
    }
}

fn bench_record(c: &mut Criterion) {
    let metrics = Metrics::new(200, 200);
    let route = metrics.routes.get("/reports/<int:pk>/export/");
    let ok = Observed::default();
    c.bench_function("record/2xx", |b| {
        b.iter(|| record(&metrics, &route, black_box(200), black_box(0.0012), &ok))
    });
    let key = HashKey::new(b"bench");
    let n = names();
    let mut req = HeaderMap::new();
    req.insert("cookie", "sessionid=abc".parse().expect("v"));
    let mut resp = HeaderMap::new();
    resp.insert("x-authz-kind", "permission".parse().expect("v"));
    resp.insert("x-authz-user", "4242".parse().expect("v"));
    resp.insert(
        "x-authz-permission",
        "reports.export_report".parse().expect("v"),
    );
    let denied = Observed {
        denial: classify(403, &req, &resp, &n, &key).map(Box::new),
        ..Observed::default()
    };
    c.bench_function("record/403", |b| {
        b.iter(|| record(&metrics, &route, black_box(403), black_box(0.0012), &denied))
    });
    c.bench_function("classify_and_record/403", |b| {
        b.iter(|| {
            let obs = Observed {
                denial: classify(403, &req, &resp, &n, &key).map(Box::new),
                ..Observed::default()
            };
            record(&metrics, &route, 403, 0.0012, &obs)
        })
    });
}

fn bench_sampler(c: &mut Criterion) {
    use authz_edge::diagnostics::sampler::{Limits, Sampler};
    let s = Sampler::new(Limits::default(), 0.0);
    let perms = vec!["reports.export_report".to_string()];
    let mut now = 0.0;
    s.decide(
        "/reports/<int:pk>/export/",
        "permission",
        &perms,
        false,
        now,
    );
    c.bench_function("sampler_decision/403", |b| {
        b.iter(|| {
            now += 0.001;
            s.decide(
                black_box("/reports/<int:pk>/export/"),
                "permission",
                &perms,
                false,
                now,
            )
        })
    });
}

criterion_group!(
    benches,
    bench_routes,
    bench_classify,
    bench_strip,
    bench_forwarding,
    bench_head_check,
    bench_relay_plan,
    bench_locations,
    bench_record,
    bench_sampler
);
criterion_main!(benches);
