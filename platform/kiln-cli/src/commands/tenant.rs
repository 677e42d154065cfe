//! `kiln tenant create|list|keys add|keys remove`, with the admin token.

use std::io::Read;

use anyhow::Context as _;
use kiln_client::{NewKey, NewTenant};
use serde_json::json;

use crate::args::{KeysCommand, TenantCommand};
use crate::context::Context;
use crate::output::{Table, optional, print_json};

pub async fn run(context: &Context, command: TenantCommand) -> anyhow::Result<()> {
    let client = context.admin_client()?;
    match command {
        TenantCommand::Create {
            name,
            issuer,
            audience,
            secret,
            kid,
        } => {
            let secret = match secret {
                Some(secret) => secret,
                None => random_secret()?,
            };
            let key = NewKey {
                kid: kid.clone(),
                algorithm: "HS256".into(),
                secret: Some(secret.clone()),
                public_key: None,
            };
            let created = client
                .create_tenant(&NewTenant {
                    name,
                    issuer,
                    audience,
                    keys: vec![key],
                })
                .await?;
            if context.json() {
                return print_json(&json!({
                    "tenant": created.name, "issuer": created.issuer, "audience": created.audience,
                    "kid": kid, "algorithm": "HS256", "secret": secret,
                }));
            }
            println!(
                "created tenant {} (issuer {}, audience {})",
                created.name, created.issuer, created.audience
            );
            println!("kid {kid}");
            println!("secret {secret}");
            eprintln!("keep the secret: kiln does not show it again");
        }
        TenantCommand::List => {
            let tenants = client.list_tenants().await?;
            if context.json() {
                return print_json(&json!({"tenants": tenants}));
            }
            let mut table = Table::new(&["NAME", "ISSUER", "AUDIENCE", "KIDS", "CREATED"]);
            for tenant in &tenants {
                table.row(vec![
                    tenant.name.clone(),
                    tenant.issuer.clone(),
                    tenant.audience.clone(),
                    tenant.kids.join(","),
                    optional(tenant.created_at.as_deref()),
                ]);
            }
            print!("{}", table.render());
        }
        TenantCommand::Keys(KeysCommand::Add {
            tenant,
            kid,
            secret,
            public_key_file,
            algorithm,
        }) => {
            let public_key = public_key_file
                .map(|path| {
                    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
                })
                .transpose()?;
            let key = NewKey {
                kid,
                algorithm: algorithm.unwrap_or_else(|| "HS256".into()),
                secret,
                public_key,
            };
            let added = client.add_key(&tenant, &key).await?;
            if context.json() {
                return print_json(&added);
            }
            println!(
                "added key {} ({}) to {}",
                added.kid, added.algorithm, added.tenant
            );
        }
        TenantCommand::Keys(KeysCommand::Remove { tenant, kid }) => {
            client.remove_key(&tenant, &kid).await?;
            if context.json() {
                return print_json(&json!({"tenant": tenant, "removed": kid}));
            }
            println!("removed key {kid} from {tenant}");
        }
    }
    Ok(())
}

/// 32 random bytes from the kernel, hex-encoded: a 256-bit HS256 secret.
fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read /dev/urandom for a secret")?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_64_hex_digits_and_differ() {
        let first = random_secret().unwrap();
        assert_eq!(first.len(), 64);
        assert!(first.bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(first, random_secret().unwrap());
    }
}
