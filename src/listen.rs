//! Operator-facing messages for listeners that cannot be bound: one line
//! naming the address, the setting that chose it (a config key or a `dev`
//! flag) and the fix.

use std::io;
use std::net::SocketAddr;

/// What chose a listen address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// A config key, e.g. `server.listen`.
    Key(&'static str),
    /// A command-line flag, e.g. `--emulator-listen` of `portcullis dev`.
    Flag {
        command: &'static str,
        flag: &'static str,
    },
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Key(k) => f.write_str(k),
            Setting::Flag { command, flag } => write!(f, "{command} {flag}"),
        }
    }
}

/// `cannot listen on ADDR (SETTING): WHAT; fix: FIX`.
pub fn bind_error(addr: SocketAddr, setting: Setting, err: &io::Error) -> String {
    let other_port = addr.port().checked_add(1).unwrap_or(1024);
    let choose = match setting {
        Setting::Key(k) => format!("set {k} to a free address"),
        Setting::Flag { flag, .. } => {
            let mut example = addr;
            example.set_port(other_port);
            format!("pass {flag} with a free address, e.g. {flag} {example}")
        }
    };
    let (what, fix) = match err.kind() {
        io::ErrorKind::AddrInUse => (
            "the address is already in use (another process is listening on it)".to_owned(),
            format!(
                "stop that process (`ss -ltnp 'sport = :{}'` shows it) or {choose}",
                addr.port()
            ),
        ),
        io::ErrorKind::AddrNotAvailable => (
            "this machine has no such address".to_owned(),
            format!("use one of this machine's addresses (e.g. 127.0.0.1 or 0.0.0.0): {choose}"),
        ),
        io::ErrorKind::PermissionDenied => (
            "permission denied (ports below 1024 need privileges)".to_owned(),
            format!("use a port of 1024 or more, or grant CAP_NET_BIND_SERVICE: {choose}"),
        ),
        _ => (err.to_string(), choose),
    };
    format!("cannot listen on {addr} ({setting}): {what}; fix: {fix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_address_setting_and_fix() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let in_use = io::Error::from(io::ErrorKind::AddrInUse);
        let m = bind_error(addr, Setting::Key("server.listen"), &in_use);
        assert_eq!(
            m,
            "cannot listen on 127.0.0.1:8080 (server.listen): the address is already in use \
             (another process is listening on it); fix: stop that process \
             (`ss -ltnp 'sport = :8080'` shows it) or set server.listen to a free address"
        );
        let m = bind_error(
            addr,
            Setting::Flag {
                command: "portcullis dev",
                flag: "--demo-listen",
            },
            &in_use,
        );
        assert!(m.contains("(portcullis dev --demo-listen)"), "{m}");
        assert!(
            m.contains("pass --demo-listen with a free address, e.g. --demo-listen 127.0.0.1:8081"),
            "{m}"
        );
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(bind_error(addr, Setting::Key("admin.listen"), &denied).contains("below 1024"));
        assert!(!m.contains("os error"));
    }
}
