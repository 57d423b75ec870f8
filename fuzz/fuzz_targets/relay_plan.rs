//! The relay's request plan (`relay::Plan::parse`) after the head guard: no panic, and what it
//! takes has a path starting with `/` and a header map that builds.
#![no_main]
use authz_edge::config::Limits;
use authz_edge::guard::head::{check_raw_head, HeadState};
use authz_edge::relay::Plan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if check_raw_head(data, &limits) != HeadState::Complete {
        return;
    }
    if let Some(plan) = Plan::parse(data, limits.max_head_bytes()) {
        assert!(plan.path().starts_with('/'));
        assert!(plan.head_len <= data.len());
        let _ = plan.request_header();
    }
});
