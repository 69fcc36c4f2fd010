//! Serde mirror of `[[routes]]` and `[policy]`. STUB: the policy work replaces this file.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyToml {
    pub default: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteToml {
    pub path: Option<String>,
}
