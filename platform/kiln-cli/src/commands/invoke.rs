//! `kiln invoke NAME`: calls a function as the token's tenant, writes the answer's body to
//! stdout, and exits 1 when its status is not 2xx.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use bytes::Bytes;
use http::Method;
use kiln_client::{Invocation, InvokeResponse};
use serde_json::{Map, Value, json};

use crate::args::InvokeArgs;
use crate::context::Context;
use crate::exit;
use crate::output::print_json;

pub async fn run(context: &Context, args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let client = context.client()?;
    let tenant =
        kiln_client::token_tenant(context.token()?).context("cannot read the tenant from the token")?;
    let body = read_body(&args)?;
    let method = match &args.method {
        Some(method) => Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .with_context(|| format!("`{method}` is not an http method"))?,
        None if body.is_some() => Method::POST,
        None => Method::GET,
    };
    let response = client
        .invoke(Invocation {
            tenant,
            function: args.name.clone(),
            method,
            path: args.path.clone(),
            headers: args.headers.clone(),
            body: body.unwrap_or_default(),
        })
        .await?;
    if context.json() {
        print_json(&as_json(&response))?;
    } else {
        if context.global.verbose {
            eprint!("{}", head(&response));
        }
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&response.body)?;
        stdout.flush()?;
    }
    if (200..300).contains(&response.status) {
        return Ok(ExitCode::SUCCESS);
    }
    let refusal = kiln_client::Error::from_status(response.status, &response.body);
    match refusal {
        kiln_client::Error::Api { .. } => eprintln!("error: {refusal}"),
        _ => eprintln!("error: the function answered {}", response.status),
    }
    Ok(ExitCode::from(exit::REFUSED))
}

/// The body from `--data`, `--data-file` or stdin (`-`), if any.
fn read_body(args: &InvokeArgs) -> anyhow::Result<Option<Bytes>> {
    if let Some(data) = &args.data {
        return Ok(Some(Bytes::from(data.clone())));
    }
    if let Some(path) = &args.data_file {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Some(Bytes::from(bytes)));
    }
    if args.stdin.is_some() {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the body from stdin")?;
        return Ok(Some(Bytes::from(bytes)));
    }
    Ok(None)
}

/// `HTTP 200` and the headers, one per line, for `-v`.
fn head(response: &InvokeResponse) -> String {
    let mut text = format!("HTTP {}\n", response.status);
    for (name, value) in &response.headers {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text
}

/// `{"status", "headers", "body"}`; the body as text (invalid UTF-8 replaced).
fn as_json(response: &InvokeResponse) -> Value {
    let mut headers = Map::new();
    for (name, value) in &response.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(first)) => {
                let first = std::mem::take(first);
                headers.insert(name.to_string(), json!([first, value]));
            }
            Some(Value::Array(values)) => values.push(Value::String(value)),
            _ => {
                headers.insert(name.to_string(), Value::String(value));
            }
        }
    }
    json!({
        "status": response.status,
        "headers": headers,
        "body": String::from_utf8_lossy(&response.body),
    })
}

#[cfg(test)]
mod tests {
    use http::HeaderMap;

    use super::*;

    fn response() -> InvokeResponse {
        let mut headers = HeaderMap::new();
        headers.insert("x-method", "POST".parse().unwrap());
        headers.append("x-trace", "a".parse().unwrap());
        headers.append("x-trace", "b".parse().unwrap());
        InvokeResponse {
            status: 418,
            headers,
            body: Bytes::from_static(b"status 418"),
        }
    }

    #[test]
    fn verbose_heads_and_json_answers() {
        assert_eq!(
            head(&response()),
            "HTTP 418\nx-method: POST\nx-trace: a\nx-trace: b\n"
        );
        assert_eq!(
            as_json(&response()),
            json!({"status": 418, "headers": {"x-method": "POST", "x-trace": ["a", "b"]}, "body": "status 418"})
        );
    }
}
