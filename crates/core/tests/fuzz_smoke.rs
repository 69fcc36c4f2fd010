//! The fuzz targets' properties (`portcullis_core::checks`), run on stable
//! Rust in every `cargo test`: the committed seeds of `fuzz/seeds/` plus a
//! bounded, deterministic stream of generated inputs built from the pieces
//! that broke gateways before (junk after a host, comma-joined hosts, IPv6
//! brackets, `_`/`-`/case spellings of special headers). The long runs are
//! `scripts/fuzz` (cargo-fuzz, nightly).

use std::path::Path;

use portcullis_core::checks;

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        out.push(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

const HOST_PIECES: &[&str] = &[
    "admin",
    "admin.test",
    "ADMIN.Test",
    "example.com",
    "a-b_c",
    "xn--bcher-kva",
    ".",
    "..",
    ":",
    "::",
    "80",
    "8080",
    "65535",
    "65536",
    "0",
    "00080",
    "-1",
    "x",
    "[",
    "]",
    "[::1]",
    "::1",
    "[fe80::1%25eth0]",
    "127.0.0.1",
    "127.1",
    "1.2.3.4.5",
    ",",
    ";",
    "@",
    " ",
    "\t",
    "/",
    "\\",
    "?",
    "#",
    "%2e",
    "%00",
    "é",
    "\u{3002}",
    "*",
    "_",
    "-",
];

#[test]
fn host_grammar_holds() {
    for seed in seeds("host_header") {
        if let Ok(s) = std::str::from_utf8(&seed) {
            checks::host_header(s.trim_end_matches('\n'));
        }
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..60_000 {
        let n = 1 + rng.next() % 6;
        let s: String = (0..n).map(|_| rng.pick(HOST_PIECES)).collect();
        checks::host_header(&s);
    }
}

const NAME_PIECES: &[&str] = &[
    "X",
    "x",
    "-",
    "_",
    "Forwarded",
    "For",
    "Host",
    "Proto",
    "Real",
    "IP",
    "Client",
    "True",
    "Auth",
    "User",
    "Id",
    "Email",
    "Roles",
    "Original",
    "URL",
    "Rewrite",
    "HTTP",
    "Method",
    "Override",
    "Request",
    "Ssl",
    "Scheme",
    "Amzn",
    "Oidc",
    "Data",
    "Goog",
    "Authenticated",
    "Ms",
    "Principal",
    "Consumer",
    "Username",
    "Legacy",
    "Accept",
    "Cookie",
    "Content",
    "Type",
    "Length",
    "Via",
    "Prefix",
    "Uri",
    "Port",
    "Portcullis",
    "Assertion",
    "Forwarded-Client-Cert",
];

const VALUES: &[&str] = &["evil", "admin", "DELETE", "10.0.0.1", "", " spaced ", "a,b"];

#[test]
fn header_name_normalisation_holds() {
    for seed in seeds("header_names") {
        let text = String::from_utf8_lossy(&seed);
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = text
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().as_bytes().to_vec(), v.trim().as_bytes().to_vec()))
            .collect();
        checks::header_names(&pairs, false);
        checks::header_names(&pairs, true);
    }
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for i in 0..20_000 {
        let count = 1 + rng.next() % 8;
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (0..count)
            .map(|_| {
                let parts = 1 + rng.next() % 5;
                let mut name = String::new();
                for p in 0..parts {
                    if p > 0 {
                        name.push_str(rng.pick(&["-", "_", "-", "__"]));
                    }
                    name.push_str(rng.pick(NAME_PIECES));
                }
                (name.into_bytes(), rng.pick(VALUES).as_bytes().to_vec())
            })
            .collect();
        checks::header_names(&pairs, i % 2 == 0);
    }
}
