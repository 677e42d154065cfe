//! `kiln token mint`: an HS256 tenant token made locally from the tenant's secret.

use anyhow::Context as _;
use kiln_client::Mint;
use serde_json::json;

use crate::args::MintArgs;
use crate::output::print_json;

pub fn mint(args: &MintArgs, json: bool) -> anyhow::Result<()> {
    let token = kiln_client::mint_hs256(&Mint {
        tenant: args.tenant.clone(),
        kid: args.kid.clone(),
        secret: args.secret.clone(),
        issuer: args.issuer.clone(),
        audience: args
            .audience
            .clone()
            .unwrap_or_else(|| format!("kiln:{}", args.tenant)),
        ttl_seconds: args.ttl,
    })
    .context("cannot mint the token")?;
    if json {
        print_json(&json!({"token": token}))
    } else {
        println!("{token}");
        Ok(())
    }
}
