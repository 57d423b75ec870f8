//! Zero allocations on the plain-2xx telemetry path: classification and recording, measured
//! with a counting global allocator.

use authz_edge::exchange::observe::{record, Observed};
use authz_edge::rules::context::ContextHeaders;
use authz_edge::rules::routes::{with_normalised, Pattern, RouteMatcher};
use authz_edge::telemetry::classify::classify;
use authz_edge::telemetry::identity::HashKey;
use authz_edge::telemetry::metrics::Metrics;
use http::HeaderMap;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCS.with(Cell::get);
    f();
    ALLOCS.with(Cell::get) - before
}

fn names() -> ContextHeaders {
    ContextHeaders::default()
}

#[test]
fn a_plain_2xx_allocates_nothing_in_classification_and_recording() {
    let key = HashKey::new(b"k");
    let n = names();
    let metrics = Metrics::new(200, 200);
    let matcher = RouteMatcher::new(vec![Pattern::parse("/reports/<int:pk>/").expect("p")]);
    let mut req = HeaderMap::new();
    req.insert("cookie", "sessionid=abc".parse().expect("v"));
    let mut resp = HeaderMap::new();
    resp.insert("content-type", "text/html".parse().expect("v"));
    let ok = Observed::default();

    // Warm up: the route's handles and the normaliser's buffer are made once.
    let configured = metrics.routes.get("/reports/<int:pk>/");
    with_normalised("/a/1/", |p| metrics.routes.get(p));
    record(&metrics, &configured, 200, 0.001, &ok);
    metrics.release.observe("v1", || 1.0);

    let n_allocs = allocations(|| {
        for _ in 0..1000 {
            assert!(classify(200, &req, &resp, &n, &key).is_none());
            assert_eq!(matcher.find("/reports/12/"), Some(0));
            let normalised = with_normalised("/a/77/", |p| metrics.routes.get(p));
            record(&metrics, &configured, 200, 0.001, &ok);
            record(&metrics, &normalised, 204, 0.001, &ok);
            metrics.release.observe("v1", || 2.0);
        }
    });
    assert_eq!(n_allocs, 0, "allocations on the 2xx path");
}

#[test]
fn the_counter_sees_allocations() {
    // Guards the guard: a test that allocates is seen.
    let n = allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(v);
    });
    assert!(n >= 1);
}
