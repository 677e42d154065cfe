//! Why a caller was refused, with a stable code for each reason.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <jwt>`")]
    MissingToken,
    #[error("token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("token names tenant `{token}` but this route belongs to tenant `{route}`")]
    WrongTenant { token: String, route: String },
    #[error("unknown tenant or no keys for it")]
    UnknownTenant,
    #[error("no key with this kid for the tenant")]
    UnknownKey,
    #[error("token algorithm does not match the algorithm pinned to key `{0}`")]
    AlgorithmMismatch(String),
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token issuer does not match the tenant's issuer")]
    WrongIssuer,
    #[error("token audience does not match the tenant's audience")]
    WrongAudience,
    #[error("token lacks required claim `{0}`")]
    MissingClaim(String),
    #[error("invalid admin token")]
    BadAdminToken,
    #[error("key lookup failed: {0}")]
    Unavailable(String),
}

impl AuthError {
    /// Stable machine-readable code, part of Kiln's API.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::Malformed(_) => "malformed_token",
            AuthError::WrongTenant { .. } => "wrong_tenant",
            AuthError::UnknownTenant => "unknown_tenant",
            AuthError::UnknownKey => "unknown_key",
            AuthError::AlgorithmMismatch(_) => "algorithm_mismatch",
            AuthError::BadSignature => "invalid_signature",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::WrongIssuer => "invalid_issuer",
            AuthError::WrongAudience => "invalid_audience",
            AuthError::MissingClaim(_) => "missing_claim",
            AuthError::BadAdminToken => "invalid_admin_token",
            AuthError::Unavailable(_) => "auth_unavailable",
        }
    }

    /// True when the caller is known but not allowed (403) rather than not authenticated (401).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, AuthError::WrongTenant { .. })
    }
}
