//! The relay's chunked decoder: fed whole or split at any point, it finds the same end and
//! hands out the same data, never more than it was given; re-encoded data decodes back.
#![no_main]
use authz_edge::upstream::chunked::{encode, ChunkScanner, LAST_CHUNK};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], split: usize) -> (Option<usize>, bool, Vec<u8>) {
    let mut s = ChunkScanner::default();
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut used = 0;
    for part in [&data[..split], &data[split..]] {
        pending.extend_from_slice(part);
        match s.feed(&pending, |d| out.extend_from_slice(d)) {
            Some(n) => {
                assert!(n <= pending.len());
                used += n;
                pending.drain(..n);
            }
            None => return (None, false, out),
        }
        if s.done() {
            break;
        }
    }
    (Some(used), s.done(), out)
}

fuzz_target!(|data: &[u8]| {
    if data.is_empty() {
        return;
    }
    let split = usize::from(data[0]) % data.len();
    let data = &data[1..];
    let split = split.min(data.len());
    let whole = run(data, data.len());
    let parts = run(data, split);
    assert!(whole.2.len() <= data.len());
    if whole.1 && parts.1 {
        assert_eq!(whole.0, parts.0);
        assert_eq!(whole.2, parts.2);
    }
    if whole.1 {
        let mut re = BytesMut::new();
        encode(&whole.2, &mut re);
        re.extend_from_slice(LAST_CHUNK);
        let again = run(&re, re.len());
        assert!(again.1);
        assert_eq!(again.2, whole.2);
    }
});
