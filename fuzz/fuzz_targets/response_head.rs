//! Django's response heads as every loop reads them (`ResponseHead::read`), then both writers
//! (raw HTTP/1 and the header map for Pingora's session), with a coding as compression sets
//! it. No panic; a head that is read has one framing and a real status, and what the HTTP/1
//! writer produces parses again with none of the context or hop-by-hop headers.
#![no_main]
use authz_edge::config::Limits;
use authz_edge::rules::context::ContextHeaders;
use authz_edge::upstream::response_head::{self, Framing, ResponseHead};
use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let names = ContextHeaders::default();
    let head_only = data.first().is_some_and(|b| b & 1 == 1);
    let raw = Bytes::copy_from_slice(data);
    let mut headers = [httparse::EMPTY_HEADER; 256];
    if let Some(mut head) = ResponseHead::read(&raw, &mut headers, &limits, &names, head_only) {
        assert!(head.status >= 100);
        assert!(!(head.declared.chunked && head.declared.length.is_some()));
        if head_only {
            assert_eq!(head.framing, Framing::Empty);
        }
        for coding in [None, Some("gzip")] {
            head.coding = coding;
            let mut out = BytesMut::new();
            head.write_h1(&mut out, coding.is_some(), true);
            let mut again = [httparse::EMPTY_HEADER; 260];
            let mut p = httparse::Response::new(&mut again);
            assert!(matches!(p.parse(&out), Ok(httparse::Status::Complete(_))));
            for h in p.headers.iter() {
                let n = h.name.to_ascii_lowercase();
                assert!(!n.starts_with("x-authz-") && n != "x-app-release", "{n}");
                assert!(n != "keep-alive" && n != "proxy-connection" && n != "x-accel-buffering");
                if coding.is_some() {
                    assert_ne!(n, "content-length");
                }
            }
            let _ = head.header_map(&raw, coding.is_none());
        }
        let _ = head.denial_head();
        let _ = head.is_denial(&names.login_paths);
    }
    let _ = response_head::digits(data);
});
