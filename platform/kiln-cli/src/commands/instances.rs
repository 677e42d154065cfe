//! `kiln instances list|show|checkpoints|events|start|signal`.

use kiln_client::{Instance, InstanceFilter};
use serde_json::{Value, json};

use crate::args::InstancesCommand;
use crate::context::Context;
use crate::output::{Table, fields, optional, print_json, text};

pub async fn run(context: &Context, command: InstancesCommand) -> anyhow::Result<()> {
    let client = context.client()?;
    match command {
        InstancesCommand::List {
            function,
            status,
            limit,
            cursor,
        } => {
            let filter = InstanceFilter {
                function,
                status,
                limit,
                cursor,
            };
            let page = client.list_instances(&filter).await?;
            if context.json() {
                return print_json(&page);
            }
            let mut table = Table::new(&["ID", "FUNCTION", "VERSION", "STATUS", "ATTEMPT", "CREATED"]);
            for instance in &page.instances {
                table.row(vec![
                    instance.id.clone(),
                    instance.function.clone(),
                    instance.version.to_string(),
                    instance.status.clone(),
                    instance.attempt.to_string(),
                    instance.created_at.clone(),
                ]);
            }
            print!("{}", table.render());
            if let Some(cursor) = &page.next_cursor {
                eprintln!("next page: add --cursor {cursor}");
            }
        }
        InstancesCommand::Show { id } => {
            let instance = client.get_instance(&id).await?;
            if context.json() {
                return print_json(&instance);
            }
            print!("{}", describe(&instance));
        }
        InstancesCommand::Checkpoints { id } => {
            let checkpoints = client.instance_checkpoints(&id).await?;
            if context.json() {
                return print_json(&json!({"checkpoints": checkpoints}));
            }
            let mut table = Table::new(&["KEY", "CREATED", "VALUE"]);
            for checkpoint in &checkpoints {
                table.row(vec![
                    checkpoint.key.clone(),
                    checkpoint.created_at.clone(),
                    text(&checkpoint.value),
                ]);
            }
            print!("{}", table.render());
        }
        InstancesCommand::Events { id } => {
            let events = client.instance_events(&id).await?;
            if context.json() {
                return print_json(&json!({"events": events}));
            }
            let mut table = Table::new(&["AT", "KIND", "DETAIL"]);
            for event in &events {
                table.row(vec![event.at.clone(), event.kind.clone(), text(&event.detail)]);
            }
            print!("{}", table.render());
        }
        InstancesCommand::Start {
            function,
            input,
            idempotency_key,
        } => {
            let input = input.unwrap_or(Value::Null);
            let started = client
                .start_instance(&function, &input, idempotency_key.as_deref())
                .await?;
            if context.json() {
                return print_json(&started.instance);
            }
            let verb = if started.created {
                "started"
            } else {
                "already started"
            };
            println!("{verb} {} ({})", started.instance.id, started.instance.status);
        }
        InstancesCommand::Signal { id, name, payload } => {
            let payload = payload.unwrap_or(Value::Null);
            let sent = client.signal_instance(&id, &name, &payload).await?;
            if context.json() {
                return print_json(&sent);
            }
            println!("sent {name} to {id} (now {})", sent.instance.status);
        }
    }
    Ok(())
}

/// An instance as `key: value` lines; input, output and error as compact JSON.
fn describe(instance: &Instance) -> String {
    let error = instance
        .error
        .as_ref()
        .map(|error| match &error.message {
            Some(message) => format!("{}: {message}", error.code),
            None => error.code.clone(),
        })
        .unwrap_or_default();
    fields(&[
        ("id", instance.id.clone()),
        (
            "function",
            format!("{} (version {})", instance.function, instance.version),
        ),
        ("status", instance.status.clone()),
        ("attempt", instance.attempt.to_string()),
        ("input", compact(&instance.input)),
        ("output", compact(&instance.output)),
        ("error", error),
        ("waiting for", optional(instance.waiting_for.as_deref())),
        ("wakes at", optional(instance.wake_at.as_deref())),
        ("idempotency key", optional(instance.idempotency_key.as_deref())),
        ("created", instance.created_at.clone()),
        ("updated", instance.updated_at.clone()),
        ("finished", optional(instance.finished_at.as_deref())),
        ("deadline", instance.deadline_at.clone()),
    ])
}

/// JSON on one line; `null` (nothing) as an empty string.
fn compact(value: &Value) -> String {
    if value.is_null() {
        String::new()
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_reads_as_fields() {
        let instance: Instance = serde_json::from_value(json!({
            "id": "6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2", "function": "orders", "version": 2,
            "status": "completed", "input": {"n": 1}, "output": "done", "error": null, "attempt": 1,
            "wake_at": null, "waiting_for": null, "idempotency_key": "k-1",
            "deadline_at": "2026-02-01T00:00:00.000Z", "created_at": "2026-01-01T00:00:00.000Z",
            "updated_at": "2026-01-01T00:00:01.000Z", "finished_at": "2026-01-01T00:00:01.000Z"
        }))
        .unwrap();
        assert_eq!(
            describe(&instance),
            "id:              6f1c2a3b-0d4e-4f5a-8b6c-7d8e9fa0b1c2\n\
             function:        orders (version 2)\n\
             status:          completed\n\
             attempt:         1\n\
             input:           {\"n\":1}\n\
             output:          \"done\"\n\
             idempotency key: k-1\n\
             created:         2026-01-01T00:00:00.000Z\n\
             updated:         2026-01-01T00:00:01.000Z\n\
             finished:        2026-01-01T00:00:01.000Z\n\
             deadline:        2026-02-01T00:00:00.000Z\n"
        );
    }
}
