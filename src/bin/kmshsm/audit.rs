//! `kmshsm audit list|verify|prune`: the token's audit trail (docs/audit.md), read with
//! the user PIN like every other command. `list` prints one line per event (JSON lines
//! with `--json`, in the kms-docs' field style), `verify` exits non-zero naming the first
//! bad event, `prune` removes what the retention lets go and leaves a checkpoint.

use kmshsm::kms::audit::{AuditEvent, Outcome};
use kmshsm::token::{Trail, TrailEntry};
use serde_json::{json, Value};

use crate::client::Client;
use crate::{time, Failure};

/// What `list` keeps.
pub(crate) struct Filter {
    pub key_id: Option<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// A time given as unix seconds or as `YYYY-MM-DDTHH:MM:SSZ` (or `YYYY-MM-DD`).
pub(crate) fn parse_time(text: &str) -> Result<i64, Failure> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    time::parse_iso8601(text).ok_or_else(|| {
        crate::invalid(format!(
            "{text:?} is neither unix seconds nor a time like 2026-01-31T12:00:00Z"
        ))
    })
}

fn entry_json(entry: &TrailEntry) -> Value {
    let mut out = match &entry.event {
        Some(e) => serde_json::to_value(e).unwrap_or(Value::Null),
        None => json!({ "EventName": "Unreadable" }),
    };
    if let Value::Object(map) = &mut out {
        if let Some(Value::Number(t)) = map.get("EventTime") {
            let t = t.as_i64().unwrap_or(0);
            map.insert("EventTime".into(), json!(time::iso8601(t)));
        }
        map.insert("EventId".into(), json!(entry.seq));
        map.insert("Authenticated".into(), json!(entry.authenticated));
    }
    out
}

fn keeps(filter: &Filter, event: Option<&AuditEvent>) -> bool {
    let Some(e) = event else {
        // An event this build cannot read is shown unless a filter needs its fields.
        return filter.key_id.is_none() && filter.since.is_none() && filter.until.is_none();
    };
    filter
        .key_id
        .as_ref()
        .is_none_or(|k| e.key_id.as_ref() == Some(k))
        && filter.since.is_none_or(|t| e.event_time >= t)
        && filter.until.is_none_or(|t| e.event_time <= t)
}

/// `field` with every control character escaped (`\n`, `\u{1b}`...): one event is one
/// line, whatever a field holds. JSON output escapes them itself.
fn shown(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn text_line(entry: &TrailEntry) -> String {
    let Some(e) = &entry.event else {
        return format!("{:>6}  (unreadable event)", entry.seq);
    };
    let outcome = match (&e.outcome, &e.error_code) {
        (Outcome::Success, _) => "Success".to_owned(),
        (Outcome::Refused, code) => format!("Refused {}", shown(code.as_deref().unwrap_or(""))),
    };
    let subject = e
        .key_id
        .clone()
        .or_else(|| e.object_uid.clone())
        .or_else(|| e.role.clone())
        .unwrap_or_default();
    format!(
        "{:>6}  {}  {:<24} {:<40} {}{}",
        entry.seq,
        time::iso8601(e.event_time),
        e.event_name.name(),
        shown(&subject),
        outcome,
        if entry.authenticated {
            ""
        } else {
            "  (not yet authenticated)"
        }
    )
}

/// The events `filter` keeps, one line each.
pub(crate) fn list(client: &Client, filter: &Filter, as_json: bool) -> Result<String, Failure> {
    let trail = client.session.token.audit_trail()?;
    let mut out = String::new();
    for entry in trail
        .entries
        .iter()
        .filter(|e| keeps(filter, e.event.as_ref()))
    {
        let line = if as_json {
            entry_json(entry).to_string()
        } else {
            text_line(entry)
        };
        out.push_str(&line);
        out.push('\n');
    }
    if let Err(b) = &trail.verdict {
        eprintln!(
            "warning: the audit trail does not verify from event {} on ({}); run `kmshsm audit verify`",
            b.first, b.reason
        );
    }
    Ok(out)
}

/// The verdict: a summary when the chain is intact, else a failure naming the first bad
/// event.
pub(crate) fn verify(client: &Client) -> Result<Value, Failure> {
    let Trail { entries, verdict } = client.session.token.audit_trail()?;
    match verdict {
        Ok(v) => Ok(json!({
            "Intact": true,
            "EventCount": entries.len(),
            "FirstEventId": v.first,
            "HeadEventId": v.head,
            "HeadHash": v.head_hash.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "AuthenticatedThrough": v.authenticated_through,
            "UnauthenticatedEvents": v.unauthenticated(),
            "CheckpointEventId": v.checkpoint,
        })),
        Err(b) => Err(Failure {
            code: "AuditTrailBroken",
            message: if b.first == b.last {
                format!("first bad event: {}: {}", b.first, b.reason)
            } else {
                format!(
                    "first bad event: {} (somewhere in events {} to {}): {}",
                    b.first, b.first, b.last, b.reason
                )
            },
        }),
    }
}

/// Prunes by the retention (or `days`).
pub(crate) fn prune(client: &Client, days: Option<u32>) -> Result<Value, Failure> {
    let checkpoint = client.session.token.prune_audit_older_than(days)?;
    Ok(json!({ "CheckpointEventId": checkpoint }))
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn a_field_never_breaks_its_line() {
        assert_eq!(shown("plain-key-id"), "plain-key-id");
        assert_eq!(shown("x\n    99  EnableKey"), "x\\n    99  EnableKey");
        assert_eq!(shown("a\r\u{1b}[2Kb"), "a\\r\\u{1b}[2Kb");
    }
}
