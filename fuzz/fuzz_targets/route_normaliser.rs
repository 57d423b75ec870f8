//! The route normaliser on any path: no panic, bounded output, at most nine segments.
#![no_main]
use authz_edge::rules::routes::normalise_into;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let mut out = String::new();
    normalise_into(path, &mut out);
    assert!(out.starts_with('/'));
    assert!(out.matches('/').count() <= 9, "{out}");
    assert!(out.len() <= path.len() + 9 * 8 + 8, "{out}");
});
