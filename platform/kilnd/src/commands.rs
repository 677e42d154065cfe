//! kilnd's one-shot commands: migrations, tenant creation, token minting.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use store::{KeyRecord, NewTenant, Store, StoreConfig};

use crate::config::Config;

pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let applied = store::migrate(&config.database_url)
        .await
        .context("running database migrations")?;
    println!("applied {applied} migration(s)");
    Ok(())
}

/// `kilnd tenant create NAME [--kid K] [--secret S] [--issuer I] [--audience A]`.
pub async fn create_tenant(config: &Config, name: &str, flags: &[&str]) -> anyhow::Result<()> {
    registry::validate_name("tenant name", name)?;
    let flags = Flags::parse(flags, &["--kid", "--secret", "--issuer", "--audience"])?;
    store::migrate(&config.database_url)
        .await
        .context("running database migrations")?;
    let store = Store::new(&StoreConfig {
        url: config.database_url.clone(),
        pool_size: 1,
        timeout: config.db_timeout,
    })?;
    let secret = match flags.get("--secret") {
        Some(secret) => secret.to_owned(),
        None => random_secret()?,
    };
    let key = KeyRecord {
        kid: flags.get("--kid").unwrap_or("k1").to_owned(),
        algorithm: "HS256".into(),
        material: secret,
    };
    auth::validate_key(&key)?;
    let tenant = NewTenant {
        name: name.to_owned(),
        issuer: flags.get("--issuer").unwrap_or("kiln").to_owned(),
        audience: flags
            .get("--audience")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("kiln:{name}")),
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
pub fn mint_token(flags: &[&str]) -> ExitCode {
    let minted = (|| -> anyhow::Result<String> {
        let flags = Flags::parse(
            flags,
            &["--tenant", "--secret", "--kid", "--issuer", "--audience", "--ttl"],
        )?;
        let tenant = flags.get("--tenant").context("--tenant is required")?;
        let secret = flags.get("--secret").context("--secret is required")?;
        let ttl: u64 = flags
            .get("--ttl")
            .unwrap_or("3600")
            .parse()
            .context("--ttl must be a number of seconds")?;
        let audience = flags
            .get("--audience")
            .map(str::to_owned)
            .unwrap_or_else(|| format!("kiln:{tenant}"));
        let token = auth::mint_hs256(
            tenant,
            flags.get("--kid").unwrap_or("k1"),
            secret,
            flags.get("--issuer").unwrap_or("kiln"),
            &audience,
            ttl,
        )?;
        Ok(token)
    })();
    match minted {
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

/// `--name value` pairs, restricted to the names a command knows.
struct Flags<'a>(Vec<(&'a str, &'a str)>);

impl<'a> Flags<'a> {
    fn parse(words: &[&'a str], known: &[&str]) -> anyhow::Result<Flags<'a>> {
        let mut pairs = Vec::new();
        let mut words = words.iter();
        while let Some(&name) = words.next() {
            if !known.contains(&name) {
                bail!("unknown option `{name}`; known: {}", known.join(", "));
            }
            let value = words.next().with_context(|| format!("{name} needs a value"))?;
            pairs.push((name, *value));
        }
        Ok(Flags(pairs))
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .iter()
            .rev()
            .find(|(flag, _)| *flag == name)
            .map(|(_, value)| *value)
    }
}

/// 32 random bytes from the kernel, hex-encoded: a 256-bit HS256 secret.
fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}
