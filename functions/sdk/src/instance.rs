//! One durable dispatch as its handler sees it: the instance's input and stored checkpoints,
//! and the steps (checkpoint, sleep, wait for an event) that reuse them on replay.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::durable::{DurableReply, Interrupt, Wake, unix_ms};
use crate::failure::Failure;
use crate::invocation::Invocation;
use crate::runtime::Runtime;

/// One dispatch of a durable instance. Kiln replays the handler from the start on every
/// dispatch; each step below returns its stored result when the dispatch has one, and does
/// the work (and stores it) only when it does not. Steps must be asked for in the same order
/// on every replay.
///
/// Every step returns [`Interrupt`] when the dispatch cannot go on; return it with `?`.
#[derive(Debug)]
pub struct Instance<'r> {
    /// The connection the durable calls go over.
    runtime: &'r mut Runtime,
    /// The dispatch's invocation id, which durable calls are addressed to.
    invocation_id: String,
    id: String,
    attempt: u32,
    input: Value,
    /// Every checkpoint this dispatch knows: those Kiln sent with it plus those stored since.
    checkpoints: Map<String, Value>,
    /// How often each event name has been waited for in this dispatch: it numbers the wait keys.
    waits: HashMap<String, u32>,
}

/// The body of a durable dispatch.
#[derive(Deserialize)]
struct Dispatch {
    #[serde(default)]
    input: Value,
    #[serde(default)]
    checkpoints: Map<String, Value>,
}

impl<'r> Instance<'r> {
    /// The instance behind durable dispatch `invocation`, making its calls over `runtime`
    /// (for functions that drive the loop themselves; [`serve_durable`](crate::serve_durable)
    /// does this). Fails with error type `NotDurable` for a plain invocation and
    /// `InvalidDispatch` when the body is not a dispatch.
    pub fn new(runtime: &'r mut Runtime, invocation: &Invocation) -> Result<Instance<'r>, Failure> {
        let Some(id) = invocation.instance_id.clone() else {
            return Err(Failure::new(
                "NotDurable",
                "this invocation is not a durable instance dispatch",
            ));
        };
        let dispatch: Dispatch = serde_json::from_slice(&invocation.body).map_err(|error| {
            Failure::new(
                "InvalidDispatch",
                format!("the dispatch body is not {{\"input\": ..., \"checkpoints\": {{...}}}}: {error}"),
            )
        })?;
        Ok(Instance {
            runtime,
            invocation_id: invocation.id.clone(),
            id,
            attempt: invocation.attempt,
            input: dispatch.input,
            checkpoints: dispatch.checkpoints,
            waits: HashMap::new(),
        })
    }

    /// The instance id (`Kiln-Instance-Id`), the same on every dispatch: a good idempotency
    /// key for external services.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many times the instance has been dispatched, this one included (from 1).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The instance's input, as given when it was started.
    pub fn input(&self) -> &Value {
        &self.input
    }

    /// The value stored under `key`, if this dispatch knows it: the sleep and wait keys hold
    /// Kiln's own values (`{"wake_at_ms": ...}`, `{"event": ..., "payload": ...}`).
    pub fn stored(&self, key: &str) -> Option<&Value> {
        self.checkpoints.get(key)
    }

    /// A step whose result is stored under `key`: the stored result when there is one (and
    /// `work` does not run), otherwise `work`'s result, stored before it is returned. If
    /// another dispatch stored the key first, its value is returned: the first write wins.
    ///
    /// `work` may run more than once across dispatches (if the container dies before the
    /// result is stored), so make it idempotent. An `Err` from `work` fails the instance.
    pub fn checkpoint<T: Serialize + DeserializeOwned>(
        &mut self,
        key: &str,
        work: impl FnOnce() -> Result<T, Failure>,
    ) -> Result<T, Interrupt> {
        if let Some(stored) = self.checkpoints.get(key) {
            return decode(key, stored);
        }
        let value = serde_json::to_value(work()?).map_err(|error| {
            Failure::new(
                "BadCheckpoint",
                format!("checkpoint `{key}` cannot be stored as JSON: {error}"),
            )
        })?;
        let stored = self.runtime.checkpoint(&self.invocation_id, key, &value)?;
        decode(key, self.checkpoints.entry(key).or_insert(stored))
    }

    /// Sleeps `duration` from the first time Kiln sees `key`. Returns at once when the stored
    /// wake time has passed; otherwise the instance is suspended ([`Interrupt::Suspended`])
    /// and replayed after the wake time, its container free for other work meanwhile.
    pub fn sleep(&mut self, key: &str, duration: Duration) -> Result<(), Interrupt> {
        self.sleep_with(key, Wake::After(duration))
    }

    /// Like [`sleep`](Instance::sleep), until `at`.
    pub fn sleep_until(&mut self, key: &str, at: SystemTime) -> Result<(), Interrupt> {
        self.sleep_with(key, Wake::At(at))
    }

    /// Waits for an event signal named `name` (`POST /v1/instances/{id}/signals`), for at
    /// most `timeout` from the first time this wait is reached: `Some(payload)` for the
    /// event, `None` when the timeout passed first. Events sent before the wait count; each
    /// is delivered to one wait, in the order sent. Until one arrives the instance is
    /// suspended ([`Interrupt::Suspended`]) and replayed when it does.
    ///
    /// The wait is stored under key `event:{name}:{n}`, where `n` counts the waits for
    /// `name` in this dispatch from 1 (so the second wait for `approved` is
    /// `event:approved:2`); its deadline is stored under `event:{name}:{n}.deadline`.
    pub fn wait_for_event(&mut self, name: &str, timeout: Duration) -> Result<Option<Value>, Interrupt> {
        let count = self.waits.entry(name.to_owned()).or_insert(0);
        *count += 1;
        let key = format!("event:{name}:{count}");
        if let Some(stored) = self.checkpoints.get(&key) {
            return event_outcome(&key, stored);
        }
        match self.runtime.wait(&self.invocation_id, &key, name, timeout)? {
            DurableReply::Value(value) => {
                event_outcome(&key, self.checkpoints.entry(key.clone()).or_insert(value))
            }
            DurableReply::Suspended { .. } => Err(Interrupt::Suspended),
        }
    }

    fn sleep_with(&mut self, key: &str, wake: Wake) -> Result<(), Interrupt> {
        let stored_wake = self
            .checkpoints
            .get(key)
            .and_then(|value| value["wake_at_ms"].as_u64());
        if stored_wake.is_some_and(|wake_at_ms| wake_at_ms <= unix_ms(SystemTime::now())) {
            return Ok(());
        }
        match self.runtime.sleep(&self.invocation_id, key, wake)? {
            DurableReply::Value(value) => {
                self.checkpoints.insert(key.to_owned(), value);
                Ok(())
            }
            DurableReply::Suspended { .. } => Err(Interrupt::Suspended),
        }
    }
}

/// A stored checkpoint as the step's type.
fn decode<T: DeserializeOwned>(key: &str, stored: &Value) -> Result<T, Interrupt> {
    T::deserialize(stored).map_err(|error| {
        Interrupt::Failed(Failure::new(
            "BadCheckpoint",
            format!("checkpoint `{key}` holds {stored}, which does not fit the step's type: {error}"),
        ))
    })
}

/// A stored wait: `{"event": ..., "payload": p}` is `Some(p)`, `{"timed_out": true}` is `None`.
fn event_outcome(key: &str, stored: &Value) -> Result<Option<Value>, Interrupt> {
    if stored.get("event").is_some() {
        Ok(Some(stored.get("payload").cloned().unwrap_or(Value::Null)))
    } else if stored["timed_out"] == Value::Bool(true) {
        Ok(None)
    } else {
        Err(Interrupt::Failed(Failure::new(
            "BadCheckpoint",
            format!("checkpoint `{key}` holds {stored}, which is not the outcome of a wait"),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_waits_are_events_or_timeouts() {
        let event = json!({"event": "approved", "payload": {"by": "ana"}});
        assert_eq!(event_outcome("k", &event), Ok(Some(json!({"by": "ana"}))));
        assert_eq!(event_outcome("k", &json!({"event": "go"})), Ok(Some(Value::Null)));
        assert_eq!(event_outcome("k", &json!({"timed_out": true})), Ok(None));
        let Err(Interrupt::Failed(failure)) = event_outcome("k", &json!(7)) else {
            panic!("a foreign value was taken for a wait");
        };
        assert_eq!(failure.error_type, "BadCheckpoint");
    }

    #[test]
    fn stored_values_decode_into_the_step_type() {
        assert_eq!(decode::<u32>("n", &json!(7)), Ok(7));
        let Err(Interrupt::Failed(failure)) = decode::<u32>("n", &json!("seven")) else {
            panic!("a string decoded as a number");
        };
        assert!(
            failure.message.contains("checkpoint `n` holds \"seven\""),
            "{failure}"
        );
    }
}
