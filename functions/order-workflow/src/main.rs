//! An example durable workflow: reserve an order, let a cool-off period pass, wait for an
//! approval, then charge it, or release the reservation when no approval comes in time.
//!
//! Input: `{"order": 42, "amount_cents": 1999, "cool_off_s": 5, "approval_timeout_s": 3600}`
//! (the last two optional). Send the approval as signal `approved` with payload
//! `{"by": "..."}`. See `README.md` for a session against a running Kiln.

use std::time::Duration;

use kiln_sdk::{Failure, Instance, Interrupt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

fn main() {
    kiln_sdk::serve_durable(workflow)
}

/// The instance's input.
#[derive(Debug, Deserialize)]
struct Order {
    /// The order's id, a number or a string.
    order: Value,
    amount_cents: u64,
    #[serde(default = "default_cool_off_s")]
    cool_off_s: u64,
    #[serde(default = "default_approval_timeout_s")]
    approval_timeout_s: u64,
}

fn default_cool_off_s() -> u64 {
    5
}

fn default_approval_timeout_s() -> u64 {
    3600
}

/// The result of the `reserve` step.
#[derive(Debug, Serialize, Deserialize)]
struct Reservation {
    reservation: String,
}

/// The result of the `charge` step.
#[derive(Debug, Serialize, Deserialize)]
struct Charge {
    charge: String,
    amount_cents: u64,
}

/// The workflow, replayed from the start on every dispatch: each step below returns its
/// stored result once it has one. The step bodies stand in for calls to a stock and a
/// payment service; a real one would pass `instance.id()` as the idempotency key, since a
/// step runs again if the container dies before its result is stored.
fn workflow(instance: &mut Instance) -> Result<Value, Interrupt> {
    let order: Order = serde_json::from_value(instance.input().clone()).map_err(|error| {
        Failure::new(
            "InvalidInput",
            format!("the input must be {{\"order\": id, \"amount_cents\": n}}: {error}"),
        )
    })?;
    let label = label(&order.order);
    let reservation: Reservation = instance.checkpoint("reserve", || {
        Ok(Reservation {
            reservation: format!("r-{label}"),
        })
    })?;
    instance.sleep("cool-off", Duration::from_secs(order.cool_off_s))?;
    let approval = instance.wait_for_event("approved", Duration::from_secs(order.approval_timeout_s))?;
    let Some(approval) = approval else {
        let _: Value = instance.checkpoint("release", || Ok(json!({"released": reservation.reservation})))?;
        return Ok(json!({"order": order.order, "status": "expired"}));
    };
    let charge: Charge = instance.checkpoint("charge", || {
        Ok(Charge {
            charge: format!("ch-{label}"),
            amount_cents: order.amount_cents,
        })
    })?;
    Ok(json!({
        "order": order.order,
        "status": "charged",
        "reservation": reservation.reservation,
        "charge": charge.charge,
        "approved_by": approval["by"],
    }))
}

/// The order id as it appears in reservation and charge ids: strings as they are, anything
/// else as JSON.
fn label(order: &Value) -> String {
    match order {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
