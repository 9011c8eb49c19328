//! [`ResumeRequest`]: what a reconnecting client asks for, read from the handshake's query.

use crate::error::{ResumeParameter, ResumeQueryError};

/// The longest `epoch` accepted, in bytes (the server's epochs are about 20).
pub const MAX_EPOCH_BYTES: usize = 64;
/// The most digits `since` may have (`u64::MAX` has 20).
pub const MAX_SINCE_DIGITS: usize = 20;

/// A reconnecting client's request: resume the stream of `epoch` after `since`, the last
/// `seq` it processed (`GET /ws?epoch=<epoch>&since=<seq>`).
///
/// The epoch is checked on construction: non-empty, at most [`MAX_EPOCH_BYTES`] bytes of
/// `A-Z a-z 0-9 _ -`.
///
/// ```
/// use agentwire_stream::{ResumeParameter, ResumeRequest};
///
/// let request = ResumeRequest::from_query(Some("epoch=ep_3f9a_0&since=16&v=2")).unwrap().unwrap();
/// assert_eq!((request.epoch(), request.since()), ("ep_3f9a_0", 16));
///
/// // No resume asked for: not an error.
/// assert_eq!(ResumeRequest::from_query(Some("v=2")), Ok(None));
/// assert_eq!(ResumeRequest::from_query(None), Ok(None));
///
/// // Malformed: an error naming the parameter, for an HTTP 400 before the upgrade.
/// let err = ResumeRequest::from_query(Some("epoch=ep_3f9a_0&since=-1")).unwrap_err();
/// assert_eq!((err.code(), err.parameter()), ("invalid_resume_query", ResumeParameter::Since));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResumeRequest {
    epoch: String,
    since: u64,
}

impl ResumeRequest {
    /// A request to resume `epoch` after `since`.
    ///
    /// # Errors
    ///
    /// [`ResumeQueryError`] for `epoch` when it is empty, too long or has a character outside
    /// `A-Z a-z 0-9 _ -`.
    pub fn new(epoch: impl Into<String>, since: u64) -> Result<Self, ResumeQueryError> {
        let epoch = epoch.into();
        check_epoch(epoch.as_bytes())?;
        Ok(ResumeRequest { epoch, since })
    }

    /// The epoch the client last saw.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The last `seq` the client processed in that epoch.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// Reads `epoch` and `since` from a URL query (the part after `?`, without it).
    ///
    /// Both or neither: `Ok(None)` when neither is there (a connection that does not resume;
    /// no query at all is the same), an error naming the missing one when only one is. Other
    /// parameters are ignored, however they are formed. Names and values may be
    /// percent-encoded; `since` is a decimal integer of at most [`MAX_SINCE_DIGITS`] digits with
    /// no sign (leading zeros allowed), `epoch` as in [`new`](Self::new). A parameter given
    /// twice is an error (which one was meant is unknown).
    ///
    /// Never panics, and allocates at most one small string, whatever the input.
    ///
    /// # Errors
    ///
    /// [`ResumeQueryError`], with the parameter at fault; a server answers HTTP 400.
    pub fn from_query(query: Option<&str>) -> Result<Option<Self>, ResumeQueryError> {
        let Some(query) = query else {
            return Ok(None);
        };
        let mut epoch: Option<&str> = None;
        let mut since: Option<&str> = None;
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(parameter) = parameter_named(name) else {
                continue;
            };
            let slot = match parameter {
                ResumeParameter::Epoch => &mut epoch,
                ResumeParameter::Since => &mut since,
            };
            if slot.replace(value).is_some() {
                return Err(ResumeQueryError::Repeated { parameter });
            }
        }
        let (epoch, since) = match (epoch, since) {
            (None, None) => return Ok(None),
            (Some(epoch), Some(since)) => (epoch, since),
            (Some(_), None) => {
                return Err(ResumeQueryError::Missing {
                    parameter: ResumeParameter::Since,
                    given: ResumeParameter::Epoch,
                });
            }
            (None, Some(_)) => {
                return Err(ResumeQueryError::Missing {
                    parameter: ResumeParameter::Epoch,
                    given: ResumeParameter::Since,
                });
            }
        };
        let mut buffer = [0u8; MAX_EPOCH_BYTES];
        let epoch = decode(epoch, ResumeParameter::Epoch, &mut buffer)?;
        check_epoch(epoch)?;
        // `check_epoch` allows ASCII only.
        let epoch = String::from_utf8_lossy(epoch).into_owned();
        let mut buffer = [0u8; MAX_SINCE_DIGITS];
        let since = parse_since(decode(since, ResumeParameter::Since, &mut buffer)?)?;
        Ok(Some(ResumeRequest { epoch, since }))
    }
}

/// Which of our parameters `name` is, if any: compared as is, then percent-decoded when it
/// is short enough to be an encoding of one of them.
fn parameter_named(name: &str) -> Option<ResumeParameter> {
    let known = |name: &[u8]| match name {
        b"epoch" => Some(ResumeParameter::Epoch),
        b"since" => Some(ResumeParameter::Since),
        _ => None,
    };
    if let Some(parameter) = known(name.as_bytes()) {
        return Some(parameter);
    }
    // "epoch" and "since" have five characters, each at most three once encoded.
    if !name.contains('%') || name.len() > 15 {
        return None;
    }
    let mut buffer = [0u8; 5];
    let decoded = percent_decode(name.as_bytes(), &mut buffer)?;
    known(decoded)
}

/// Percent-decodes `value` into `buffer`; the error names `parameter` when it has a bad escape
/// or decodes to more than `buffer` holds.
fn decode<'b>(
    value: &str,
    parameter: ResumeParameter,
    buffer: &'b mut [u8],
) -> Result<&'b [u8], ResumeQueryError> {
    let max = buffer.len();
    if value.is_empty() {
        return Err(ResumeQueryError::Empty { parameter });
    }
    // Each decoded byte takes at most three characters; longer cannot fit.
    if value.len() > 3 * max {
        return Err(ResumeQueryError::TooLong { parameter, max });
    }
    match percent_decode_checked(value.as_bytes(), buffer) {
        Decoded::Ok(0) => Err(ResumeQueryError::Empty { parameter }),
        Decoded::Ok(len) => Ok(&buffer[..len]),
        Decoded::TooLong => Err(ResumeQueryError::TooLong { parameter, max }),
        Decoded::BadEscape => Err(ResumeQueryError::InvalidEscape { parameter }),
    }
}

enum Decoded {
    Ok(usize),
    TooLong,
    BadEscape,
}

/// Percent-decodes `input` into `out`: `%XX` is the byte `XX`, anything else stands for
/// itself (`+` too: neither parameter allows a space, so `+` fails their check either way).
fn percent_decode_checked(input: &[u8], out: &mut [u8]) -> Decoded {
    let mut len = 0;
    let mut i = 0;
    while i < input.len() {
        let byte = if input[i] == b'%' {
            let (Some(high), Some(low)) = (
                input.get(i + 1).and_then(|&b| hex(b)),
                input.get(i + 2).and_then(|&b| hex(b)),
            ) else {
                return Decoded::BadEscape;
            };
            i += 3;
            high << 4 | low
        } else {
            i += 1;
            input[i - 1]
        };
        let Some(slot) = out.get_mut(len) else {
            return Decoded::TooLong;
        };
        *slot = byte;
        len += 1;
    }
    Decoded::Ok(len)
}

/// [`percent_decode_checked`] for names: `None` on any problem.
fn percent_decode<'b>(input: &[u8], out: &'b mut [u8]) -> Option<&'b [u8]> {
    match percent_decode_checked(input, out) {
        Decoded::Ok(len) => Some(&out[..len]),
        Decoded::TooLong | Decoded::BadEscape => None,
    }
}

fn hex(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn check_epoch(epoch: &[u8]) -> Result<(), ResumeQueryError> {
    let parameter = ResumeParameter::Epoch;
    if epoch.is_empty() {
        return Err(ResumeQueryError::Empty { parameter });
    }
    if epoch.len() > MAX_EPOCH_BYTES {
        return Err(ResumeQueryError::TooLong {
            parameter,
            max: MAX_EPOCH_BYTES,
        });
    }
    if !epoch
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ResumeQueryError::InvalidCharacter { parameter });
    }
    Ok(())
}

fn parse_since(digits: &[u8]) -> Result<u64, ResumeQueryError> {
    let parameter = ResumeParameter::Since;
    if !digits.iter().all(u8::is_ascii_digit) {
        return Err(ResumeQueryError::NotANumber { parameter });
    }
    let mut value: u64 = 0;
    for &digit in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(digit - b'0')))
            .ok_or(ResumeQueryError::OutOfRange { parameter })?;
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<Option<(String, u64)>, ResumeQueryError> {
        ResumeRequest::from_query(Some(query)).map(|r| r.map(|r| (r.epoch().to_owned(), r.since())))
    }

    fn ok(epoch: &str, since: u64) -> Result<Option<(String, u64)>, ResumeQueryError> {
        Ok(Some((epoch.to_owned(), since)))
    }

    #[test]
    fn reads_both_in_any_order_among_other_parameters() {
        assert_eq!(parse("epoch=ep_1&since=16"), ok("ep_1", 16));
        assert_eq!(parse("since=16&epoch=ep_1"), ok("ep_1", 16));
        assert_eq!(parse("a=1&since=0&b&epoch=E-x_9&c=%zz&"), ok("E-x_9", 0));
        assert_eq!(parse("token=x.y.z&epoch=ep&since=007"), ok("ep", 7));
        assert_eq!(
            parse("epoch=ep&since=18446744073709551615"),
            ok("ep", u64::MAX)
        );
    }

    #[test]
    fn neither_is_no_resume() {
        for query in [
            "",
            "&",
            "v=1",
            "epochs=1&sinc=2",
            "Epoch=e&SINCE=1",
            "%zz=1",
            "=&==",
        ] {
            assert_eq!(parse(query), Ok(None), "{query:?}");
        }
        assert_eq!(ResumeRequest::from_query(None), Ok(None));
    }

    #[test]
    fn one_without_the_other_names_the_missing_one() {
        assert_eq!(
            parse("epoch=ep"),
            Err(ResumeQueryError::Missing {
                parameter: ResumeParameter::Since,
                given: ResumeParameter::Epoch
            })
        );
        assert_eq!(
            parse("since=3"),
            Err(ResumeQueryError::Missing {
                parameter: ResumeParameter::Epoch,
                given: ResumeParameter::Since
            })
        );
        // Missing wins over malformed: the client forgot a parameter.
        assert_eq!(
            parse("since=-3").unwrap_err().parameter(),
            ResumeParameter::Epoch
        );
    }

    #[test]
    fn percent_encoding_is_decoded() {
        assert_eq!(parse("epoch=ep%5F1&since=%31%36"), ok("ep_1", 16));
        assert_eq!(parse("%65poch=ep&%73ince=1"), ok("ep", 1));
        assert_eq!(parse("%65%70%6F%63%68=ep&since=1"), ok("ep", 1));
        // An epoch of 64 characters, each encoded.
        let encoded = "%41".repeat(64);
        assert_eq!(
            parse(&format!("epoch={encoded}&since=1")),
            ok(&"A".repeat(64), 1)
        );
    }

    #[test]
    fn malformed_since_is_an_error_naming_since() {
        let since = |value: &str| parse(&format!("epoch=ep&since={value}")).unwrap_err();
        use ResumeQueryError as E;
        let p = ResumeParameter::Since;
        for value in [
            "-1", "+1", "1.0", "1e3", "abc", " 1", "0x10", "1_000", "%2D1", "+",
        ] {
            assert_eq!(since(value), E::NotANumber { parameter: p }, "{value:?}");
        }
        assert_eq!(since(""), E::Empty { parameter: p });
        assert_eq!(
            parse("epoch=ep&since").unwrap_err(),
            E::Empty { parameter: p }
        );
        assert_eq!(
            since("18446744073709551616"),
            E::OutOfRange { parameter: p }
        );
        assert_eq!(
            since("99999999999999999999"),
            E::OutOfRange { parameter: p }
        );
        for value in ["000000000000000000001", &"9".repeat(10_000)] {
            assert_eq!(
                since(value),
                E::TooLong {
                    parameter: p,
                    max: 20
                }
            );
        }
        for value in ["%", "%1", "%G0", "1%"] {
            assert_eq!(since(value), E::InvalidEscape { parameter: p }, "{value:?}");
        }
    }

    #[test]
    fn malformed_epoch_is_an_error_naming_epoch() {
        let epoch = |value: &str| parse(&format!("epoch={value}&since=1")).unwrap_err();
        use ResumeQueryError as E;
        let p = ResumeParameter::Epoch;
        assert_eq!(epoch(""), E::Empty { parameter: p });
        assert_eq!(
            epoch(&"a".repeat(65)),
            E::TooLong {
                parameter: p,
                max: 64
            }
        );
        assert_eq!(
            epoch(&"a".repeat(100_000)),
            E::TooLong {
                parameter: p,
                max: 64
            }
        );
        for value in ["a.b", "a b", "a+b", "%20", "é", "a%00", "a/b", "a%C3%A9"] {
            assert_eq!(
                epoch(value),
                E::InvalidCharacter { parameter: p },
                "{value:?}"
            );
        }
        assert_eq!(epoch("a%2"), E::InvalidEscape { parameter: p });
    }

    #[test]
    fn a_repeated_parameter_is_an_error() {
        assert_eq!(
            parse("epoch=a&since=1&epoch=a"),
            Err(ResumeQueryError::Repeated {
                parameter: ResumeParameter::Epoch
            })
        );
        assert_eq!(
            parse("since=1&%73ince=1&epoch=a"),
            Err(ResumeQueryError::Repeated {
                parameter: ResumeParameter::Since
            })
        );
    }

    #[test]
    fn every_error_has_the_code_and_a_message_without_the_value() {
        let secret = "s3cr3tvalue";
        for query in [
            format!("epoch={secret}.&since=1"),
            format!("epoch=ep&since={secret}"),
            format!("epoch={}&since=1", secret.repeat(10)),
        ] {
            let err = parse(&query).unwrap_err();
            assert_eq!(err.code(), "invalid_resume_query");
            assert_eq!(err.http_status(), 400);
            let message = err.to_string();
            assert!(message.contains(err.parameter().as_str()), "{message}");
            assert!(!message.contains(secret), "{message}");
        }
    }

    #[test]
    fn new_checks_the_epoch() {
        assert_eq!(ResumeRequest::new("ep_1", 3).unwrap().since(), 3);
        assert_eq!(
            ResumeRequest::new("", 3).unwrap_err(),
            ResumeQueryError::Empty {
                parameter: ResumeParameter::Epoch
            }
        );
        assert!(ResumeRequest::new("ep 1", 3).is_err());
    }
}
