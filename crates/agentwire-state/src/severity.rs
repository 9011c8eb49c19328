//! Log severities, as Google Cloud Logging names them.

use core::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The severity of a log record, with Google Cloud Logging's `LogSeverity` names.
///
/// Serialized upper-case (`"INFO"`, `"WARNING"`), which is what Cloud Logging reads from a
/// structured payload's `severity` field and what most JSON log pipelines map to their levels.
/// Read in any ASCII case. Ordered from least to most severe.
///
/// [`tracing_level`](Self::tracing_level) maps it onto tracing's five levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// No severity level.
    Default,
    /// Debug or trace information.
    Debug,
    /// Routine information.
    Info,
    /// Normal but significant events.
    Notice,
    /// Events that might cause problems.
    Warning,
    /// Events that are likely to cause problems.
    Error,
    /// Events that cause more severe problems or outages.
    Critical,
    /// A person must take an action immediately.
    Alert,
    /// One or more systems are unusable.
    Emergency,
}

impl Severity {
    /// Every severity, from least to most severe.
    pub const ALL: &'static [Severity] = &[
        Severity::Default,
        Severity::Debug,
        Severity::Info,
        Severity::Notice,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
        Severity::Alert,
        Severity::Emergency,
    ];

    /// The Cloud Logging name, e.g. `"WARNING"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Default => "DEFAULT",
            Severity::Debug => "DEBUG",
            Severity::Info => "INFO",
            Severity::Notice => "NOTICE",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
            Severity::Critical => "CRITICAL",
            Severity::Alert => "ALERT",
            Severity::Emergency => "EMERGENCY",
        }
    }

    /// The tracing level an event of this severity is emitted at: `DEFAULT` is `TRACE`,
    /// `DEBUG` is `DEBUG`, `INFO` and `NOTICE` are `INFO`, `WARNING` is `WARN`, and `ERROR` and
    /// above are `ERROR`.
    pub const fn tracing_level(self) -> tracing::Level {
        match self {
            Severity::Default => tracing::Level::TRACE,
            Severity::Debug => tracing::Level::DEBUG,
            Severity::Info | Severity::Notice => tracing::Level::INFO,
            Severity::Warning => tracing::Level::WARN,
            Severity::Error | Severity::Critical | Severity::Alert | Severity::Emergency => {
                tracing::Level::ERROR
            }
        }
    }

    /// Reads a name in any ASCII case; `None` when unknown.
    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL
            .iter()
            .copied()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Severity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeverityVisitor;

        impl Visitor<'_> for SeverityVisitor {
            type Value = Severity;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Cloud Logging severity name such as INFO or WARNING")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Severity, E> {
                Severity::from_name(v).ok_or_else(|| {
                    E::invalid_value(de::Unexpected::Other("an unknown severity name"), &self)
                })
            }
        }

        deserializer.deserialize_str(SeverityVisitor)
    }
}
