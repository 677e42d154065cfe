//! One module per command; `run` picks the command and gives it the loaded context.

mod audit;
mod deploy;
mod functions;
mod instances;
mod invoke;
mod login;
mod logs;
mod tenant;
mod token;

use std::process::ExitCode;

use crate::args::{Cli, Command, TokenCommand};
use crate::context::Context;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    // Loaded only by the commands that talk to a server: minting needs no config, so a
    // broken config file cannot stop it.
    let context = || Context::load(global.clone());
    match cli.command {
        Command::Token(TokenCommand::Mint(mint)) => token::mint(&mint, global.json)?,
        Command::Login(login) => login::run(context()?, login).await?,
        Command::Deploy(deploy) => deploy::run(&context()?, deploy).await?,
        Command::Functions(command) => functions::run(&context()?, command).await?,
        Command::Invoke(invoke) => return invoke::run(&context()?, invoke).await,
        Command::Logs(logs) => logs::run(&context()?, logs).await?,
        Command::Instances(command) => instances::run(&context()?, command).await?,
        Command::Tenant(command) => tenant::run(&context()?, command).await?,
        Command::Audit(audit) => audit::run(&context()?, audit).await?,
    }
    Ok(ExitCode::SUCCESS)
}
