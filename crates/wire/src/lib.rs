//! Serde types for the Descope HTTP API (descope-api.md §5–§7), shared by the
//! gateway's Descope client and the emulator.
//!
//! Field names follow the official SDKs (go `types.go`, core-js `sdk/types.ts`).
//! Every field is optional on input (`#[serde(default)]`) because Descope adds
//! and omits fields freely, and absent on output when empty, so a body written
//! by the emulator reads the same to every SDK as one written by Descope.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Name of the session cookie (the `drn` of a session JWT).
pub const SESSION_COOKIE_NAME: &str = "DS";
/// Name of the refresh cookie (the `drn` of a refresh JWT).
pub const REFRESH_COOKIE_NAME: &str = "DSR";

/// The error body of every failed Descope call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    /// `E…` code; go treats a body without one as an invalid response.
    pub error_code: String,
    pub error_description: String,
    pub error_message: String,
}

impl ErrorBody {
    pub fn new(code: &str, description: &str, message: &str) -> Self {
        Self {
            error_code: code.to_owned(),
            error_description: description.to_owned(),
            error_message: message.to_owned(),
        }
    }
}

/// The response of refresh, verify, exchange and sign-in calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JwtResponse {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub session_jwt: String,
    /// Absent when the project manages the refresh token in cookies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_jwt: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cookie_domain: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cookie_path: String,
    /// Seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub cookie_max_age: i64,
    /// Epoch seconds.
    #[serde(skip_serializing_if = "is_zero")]
    pub cookie_expiration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserResponse>,
    pub first_seen: bool,
    /// Epoch seconds of the session JWT's `exp`.
    #[serde(skip_serializing_if = "is_zero")]
    pub session_expiration: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_refresh_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Map<String, Value>>,
    #[serde(rename = "tenantSSOID", skip_serializing_if = "Option::is_none")]
    pub tenant_sso_id: Option<String>,
    /// Custom refresh cookie name, when the project sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A tenant membership of a user.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserTenant {
    pub tenant_id: String,
    pub role_names: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tenant_name: String,
}

/// A user as `/v1/auth/me` and the management API return it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserResponse {
    pub user_id: String,
    pub login_ids: Vec<String>,
    pub name: String,
    pub given_name: String,
    pub middle_name: String,
    pub family_name: String,
    pub email: String,
    pub phone: String,
    pub verified_email: bool,
    pub verified_phone: bool,
    pub role_names: Vec<String>,
    pub user_tenants: Vec<UserTenant>,
    /// `enabled`, `disabled` or `invited`.
    pub status: String,
    pub picture: String,
    pub test: bool,
    pub custom_attributes: Map<String, Value>,
    /// Epoch seconds.
    pub created_time: i64,
    #[serde(rename = "TOTP")]
    pub totp: bool,
    #[serde(rename = "SAML")]
    pub saml: bool,
    pub password: bool,
    pub webauthn: bool,
    #[serde(rename = "OAuth")]
    pub oauth: Map<String, Value>,
    pub external_ids: Vec<String>,
}

/// Body of `/v1/auth/tenant/select`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SelectTenantRequest {
    pub tenant: String,
}

/// One tenant in `/v1/auth/me/tenants`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct MeTenant {
    pub id: String,
    pub name: String,
    pub custom_attributes: Map<String, Value>,
}

/// Response of `/v1/auth/me/tenants`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MeTenantsResponse {
    pub tenants: Vec<MeTenant>,
}

/// Response of the OAuth/SSO authorize calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UrlResponse {
    pub url: String,
}

/// Body of the exchange calls and of magic-link verify (`token`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CodeRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub code: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// Response of the enchanted-link sign-in calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EnchantedLinkResponse {
    pub pending_ref: String,
    pub link_id: String,
    pub masked_email: String,
}

/// Body of `/v1/auth/enchantedlink/pending-session`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PendingSessionRequest {
    pub pending_ref: String,
}

/// The sign-in request body shared by magic link, enchanted link and OTP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInRequest {
    pub login_id: String,
    /// Where the link points; the SDKs send `URI`, the docs say `redirectUrl`.
    #[serde(rename = "URI", alias = "redirectUrl", alias = "redirectURL")]
    pub uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_options: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_response_omits_refresh_in_cookie_mode_and_reads_unknown_fields() {
        let body = JwtResponse {
            session_jwt: "s".into(),
            refresh_jwt: None,
            cookie_path: "/".into(),
            ..Default::default()
        };
        let text = serde_json::to_string(&body).expect("serialisable");
        assert!(!text.contains("refreshJwt"), "{text}");
        assert!(text.contains("\"sessionJwt\":\"s\""), "{text}");
        let parsed: JwtResponse =
            serde_json::from_str(r#"{"sessionJwt":"a","refreshJwt":"b","idpResponse":{}}"#)
                .expect("unknown fields are tolerated");
        assert_eq!(parsed.refresh_jwt.as_deref(), Some("b"));
    }

    #[test]
    fn sign_in_request_accepts_every_uri_spelling() {
        for key in ["URI", "redirectUrl", "redirectURL"] {
            let json = format!(r#"{{"loginId":"a@b.c","{key}":"http://x/cb"}}"#);
            let parsed: SignInRequest = serde_json::from_str(&json).expect("parses");
            assert_eq!(parsed.uri, "http://x/cb", "{key}");
        }
    }

    #[test]
    fn error_body_uses_descope_field_names() {
        let text = serde_json::to_string(&ErrorBody::new("E1", "d", "m")).expect("serialisable");
        assert_eq!(
            text,
            r#"{"errorCode":"E1","errorDescription":"d","errorMessage":"m"}"#
        );
    }
}
