//! `import-nginx` on any text: the parser either refuses it with a `FILE:LINE` reason or reads
//! it; what it reads converts without a panic into TOML that parses, with one report line per
//! directive counted.
#![no_main]
use authz_edge::import_nginx::{convert_all, parse};
use libfuzzer_sys::fuzz_target;

fn count(list: &[parse::Directive]) -> usize {
    list.iter().map(|d| 1 + count(d.children())).sum()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let directives = match parse::parse_text(text, "f.conf") {
        Ok(d) => d,
        Err(e) => {
            assert!(e.0.starts_with("f.conf"), "{}", e.0);
            return;
        }
    };
    // No name lookups: the fuzzer must not touch the network.
    let import = convert_all(&directives, false);
    let reported: usize = import.counts.iter().sum();
    assert_eq!(reported, import.report.len());
    assert!(reported <= count(&directives) * 2 + 1, "{reported} lines for {} directives", count(&directives));
    let parsed: Result<toml::Table, _> = import.config.parse();
    assert!(parsed.is_ok(), "{}", import.config);
});
