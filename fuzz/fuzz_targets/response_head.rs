//! Response heads as the relay reads them: httparse, then `upstream_head::check`. No panic;
//! a head the check takes has one framing.
#![no_main]
use authz_edge::config::Limits;
use authz_edge::response::upstream_head;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut resp = httparse::Response::new(&mut headers);
    if let Ok(httparse::Status::Complete(_)) = resp.parse(data) {
        let status = resp.code.unwrap_or(0);
        let limits = Limits::default();
        let h = resp.headers.iter().map(|h| (h.name.as_bytes(), h.value));
        if let Ok(f) = upstream_head::check(status, h, &limits) {
            assert!(!(f.chunked && f.length.is_some()));
            assert!(status >= 100);
        }
    }
    let _ = upstream_head::digits(data);
});
