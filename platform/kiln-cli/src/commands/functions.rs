//! `kiln functions list|show|delete|rollback`.

use kiln_client::FunctionDetail;
use serde_json::json;

use crate::args::FunctionsCommand;
use crate::context::Context;
use crate::output::{Table, fields, print_json, settings, short_digest, size};

pub async fn run(context: &Context, command: FunctionsCommand) -> anyhow::Result<()> {
    let client = context.client()?;
    match command {
        FunctionsCommand::List => {
            let functions = client.list_functions().await?;
            if context.json() {
                return print_json(&json!({"functions": functions}));
            }
            let mut table = Table::new(&["NAME", "VERSION", "DIGEST", "SIZE", "UPDATED"]);
            for function in &functions {
                table.row(vec![
                    function.name.clone(),
                    function.current_version.to_string(),
                    short_digest(&function.digest).to_owned(),
                    size(function.size_bytes),
                    function.updated_at.clone(),
                ]);
            }
            print!("{}", table.render());
        }
        FunctionsCommand::Show { name } => {
            let detail = client.get_function(&name).await?;
            show(context, &detail)?;
        }
        FunctionsCommand::Delete { name } => {
            client.delete_function(&name).await?;
            if context.json() {
                return print_json(&json!({"deleted": name}));
            }
            println!("deleted {name}");
        }
        FunctionsCommand::Rollback { name, version } => {
            let detail = client.set_current(&name, version).await?;
            if context.json() {
                return print_json(&detail);
            }
            println!("{name} now runs version {}", detail.function.current_version);
        }
    }
    Ok(())
}

fn show(context: &Context, detail: &FunctionDetail) -> anyhow::Result<()> {
    if context.json() {
        return print_json(detail);
    }
    let function = &detail.function;
    print!(
        "{}",
        fields(&[
            ("name", function.name.clone()),
            ("current", function.current_version.to_string()),
            ("digest", function.digest.clone()),
            ("size", size(function.size_bytes)),
            ("settings", settings(&function.settings)),
            ("invoke", function.invoke_path.clone()),
            ("created", function.created_at.clone()),
            ("updated", function.updated_at.clone()),
        ])
    );
    println!();
    let mut table = Table::new(&["VERSION", "DIGEST", "SIZE", "CREATED", "SETTINGS"]);
    for version in &detail.versions {
        let marker = if version.version == function.current_version {
            "*"
        } else {
            ""
        };
        table.row(vec![
            format!("{}{marker}", version.version),
            short_digest(&version.digest).to_owned(),
            size(version.size_bytes),
            version.created_at.clone(),
            settings(&version.settings),
        ]);
    }
    print!("{}", table.render());
    Ok(())
}
