//! kilnd's one-shot commands: migrations, tenant creation, token minting.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use store::{KeyRecord, NewTenant, Store, StoreConfig};

use crate::args::{CreateTenant, MintToken};
use crate::config::Config;

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let applied = store::migrate(&config.database_url)
        .await
        .context("running database migrations")?;
    println!("applied {applied} migration(s)");
    Ok(())
}

/// `kilnd tenant create NAME [--kid K] [--secret S] [--issuer I] [--audience A]`.
pub async fn create_tenant(config: &Config, args: CreateTenant) -> anyhow::Result<()> {
    registry::validate_name("tenant name", &args.name)?;
    store::migrate(&config.database_url)
        .await
        .context("running database migrations")?;
    let store = Store::new(&StoreConfig {
        url: config.database_url.clone(),
        pool_size: 1,
        timeout: config.db_timeout,
    })?;
    let secret = match args.secret {
        Some(secret) => secret,
        None => random_secret()?,
    };
    let key = KeyRecord {
        kid: args.kid,
        algorithm: "HS256".into(),
        material: secret,
    };
    auth::validate_key(&key)?;
    let tenant = NewTenant {
        audience: args.audience.unwrap_or_else(|| format!("kiln:{}", args.name)),
        name: args.name,
        issuer: args.issuer,
        keys: vec![key.clone()],
    };
    store
        .create_tenant(&tenant, "admin (kilnd tenant create)")
        .await?;
    let printed = serde_json::json!({
        "tenant": tenant.name, "issuer": tenant.issuer, "audience": tenant.audience,
        "kid": key.kid, "algorithm": key.algorithm, "secret": key.material,
    });
    println!("{printed}");
    Ok(())
}

/// `kilnd token mint --tenant T --secret S [--kid K] [--issuer I] [--audience A] [--ttl SECONDS]`.
pub fn mint_token(args: MintToken) -> ExitCode {
    let audience = args.audience.unwrap_or_else(|| format!("kiln:{}", args.tenant));
    match auth::mint_hs256(
        &args.tenant,
        &args.kid,
        &args.secret,
        &args.issuer,
        &audience,
        args.ttl,
    ) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("kilnd token mint: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// 32 random bytes from the kernel, hex-encoded: a 256-bit HS256 secret.
fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}
