//! The config's parsing and validation, one refusal per test.

use super::*;
use std::time::Duration;

const MIN: &str = "[upstream]\nservers = [\"127.0.0.1:8000\"]\n";

#[test]
fn durations_parse_with_units() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert!(parse_duration("10").is_err());
    assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
    assert!(parse_duration("10x").is_err());
    assert!(parse_duration("").is_err());
}

#[test]
fn minimal_config_is_valid() {
    let c = parse(MIN).expect("parses");
    assert!(validate(&c).is_empty());
    assert_eq!(c.limits.max_headers, 100);
}

#[test]
fn unknown_key_names_its_path() {
    let e = parse(&format!("{MIN}bogus = 1\n")).expect_err("refused");
    assert!(e[0].message.contains("unknown field `bogus`"), "{e:?}");
    let e = parse("[upstream]\nservers=[\"127.0.0.1:1\"]\ncolour = 2\n").expect_err("refused");
    assert_eq!(e[0].key, "upstream.colour");
    assert!(e[0].message.contains("colour"), "{e:?}");
}

#[test]
fn bad_server_names_its_index() {
    let p = parse("[upstream]\nservers = [\"127.0.0.1:8000\", \"nohost\"]\n").expect_err("refused");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "upstream.servers[1]");
    assert!(
        p[0].message
            .starts_with("`nohost` is not an address of the form IP:PORT"),
        "{p:?}"
    );
}

#[test]
fn every_parse_problem_is_reported_with_its_key() {
    let text = "[server]\nthreads = \"two\"\ncolour = 1\n\n[upstream]\nservers = [\"x\", \"127.0.0.1:1\", \"y\"]\nconnect_timeout = \"soon\"\n\n[forwarding]\ntrusted_proxies = [\"10.0.0.0/8\", \"lan\"]\n\n[context]\nuser_header = \"bad header\"\n\n[spike]\nwindow = \"60\"\n";
    let p = parse(text).expect_err("refused");
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.threads",
            "context.user_header",
            "forwarding.trusted_proxies[1]",
            "server.colour",
            "spike.window",
            "upstream.connect_timeout",
            "upstream.servers[0]",
            "upstream.servers[2]",
        ],
        "{p:#?}"
    );
    assert!(
        p[0].message.ends_with("(line 2)"),
        "the first gives its line: {p:?}"
    );
    assert!(p[6].message.contains("`x` is not an address"), "{p:?}");
    assert!(p[7].message.contains("`y` is not an address"), "{p:?}");
}

#[test]
fn bad_duration_names_its_key() {
    let e =
        parse("[upstream]\nservers = [\"127.0.0.1:8000\"]\nconnect_timeout = \"ten seconds\"\n")
            .expect_err("refused");
    assert_eq!(e[0].key, "upstream.connect_timeout");
}

#[test]
fn the_admin_listener_needs_a_port_of_its_own() {
    let p = crate::config::validate(
        &parse("[server]\nlisten = [\"127.0.0.1:8080\"]\nadmin = \"127.0.0.1:8080\"\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n")
            .expect("parses"),
    );
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "server.admin");
    let ephemeral = "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n[upstream]\nservers = [\"127.0.0.1:8000\"]\n";
    assert!(crate::config::validate(&parse(ephemeral).expect("parses")).is_empty());
}

#[test]
fn an_address_used_twice_is_named_by_both_keys() {
    let text = "[server]\nlisten = [\"127.0.0.1:8080\", \"127.0.0.1:8443\"]\n\
                [tls]\nlisten = [\"127.0.0.1:8443\"]\ncert = \"c\"\nkey = \"k\"\n\
                [upstream]\nservers = [\"127.0.0.1:8000\"]\n";
    let p = crate::config::validate(&parse(text).expect("parses"));
    let dup: Vec<_> = p.iter().filter(|p| p.key.contains("listen")).collect();
    assert_eq!(dup.len(), 1, "{p:?}");
    assert_eq!(dup[0].key, "tls.listen[0]");
    assert_eq!(
        dup[0].message,
        "127.0.0.1:8443 is server.listen[1] too: give each listener its own address"
    );
}

#[test]
fn a_bare_number_duration_says_what_to_write() {
    let e = parse("[upstream]\nservers = [\"127.0.0.1:8000\"]\nread_timeout = 60\n")
        .expect_err("refused");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].key, "upstream.read_timeout");
    assert!(
        e[0].message
            .starts_with("60 has no unit: write a duration such as \"60s\" (a string)"),
        "{e:?}"
    );
}

#[test]
fn login_paths_are_paths_without_a_query() {
    let c = parse(MIN).expect("parses");
    assert_eq!(c.context.login_paths, ["/accounts/login/"]);
    let c = parse(&format!(
        "{MIN}[context]\nlogin_paths = [\"/sso/start\", \"/admin/login/\"]\n"
    ))
    .expect("parses");
    assert!(validate(&c).is_empty());
    for (bad, why) in [
        ("accounts/login/", "relative"),
        ("/login/?next=/", "a query"),
        ("/log in/", "a space"),
        ("https://id.example.com/sso", "a URL"),
    ] {
        let c = parse(&format!(
            "{MIN}[context]\nlogin_paths = [\"/ok/\", \"{bad}\"]\n"
        ))
        .expect("parses");
        let p = validate(&c);
        assert_eq!(p.len(), 1, "{why}: {p:?}");
        assert_eq!(p[0].key, "context.login_paths[1]", "{why}");
        assert!(p[0].message.contains("is not a path"), "{why}: {p:?}");
    }
}
