//! `kiln deploy NAME PATH [--set key=value ...]`: uploads an executable as the new current
//! version, with a progress bar on stderr when it is a terminal.

use std::io::IsTerminal;

use anyhow::Context as _;
use bytes::Bytes;

use crate::args::DeployArgs;
use crate::context::Context;
use crate::output::print_json;
use crate::progress;

pub async fn run(context: &Context, args: DeployArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let executable = tokio::fs::read(&args.path)
        .await
        .with_context(|| format!("cannot read {}", args.path.display()))?;
    let bar = progress::bar(std::io::stderr().is_terminal());
    let uploaded = client
        .upload_function(&args.name, &args.settings, Bytes::from(executable), bar)
        .await
        .with_context(|| format!("deploying {}", args.name))?;
    if context.json() {
        return print_json(&uploaded);
    }
    println!("deployed {} version {}", uploaded.name, uploaded.version.version);
    println!("digest {}", uploaded.version.digest);
    Ok(())
}
