//! `kiln login`: checks the URL and tokens against the server, then saves them.

use anyhow::{Context as _, bail};
use serde_json::json;

use crate::args::LoginArgs;
use crate::config::{self, ConfigFile};
use crate::context::Context;
use crate::output::print_json;

pub async fn run(mut context: Context, args: LoginArgs) -> anyhow::Result<()> {
    if let Some(ca_cert) = args.ca_cert {
        let absolute = std::fs::canonicalize(&ca_cert)
            .with_context(|| format!("cannot find the ca certificate file {}", ca_cert.display()))?;
        context.settings.ca_cert = Some(absolute);
    }
    let settings = context.settings.clone();
    if settings.token.is_none() && settings.admin_token.is_none() {
        bail!("login needs a token: pass --token (a tenant token) and/or --admin-token");
    }
    let mut tenant = None;
    if let Some(token) = &settings.token {
        context
            .client()?
            .list_functions()
            .await
            .context("checking the tenant token")?;
        tenant = kiln_client::token_tenant(token).ok();
    }
    if settings.admin_token.is_some() {
        context
            .admin_client()?
            .list_tenants()
            .await
            .context("checking the admin token")?;
    }
    let saved = ConfigFile {
        url: settings.url.clone(),
        token: settings.token.clone(),
        admin_token: settings.admin_token.clone(),
        ca_cert: settings.ca_cert.clone(),
    };
    config::save(&context.config_path, &saved)?;
    let url = settings.url.unwrap_or_default();
    if context.json() {
        print_json(&json!({"url": url, "tenant": tenant, "config": context.config_path}))
    } else {
        let who = tenant
            .map(|tenant| format!(" as tenant {tenant}"))
            .unwrap_or_default();
        println!(
            "logged in to {url}{who}; saved in {}",
            context.config_path.display()
        );
        Ok(())
    }
}
