//! kilnd's command line: the server by default, operator commands, and the internal
//! sandbox entry point. Everything else kilnd needs comes from its environment (`config.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "kilnd",
    version,
    about = "The Kiln server: configured by DATABASE_URL and KILN_* variables (see the README)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default)
    Serve,
    /// Apply the database migrations and exit
    Migrate,
    /// Manage tenants
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Make tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Internal: the container sandbox process kilnd starts for itself
    #[command(hide = true)]
    Sandbox {
        #[arg(long)]
        state: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with one HS256 key and print the key as JSON
    Create(CreateTenant),
}

#[derive(Debug, Args)]
pub struct CreateTenant {
    /// The tenant's name: 1-63 lower-case letters, digits and inner `-`
    pub name: String,
    /// The key's id (`kid` in tokens)
    #[arg(long, default_value = "k1")]
    pub kid: String,
    /// The HS256 secret; a random 256-bit one when not given
    #[arg(long)]
    pub secret: Option<String>,
    /// The issuer tokens must name
    #[arg(long, default_value = "kiln")]
    pub issuer: String,
    /// The audience tokens must name; `kiln:NAME` when not given
    #[arg(long)]
    pub audience: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print an HS256 JWT for a tenant
    Mint(MintToken),
}

#[derive(Debug, Args)]
pub struct MintToken {
    #[arg(long)]
    pub tenant: String,
    /// The tenant key's HS256 secret
    #[arg(long)]
    pub secret: String,
    #[arg(long, default_value = "k1")]
    pub kid: String,
    #[arg(long, default_value = "kiln")]
    pub issuer: String,
    /// `kiln:TENANT` when not given
    #[arg(long)]
    pub audience: Option<String>,
    /// Seconds until the token expires
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_parses_as_documented() {
        Cli::command().debug_assert();
        let cli = Cli::parse_from(["kilnd", "tenant", "create", "acme", "--secret", "s"]);
        let Some(Command::Tenant(TenantCommand::Create(tenant))) = cli.command else {
            panic!("not tenant create: {cli:?}");
        };
        assert_eq!(
            (
                tenant.name.as_str(),
                tenant.kid.as_str(),
                tenant.secret.as_deref()
            ),
            ("acme", "k1", Some("s"))
        );
        assert!(
            Cli::parse_from(["kilnd"]).command.is_none(),
            "serve is the default"
        );
        assert!(
            Cli::try_parse_from(["kilnd", "token", "mint", "--tenant", "t"]).is_err(),
            "--secret is required"
        );
        assert!(Cli::try_parse_from(["kilnd", "tenant", "create", "a", "--colour", "x"]).is_err());
    }
}
