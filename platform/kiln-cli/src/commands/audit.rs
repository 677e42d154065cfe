//! `kiln audit`: the audit log, newest first.

use crate::args::AuditArgs;
use crate::context::Context;
use crate::output::{Table, optional, print_json, text};

pub async fn run(context: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let client = if args.admin {
        context.admin_client()?
    } else {
        context.client()?
    };
    let page = client.audit(args.limit, args.cursor.as_deref()).await?;
    if context.json() {
        return print_json(&page);
    }
    let mut table = Table::new(&["TIME", "TENANT", "ACTOR", "ACTION", "TARGET", "DETAILS"]);
    for entry in &page.entries {
        table.row(vec![
            entry.time.clone(),
            optional(entry.tenant.as_deref()),
            optional(entry.actor.as_deref()),
            entry.action.clone(),
            optional(entry.target.as_deref()),
            text(&entry.details),
        ]);
    }
    print!("{}", table.render());
    if let Some(cursor) = &page.next_cursor {
        eprintln!("more: kiln audit --cursor {cursor}");
    }
    Ok(())
}
