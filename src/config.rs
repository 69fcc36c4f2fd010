//! Configuration: TOML → `raw` (serde mirror) → validated [`Config`].

mod issue;

pub use issue::ConfigIssue;
