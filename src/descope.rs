//! The Descope API: wire types shared by the gateway's client and the emulator.

pub mod wire;
