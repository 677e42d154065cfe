//! The operator's admin token, compared in constant time.

use subtle::ConstantTimeEq;

use crate::AuthError;

/// `None` disables the admin API altogether.
#[derive(Clone)]
pub struct AdminToken(Option<String>);

impl AdminToken {
    pub fn new(token: Option<String>) -> AdminToken {
        AdminToken(token.filter(|token| !token.is_empty()))
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Checks a presented bearer token; the comparison time does not depend on where bytes differ.
    pub fn check(&self, presented: Option<&str>) -> Result<(), AuthError> {
        let (Some(expected), Some(presented)) = (&self.0, presented) else {
            return Err(AuthError::BadAdminToken);
        };
        if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
            Ok(())
        } else {
            Err(AuthError::BadAdminToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_token() {
        let admin = AdminToken::new(Some("s3cret-admin".into()));
        assert!(admin.check(Some("s3cret-admin")).is_ok());
        assert_eq!(admin.check(Some("s3cret-admin ")), Err(AuthError::BadAdminToken));
        assert_eq!(admin.check(Some("s3cret")), Err(AuthError::BadAdminToken));
        assert_eq!(admin.check(None), Err(AuthError::BadAdminToken));
    }

    #[test]
    fn empty_token_disables_admin() {
        let admin = AdminToken::new(Some(String::new()));
        assert!(!admin.is_enabled());
        assert_eq!(admin.check(Some("")), Err(AuthError::BadAdminToken));
    }
}
