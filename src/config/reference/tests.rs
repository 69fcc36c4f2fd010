use std::collections::BTreeSet;

use super::*;
use crate::config::raw::RawConfig;

/// The TOML table header that opens `table` (`""` is the root).
fn header(table: &str) -> String {
    if table.is_empty() {
        String::new()
    } else if let Some(array) = table.strip_suffix("[]") {
        format!("[[{array}]]\n")
    } else {
        format!("[{}]\n", table.replace("<name>", "x"))
    }
}

fn parse(doc: &str) -> Result<RawConfig, String> {
    toml::from_str::<RawConfig>(doc).map_err(|e| e.message().to_owned())
}

/// The fields serde accepts in `table`, read from its answer to an unknown one.
fn accepted_fields(table: &str) -> Vec<String> {
    let doc = format!("{}__probe = 1\n", header(table));
    let msg = parse(&doc).expect_err("an unknown key is an error");
    assert!(
        msg.contains("unknown field `__probe`"),
        "table {table:?} did not refuse an unknown key by name: {msg}"
    );
    let expected = msg.split("expected").nth(1).unwrap_or_default();
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn join(table: &str, field: &str) -> String {
    if table.is_empty() {
        field.to_owned()
    } else {
        format!("{table}.{field}")
    }
}

fn documented(key: &str) -> Option<&'static KeyDoc> {
    KEYS.iter().find(|r| r.key == key)
}

#[test]
fn every_key_serde_accepts_is_documented_and_every_documented_key_exists() {
    let mut accepted = BTreeSet::new();
    let mut tables = vec![String::new()];
    while let Some(table) = tables.pop() {
        for field in accepted_fields(&table) {
            let key = join(&table, &field);
            accepted.insert(key.clone());
            match documented(&key).map(|r| r.kind) {
                Some(Kind::Table) => tables.push(key),
                Some(Kind::TableArray) => tables.push(format!("{key}[]")),
                Some(Kind::Map(_)) => {
                    // A map of named tables (upstreams.<name>): probe one entry.
                    let child = format!("{key}.<name>");
                    if documented(&child).is_some() {
                        accepted.insert(child.clone());
                        tables.push(child);
                    }
                }
                _ => {}
            }
        }
    }
    let listed: BTreeSet<String> = KEYS.iter().map(|r| r.key.to_owned()).collect();
    let undocumented: Vec<_> = accepted.difference(&listed).collect();
    let unknown: Vec<_> = listed.difference(&accepted).collect();
    assert!(
        undocumented.is_empty(),
        "keys the config accepts but src/config/reference.rs KEYS does not list \
         (add a row, then run UPDATE_DOCS=1 cargo test config::reference to refresh \
         docs/configuration.md): {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "keys listed in src/config/reference.rs that the config does not accept: {unknown:?}"
    );
    let mut seen = BTreeSet::new();
    for r in KEYS {
        assert!(seen.insert(r.key), "{} is listed twice", r.key);
    }
}

/// A value of the documented kind, and one of another kind.
fn probes(kind: Kind) -> Option<(&'static str, &'static str)> {
    match kind {
        Kind::Bool => Some(("true", "\"yes\"")),
        Kind::Int => Some(("1", "\"1\"")),
        Kind::Duration | Kind::Text(_) | Kind::Secret => Some(("\"x\"", "1")),
        Kind::List(_) => Some(("[\"x\"]", "\"x\"")),
        Kind::Map(_) => Some(("{}", "1")),
        Kind::Table => Some(("{}", "1")),
        Kind::TableArray | Kind::Any => None,
    }
}

#[test]
fn documented_types_are_the_types_serde_reads() {
    for row in KEYS {
        let Some((good, bad)) = probes(row.kind) else {
            continue;
        };
        let (table, leaf) = match row.key.rsplit_once('.') {
            Some((t, l)) => (t, l),
            None => ("", row.key),
        };
        if leaf.starts_with('<') {
            continue; // a named entry of a map: its table header is the probe
        }
        let doc = |v: &str| format!("{}{leaf} = {v}\n", header(table));
        if let Err(e) = parse(&doc(good)) {
            panic!(
                "{}: documented as {:?}, but {good} is refused: {e}",
                row.key, row.kind
            );
        }
        assert!(
            parse(&doc(bad)).is_err(),
            "{}: documented as {:?}, but {bad} is accepted too",
            row.key,
            row.kind
        );
    }
}

#[test]
fn restart_only_keys_are_marked() {
    for key in [
        "server.listen",
        "admin.listen",
        "server.tls",
        "server.tls.cert_file",
        "server.tls.key_file",
        "server.max_connections",
        "session.refresh_reuse",
    ] {
        assert!(documented(key).is_some_and(|r| r.restart), "{key}");
    }
    for r in KEYS.iter().filter(|r| r.key.starts_with("descope")) {
        assert!(r.restart, "{} ([descope] needs a restart)", r.key);
    }
    assert!(!documented("routes").is_some_and(|r| r.restart));
}

#[test]
fn lookup_finds_the_row_of_a_serde_path() {
    let key = |p: &str| lookup(p).map(|r| r.key);
    assert_eq!(key("server.idle_timeout"), Some("server.idle_timeout"));
    assert_eq!(key("routes[3].methods"), Some("routes[].methods"));
    assert_eq!(key("upstreams.billing.url"), Some("upstreams.<name>.url"));
    assert_eq!(key("identity.headers.X-Employee"), Some("identity.headers"));
    assert_eq!(key("routes[0].claims.dept"), Some("routes[].claims"));
    assert_eq!(key("server.tls.cert_file"), Some("server.tls.cert_file"));
    assert_eq!(key("nope"), None);
}

const BEGIN: &str = "<!-- BEGIN config-reference: generated from src/config/reference.rs -->\n";
const END: &str = "<!-- END config-reference -->";

#[test]
fn docs_configuration_md_holds_the_generated_reference() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    let doc = std::fs::read_to_string(path).expect("docs/configuration.md exists");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/configuration.md lacks the {BEGIN:?} … {END:?} markers");
    };
    let current = &doc[b + BEGIN.len()..e];
    let wanted = render_markdown();
    if current != wanted {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{BEGIN}{wanted}{}", &doc[..b], &doc[e..]);
            std::fs::write(path, updated).expect("write docs/configuration.md");
        } else {
            panic!(
                "docs/configuration.md is out of date with src/config/reference.rs; \
                 run UPDATE_DOCS=1 cargo test config::reference to regenerate it"
            );
        }
    }
}
