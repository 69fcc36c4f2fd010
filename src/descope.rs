//! Talking to Descope: the gateway's API client (`client`) and the wire types
//! shared with the emulator (`wire`).

pub mod client;
pub use portcullis_wire as wire;

pub use client::{DescopeClient, DescopeError, DescopeReply, DescopeSettings, TokenPair};
