//! Locations, paths and variables on any input: nginx's location syntax parses or is refused,
//! a matcher built from the lines finds only locations that exist, the normalised path stays
//! a path, and a template renders without a panic.
#![no_main]
use authz_edge::rules::locations::{uri_of, Kind, Matcher};
use authz_edge::rules::template::{Template, Vars};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines();
    let path = lines.next().unwrap_or("/");
    let kinds: Vec<Kind> = lines.take(16).filter_map(|l| Kind::parse(l).ok()).collect();
    let uri = uri_of(path);
    assert!(!path.starts_with('/') || uri.starts_with('/'), "{uri}");
    assert!(!uri.contains("//") || !path.starts_with('/'), "{uri}");
    if let Ok(m) = Matcher::new(&kinds) {
        if let Some(f) = m.find(&uri) {
            assert!(f.index < kinds.len());
            for (a, b) in f.captures.iter().flatten() {
                assert!(a <= b && *b <= uri.len());
            }
        }
    }
    if let Ok(t) = Template::parse(path) {
        let headers = http::HeaderMap::new();
        let vars = Vars {
            host: "h",
            http_host: "h",
            scheme: "http",
            remote: None,
            request_uri: path,
            uri: &uri,
            args: "",
            server_port: 80,
            method: "GET",
            headers: &headers,
            captures: &[Some((0, uri.len())), None],
            captured: &uri,
        };
        let _ = t.to_string_for(&vars);
    }
});
