//! The pure core of Portcullis: parsed inputs in, values out, no sockets.
//!
//! ```text
//! canon ─────────► policy ◄── claims            host   inbound ◄── identity
//! (request path)   (routes, rules)               (Host grammar) (header hygiene)
//! method_override ─► policy, inbound            redirect (return_to)   cookies ◄── login_state
//! ratelimit · single_flight · time · issue (ConfigIssue)
//! ```
//!
//! Nothing here reads configuration files or knows the gateway's config
//! types: the gateway's `config` module validates TOML and builds these
//! values. Everything is unit-tested without a runtime, except
//! `single_flight` and `ratelimit`, which use tokio's clock and tasks.

pub mod canon;
#[doc(hidden)]
pub mod checks;
pub mod claims;
pub mod cookies;
pub mod host;
pub mod identity;
pub mod inbound;
pub mod issue;
pub mod login_state;
pub mod method_override;
pub mod policy;
pub mod ratelimit;
pub mod redirect;
pub mod secret;
pub mod single_flight;
pub mod time;
