//! `kiln logs NAME|INSTANCE_ID`: a function's log lines, or one instance's (its function is
//! looked up first); `--follow` keeps printing until interrupted.

use anyhow::Context as _;
use kiln_client::{LogLine, LogQuery};

use crate::args::LogsArgs;
use crate::context::Context;

pub async fn run(context: &Context, args: LogsArgs) -> anyhow::Result<()> {
    let client = context.client()?;
    let mut query = LogQuery {
        lines: args.lines,
        follow: args.follow,
        ..LogQuery::default()
    };
    let function = if kiln_client::is_instance_id(&args.target) {
        let instance = client
            .get_instance(&args.target)
            .await
            .with_context(|| format!("looking up instance {}", args.target))?;
        query.instance = Some(args.target);
        instance.function
    } else {
        args.target
    };
    let mut lines = client.function_logs(&function, &query).await?;
    while let Some(line) = lines.next().await {
        let line = line?;
        if context.json() {
            println!("{}", serde_json::to_string(&line)?);
        } else {
            println!("{}", human(&line));
        }
    }
    Ok(())
}

/// `2026-01-01T00:00:00.000Z stderr the line`.
fn human(line: &LogLine) -> String {
    format!("{} {:<6} {}", line.time, line.stream, line.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_time_stream_and_text() {
        let line: LogLine = serde_json::from_str(
            r#"{"time":"2026-01-01T00:00:00.000Z","container":"c1","invocation":null,"instance":null,"stream":"stdout","line":"hi"}"#,
        )
        .unwrap();
        assert_eq!(human(&line), "2026-01-01T00:00:00.000Z stdout hi");
    }
}
