//! `log`: where and how the broker logs.

use serde::Deserialize;

use crate::de::{self, string_enum};

string_enum! {
    /// A log level, EMQX's (syslog's) names from most to least verbose. `tracing` has only five
    /// levels, so `notice` reads as INFO, and `critical`, `alert` and `emergency` as ERROR.
    pub enum LogLevel {
        /// `debug`.
        Debug = "debug",
        /// `info`.
        Info = "info",
        /// `notice`.
        Notice = "notice",
        /// `warning`.
        Warning = "warning",
        /// `error`.
        Error = "error",
        /// `critical`.
        Critical = "critical",
        /// `alert`.
        Alert = "alert",
        /// `emergency`.
        Emergency = "emergency",
    }
}

string_enum! {
    /// How a log line is written.
    pub enum LogFormatter {
        /// `text`: human-readable lines.
        Text = "text",
        /// `json`: one JSON object per line.
        Json = "json",
    }
}

/// `log`: logging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "an object with the log settings")]
pub struct LogConfig {
    /// `console`: the log written to standard output.
    pub console: ConsoleLog,
}

/// `log.console`: the log written to standard output.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object with the console log settings"
)]
pub struct ConsoleLog {
    /// `enable`: write the log to standard output. Default `true`.
    #[serde(deserialize_with = "de::boolean")]
    pub enable: bool,
    /// `level`: the least severe level written. Default `warning`.
    pub level: LogLevel,
    /// `formatter`: `text` or `json`. Default `text`.
    pub formatter: LogFormatter,
}

impl Default for ConsoleLog {
    fn default() -> Self {
        Self {
            enable: true,
            level: LogLevel::Warning,
            formatter: LogFormatter::Text,
        }
    }
}
