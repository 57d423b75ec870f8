//! The head guard (`guard::head::check_raw_head`, with `target`) on any bytes: no panic, and a
//! head it calls complete is one httparse can parse.
#![no_main]
use authz_edge::config::Limits;
use authz_edge::guard::head::{check_raw_head, HeadState};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if check_raw_head(data, &limits) == HeadState::Complete {
        let mut headers = [httparse::EMPTY_HEADER; 256];
        let mut req = httparse::Request::new(&mut headers);
        let start = data.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(0);
        let parsed = req.parse(&data[start..]);
        assert!(
            matches!(parsed, Ok(httparse::Status::Complete(_)) | Err(httparse::Error::TooManyHeaders)),
            "the guard passed a head httparse refuses: {parsed:?}"
        );
    }
});
