//! What a live-events subscriber asks for: which of its tenant's events (`function`,
//! `instance`, `types` query parameters), and where to resume (an event id).

use thiserror::Error;

use crate::hub::LiveEvent;

/// What a subscriber is told when the events after its id are no longer kept.
pub const GAP_REASON: &str = "events after the given id are no longer kept";

/// The event types a subscriber may pick.
const TYPES: [&str; 2] = ["invocation", "instance"];

/// An event's id, `<epoch>-<seq>`: the life of the kilnd that sent it and its place in
/// that life's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId {
    pub epoch: u64,
    pub seq: u64,
}

impl EventId {
    pub fn of(epoch: u64, event: &LiveEvent) -> String {
        format!("{epoch}-{}", event.seq)
    }

    /// Reads an id a client sends back (`Last-Event-ID`, `after=`).
    pub fn parse(text: &str) -> Result<EventId, FilterError> {
        text.trim()
            .split_once('-')
            .and_then(|(epoch, seq)| {
                Some(EventId {
                    epoch: epoch.parse().ok()?,
                    seq: seq.parse().ok()?,
                })
            })
            .ok_or_else(|| FilterError::InvalidEventId(text.to_owned()))
    }
}

/// Why a subscriber's filter or resume id was refused; each has a stable code.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FilterError {
    #[error("unknown parameter `{0}`; filter with function, instance, types (and resume with after)")]
    UnknownParameter(String),
    #[error("unknown event type `{0}`; the types are invocation, instance")]
    UnknownType(String),
    #[error("`{0}` is not an event id; send back the id of the last event received")]
    InvalidEventId(String),
    #[error(
        "tokens are never taken from the query string (access logs keep it): send `Authorization: Bearer`, or the `kiln.token.<token>` WebSocket subprotocol"
    )]
    TokenInQuery,
    #[error("`types` needs at least one of invocation, instance")]
    NoTypes,
}

impl FilterError {
    pub fn code(&self) -> &'static str {
        match self {
            FilterError::UnknownParameter(_) | FilterError::UnknownType(_) | FilterError::NoTypes => {
                "invalid_filter"
            }
            FilterError::TokenInQuery => "token_in_query",
            FilterError::InvalidEventId(_) => "invalid_event_id",
        }
    }
}

/// The tenant's events a subscriber wants.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub function: Option<String>,
    pub instance: Option<String>,
    /// `None`: every type.
    pub types: Option<Vec<&'static str>>,
    /// `after=`: the id to resume after.
    pub after: Option<EventId>,
}

impl EventFilter {
    /// Reads `function`, `instance`, `types` (comma-separated) and `after` from a query
    /// string; anything else is refused.
    pub fn from_query(query: Option<&str>) -> Result<EventFilter, FilterError> {
        let mut filter = EventFilter::default();
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "function" => filter.function = Some(value.into_owned()),
                "instance" => filter.instance = Some(value.into_owned()),
                "after" => filter.after = Some(EventId::parse(&value)?),
                "types" => {
                    let mut types = Vec::new();
                    for wanted in value
                        .split(',')
                        .map(str::trim)
                        .filter(|wanted| !wanted.is_empty())
                    {
                        let known = TYPES
                            .iter()
                            .find(|known| **known == wanted)
                            .ok_or_else(|| FilterError::UnknownType(wanted.to_owned()))?;
                        types.push(*known);
                    }
                    if types.is_empty() {
                        return Err(FilterError::NoTypes);
                    }
                    filter.types = Some(types);
                }
                "token" | "access_token" | "jwt" => return Err(FilterError::TokenInQuery),
                other => return Err(FilterError::UnknownParameter(other.to_owned())),
            }
        }
        Ok(filter)
    }

    /// Resumes after `last_event_id` (the `Last-Event-ID` header's bytes) when one is sent;
    /// it takes the place of `after=`.
    pub fn resuming_from(mut self, last_event_id: Option<&[u8]>) -> Result<EventFilter, FilterError> {
        if let Some(last) = last_event_id {
            self.after = Some(EventId::parse(&String::from_utf8_lossy(last))?);
        }
        Ok(self)
    }

    /// Whether `event` is for `tenant` and passes the filter.
    pub fn admits(&self, tenant: &str, event: &LiveEvent) -> bool {
        event.tenant == tenant
            && self
                .function
                .as_deref()
                .is_none_or(|function| event.function == function)
            && self
                .instance
                .as_deref()
                .is_none_or(|instance| event.instance.as_deref() == Some(instance))
            && self
                .types
                .as_ref()
                .is_none_or(|types| types.contains(&event.name))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(tenant: &str, name: &'static str, function: &str, instance: Option<&str>) -> LiveEvent {
        LiveEvent {
            seq: 7,
            tenant: tenant.into(),
            name,
            function: function.into(),
            instance: instance.map(str::to_owned),
            data: json!({}),
        }
    }

    #[test]
    fn filters_admit_only_their_tenants_matching_events() {
        let all = EventFilter::from_query(None).unwrap();
        let invocation = event("acme", "invocation", "hello", None);
        let instance = event("acme", "instance", "flow", Some("i-1"));
        assert!(all.admits("acme", &invocation) && all.admits("acme", &instance));
        assert!(!all.admits("other", &invocation), "another tenant's event");
        let by_function = EventFilter::from_query(Some("function=flow")).unwrap();
        assert!(!by_function.admits("acme", &invocation) && by_function.admits("acme", &instance));
        let by_instance = EventFilter::from_query(Some("instance=i-2")).unwrap();
        assert!(!by_instance.admits("acme", &instance));
        let by_type = EventFilter::from_query(Some("types=invocation")).unwrap();
        assert!(by_type.admits("acme", &invocation) && !by_type.admits("acme", &instance));
        let both = EventFilter::from_query(Some("types=instance,%20invocation")).unwrap();
        assert_eq!(both.types, Some(vec!["instance", "invocation"]));
    }

    #[test]
    fn bad_filters_and_ids_say_what_is_wrong() {
        for (query, code) in [
            ("types=logs", "invalid_filter"),
            ("token=abc", "token_in_query"),
            ("colour=red", "invalid_filter"),
            ("types=", "invalid_filter"),
            ("after=7", "invalid_event_id"),
            ("after=a-1", "invalid_event_id"),
        ] {
            assert_eq!(
                EventFilter::from_query(Some(query)).unwrap_err().code(),
                code,
                "{query}"
            );
        }
        let id = EventId::parse("1700000000000-42").unwrap();
        assert_eq!(
            id,
            EventId {
                epoch: 1_700_000_000_000,
                seq: 42
            }
        );
        assert_eq!(
            EventId::of(id.epoch, &event("a", "invocation", "f", None)),
            "1700000000000-7"
        );
    }
}
