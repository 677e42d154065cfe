//! Exit codes and the one-line error report: 1 when the server refused (4xx/5xx), 3 when it
//! cannot be reached or the local setup is wrong (clap itself exits 2 on misuse).

use std::process::ExitCode;

/// The server answered with an error status.
pub const REFUSED: u8 = 1;
/// The server could not be reached or understood, or the local config or files are wrong.
pub const LOCAL: u8 = 3;

/// Prints `error: ...` on stderr and returns the exit code for `error`.
pub fn report(error: &anyhow::Error) -> ExitCode {
    let (code, message) = describe(error);
    eprintln!("error: {message}");
    ExitCode::from(code)
}

/// A refusal is shown as Kiln's `code: message` alone; anything else with its causes.
fn describe(error: &anyhow::Error) -> (u8, String) {
    let client_error = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<kiln_client::Error>());
    match client_error {
        Some(refusal) if refusal.is_refusal() => (REFUSED, refusal.to_string()),
        _ => (LOCAL, format!("{error:#}")),
    }
}

#[cfg(test)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn refusals_exit_1_with_the_code_and_message() {
        let refused: anyhow::Result<()> = Err(kiln_client::Error::Api {
            status: 401,
            code: "invalid_signature".into(),
            message: "the token's signature does not match".into(),
        })
        .context("listing functions");
        assert_eq!(
            describe(&refused.unwrap_err()),
            (
                1,
                "invalid_signature: the token's signature does not match".into()
            )
        );
    }

    #[test]
    fn everything_else_exits_3_with_its_causes() {
        let timeout = anyhow::Error::new(kiln_client::Error::Timeout {
            url: "http://h/v1/functions".into(),
            timeout: std::time::Duration::from_secs(2),
        });
        assert_eq!(
            describe(&timeout),
            (3, "no answer from http://h/v1/functions within 2s".into())
        );
        let missing: anyhow::Result<()> =
            Err(std::io::Error::from(std::io::ErrorKind::NotFound)).context("cannot read ./hello");
        let (code, message) = describe(&missing.unwrap_err());
        assert_eq!(code, 3);
        assert!(message.starts_with("cannot read ./hello: "), "{message}");
    }
}
