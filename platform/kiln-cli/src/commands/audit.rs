//! `kiln audit`: the audit log, newest first: the tenant's own, or with `--admin` everyone's.

use kiln_client::AuditQuery;

use crate::args::AuditArgs;
use crate::context::Context;
use crate::output::{Table, optional, print_json, text};

pub async fn run(context: &Context, args: AuditArgs) -> anyhow::Result<()> {
    let query = AuditQuery {
        limit: args.limit,
        cursor: args.cursor,
    };
    let page = if args.admin {
        let tenant = args.tenant.as_deref();
        context.admin_client()?.admin_audit(&query, tenant).await?
    } else {
        context.client()?.audit(&query).await?
    };
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
        eprintln!("next page: add --cursor {cursor}");
    }
    Ok(())
}
