//! Names of tenants and functions: short, lowercase, safe in URLs, paths and cgroup names.

use crate::RegistryError;

/// `what` names the thing in the error message ("function name", "tenant name").
pub fn validate_name(what: &str, name: &str) -> Result<(), RegistryError> {
    let valid = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(RegistryError::InvalidName(format!(
            "{what} `{name}` is invalid: use 1-63 lowercase letters, digits and inner `-`"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        for good in ["hello", "a", "order-workflow-2"] {
            assert!(validate_name("function name", good).is_ok(), "{good}");
        }
        for bad in ["", "Hello", "-x", "x-", "a/b", "a.b", "..", &"x".repeat(64)] {
            assert!(validate_name("function name", bad).is_err(), "{bad}");
        }
    }
}
