//! Log output of the `agentwire` binary: one JSON object per line that Google Cloud Logging
//! and other JSON pipelines read as structured data (`severity`, `message`, `timestamp`,
//! `target`, then the event's typed fields), or human-readable lines on a terminal.

use std::fmt;

use agentwire_types::json::{write_string, write_u64};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON line with a Cloud Logging `severity`.
///
/// Keys come out sorted and unique, an event's own field winning over the formatter's (a
/// record's `severity`, e.g. NOTICE). The line is written straight into one buffer: a
/// connection logs a record when it opens and when it closes, and building a JSON map per line
/// cost more than the rest of a handshake.
pub(crate) struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let severity = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARNING",
            Level::INFO => "INFO",
            Level::DEBUG | Level::TRACE => "DEBUG",
        };
        let mut fields = Fields(Vec::with_capacity(24));
        fields.push("severity", Json::Str(severity.to_owned()));
        fields.push(
            "timestamp",
            Json::Str(agentwire_events::Timestamp::now().to_string()),
        );
        fields.push("target", Json::Str(meta.target().to_owned()));
        // The event's own fields come after, so they win.
        event.record(&mut fields);
        writer.write_str(&fields.into_line())
    }
}

/// A field value, as JSON.
enum Json {
    Str(String),
    U64(u64),
    I64(i64),
    Bool(bool),
    F64(f64),
}

struct Fields(Vec<(&'static str, Json)>);

impl Fields {
    fn push(&mut self, name: &'static str, value: Json) {
        self.0.push((name, value));
    }

    /// `{"key":value,...}` and a newline: keys sorted, the last value of a repeated key kept.
    fn into_line(mut self) -> String {
        // Stable: among equal keys the later field stays later.
        self.0.sort_by(|a, b| a.0.cmp(b.0));
        let mut line = String::with_capacity(512);
        line.push('{');
        let mut first = true;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if self.0.get(i + 1).is_some_and(|next| next.0 == *name) {
                continue;
            }
            if !first {
                line.push(',');
            }
            first = false;
            write_string(&mut line, name);
            line.push(':');
            match value {
                Json::Str(text) => write_string(&mut line, text),
                Json::U64(n) => write_u64(&mut line, *n),
                Json::I64(n) => {
                    if *n < 0 {
                        line.push('-');
                    }
                    write_u64(&mut line, n.unsigned_abs());
                }
                Json::Bool(b) => line.push_str(if *b { "true" } else { "false" }),
                // serde_json's float format (shortest round-trip; null when not finite).
                Json::F64(f) => line.push_str(&serde_json::Value::from(*f).to_string()),
            }
        }
        line.push_str("}\n");
        line
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field.name(), Json::Str(value.to_owned()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field.name(), Json::U64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field.name(), Json::I64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field.name(), Json::Bool(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field.name(), Json::F64(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field.name(), Json::Str(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_numbers() {
        let mut fields = Fields(Vec::new());
        fields.push("n", Json::I64(i64::MIN));
        assert_eq!(fields.into_line(), format!("{{\"n\":{}}}\n", i64::MIN));
    }

    #[test]
    fn keys_sorted_and_the_last_value_wins() {
        let mut fields = Fields(Vec::new());
        fields.push("severity", Json::Str("INFO".into()));
        fields.push("b", Json::U64(7));
        fields.push("a", Json::Bool(true));
        fields.push("severity", Json::Str("NOTICE".into()));
        fields.push("f", Json::F64(1.0));
        fields.push("i", Json::I64(-3));
        let line = fields.into_line();
        assert_eq!(
            line,
            "{\"a\":true,\"b\":7,\"f\":1.0,\"i\":-3,\"severity\":\"NOTICE\"}\n"
        );
        assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok());
    }
}
