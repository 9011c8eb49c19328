//! The errors of this crate, each with a stable machine code.

use core::fmt;

/// A [`WindowConfig`](crate::WindowConfig) setting out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A setting is outside the range it allows.
    #[error("invalid replay window setting {setting}: expected {expected}")]
    OutOfRange {
        /// The setting's name.
        setting: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

impl ConfigError {
    /// The stable machine code: `invalid_window_config`.
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::OutOfRange { .. } => "invalid_window_config",
        }
    }
}

/// One of the two query parameters of a resume request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ResumeParameter {
    /// `epoch`: the stream epoch the client last saw.
    Epoch,
    /// `since`: the last `seq` the client processed.
    Since,
}

impl ResumeParameter {
    /// The parameter's name in the query: `epoch` or `since`.
    pub fn as_str(self) -> &'static str {
        match self {
            ResumeParameter::Epoch => "epoch",
            ResumeParameter::Since => "since",
        }
    }
}

impl fmt::Display for ResumeParameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the `epoch`/`since` query of a reconnecting client was refused.
///
/// A server answers it with HTTP 400 before the upgrade: [`code`](Self::code) is the stable
/// machine code, [`parameter`](Self::parameter) names the parameter at fault, and the
/// `Display` text says what was wrong without repeating the value (a query may carry anything,
/// a token included, and the message may be logged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResumeQueryError {
    /// One of `epoch` and `since` was given without the other.
    #[error(
        "query parameter `{parameter}` is missing: `{given}` needs it (give both `epoch` and `since`, or neither)"
    )]
    Missing {
        /// The parameter that is missing.
        parameter: ResumeParameter,
        /// The parameter that was given.
        given: ResumeParameter,
    },
    /// The parameter appears more than once.
    #[error("query parameter `{parameter}` is given more than once")]
    Repeated {
        /// The repeated parameter.
        parameter: ResumeParameter,
    },
    /// The parameter has no value.
    #[error("query parameter `{parameter}` is empty")]
    Empty {
        /// The empty parameter.
        parameter: ResumeParameter,
    },
    /// The value is longer than the parameter allows.
    #[error("query parameter `{parameter}` is longer than {max} characters")]
    TooLong {
        /// The parameter.
        parameter: ResumeParameter,
        /// The longest value it allows.
        max: usize,
    },
    /// `since` is not a decimal number (a sign, a fraction, letters...).
    #[error(
        "query parameter `{parameter}` must be the last seq processed: a decimal integer from 0 to 18446744073709551615, without sign"
    )]
    NotANumber {
        /// The parameter ([`ResumeParameter::Since`]).
        parameter: ResumeParameter,
    },
    /// `since` is a decimal number larger than any `seq`.
    #[error("query parameter `{parameter}` is larger than the largest seq, 18446744073709551615")]
    OutOfRange {
        /// The parameter ([`ResumeParameter::Since`]).
        parameter: ResumeParameter,
    },
    /// `epoch` has a character outside `A-Z a-z 0-9 _ -`.
    #[error("query parameter `{parameter}` may only contain ASCII letters, digits, `_` and `-`")]
    InvalidCharacter {
        /// The parameter ([`ResumeParameter::Epoch`]).
        parameter: ResumeParameter,
    },
    /// The value has a `%` not followed by two hexadecimal digits.
    #[error("query parameter `{parameter}` has an invalid percent-escape")]
    InvalidEscape {
        /// The parameter.
        parameter: ResumeParameter,
    },
}

impl ResumeQueryError {
    /// The stable machine code: `invalid_resume_query`.
    pub fn code(&self) -> &'static str {
        "invalid_resume_query"
    }

    /// The parameter at fault (for a missing one, the one that is missing).
    pub fn parameter(&self) -> ResumeParameter {
        match *self {
            ResumeQueryError::Missing { parameter, .. }
            | ResumeQueryError::Repeated { parameter }
            | ResumeQueryError::Empty { parameter }
            | ResumeQueryError::TooLong { parameter, .. }
            | ResumeQueryError::NotANumber { parameter }
            | ResumeQueryError::OutOfRange { parameter }
            | ResumeQueryError::InvalidCharacter { parameter }
            | ResumeQueryError::InvalidEscape { parameter } => parameter,
        }
    }

    /// The HTTP status to answer with: 400.
    pub fn http_status(&self) -> u16 {
        400
    }
}
