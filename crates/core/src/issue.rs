//! One configuration problem, phrased for an operator: key, value, problem, fix.

use std::fmt;

/// A configuration error or lint. `Display` renders
/// `KEY = VALUE: PROBLEM; fix: FIX`, the form every config message takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `routes[2].roles` or `session.secret`.
    pub key: String,
    /// The offending value as written (never a secret's value).
    pub value: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    #[must_use]
    pub fn with_value(mut self, value: impl fmt::Display) -> Self {
        self.value = Some(value.to_string());
        self
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(v) => write!(
                f,
                "{} = {}: {}; fix: {}",
                self.key, v, self.problem, self.fix
            ),
            None => write!(f, "{}: {}; fix: {}", self.key, self.problem, self.fix),
        }
    }
}
