//! Millisecond UTC timestamps and their RFC 3339 text form, without a date-time dependency.

use core::fmt;
use core::str;
use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::TimestampError;

const MS_PER_SECOND: i64 = 1_000;
const MS_PER_DAY: i64 = 86_400_000;
/// `0000-01-01T00:00:00.000Z` in milliseconds since the Unix epoch.
const MIN_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z` in milliseconds since the Unix epoch.
const MAX_MS: i64 = 253_402_300_799_999;
/// Length of the text form, `YYYY-MM-DDTHH:MM:SS.mmmZ`.
const TEXT_LEN: usize = 24;
/// Unix numbers at least this large are read as milliseconds, not seconds (see
/// [`Timestamp::from_unix_number`]).
const MILLIS_THRESHOLD: f64 = 1e11;

/// A point in time with millisecond precision, always in UTC.
///
/// The range is that of RFC 3339: `0000-01-01T00:00:00.000Z` to `9999-12-31T23:59:59.999Z`.
/// It serializes as RFC 3339 text with exactly three fraction digits and a `Z`
/// (`2025-01-02T03:04:05.678Z`), the form every outbound frame uses.
///
/// ```
/// use agentwire_events::Timestamp;
///
/// let t = Timestamp::from_unix_millis(1_735_787_045_678).unwrap();
/// assert_eq!(t.to_string(), "2025-01-02T03:04:05.678Z");
/// assert_eq!("2025-01-02T04:04:05.678+01:00".parse::<Timestamp>(), Ok(t));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest representable time, `0000-01-01T00:00:00.000Z`.
    pub const MIN: Timestamp = Timestamp(MIN_MS);
    /// The latest representable time, `9999-12-31T23:59:59.999Z`.
    pub const MAX: Timestamp = Timestamp(MAX_MS);
    /// The Unix epoch, `1970-01-01T00:00:00.000Z`.
    pub const UNIX_EPOCH: Timestamp = Timestamp(0);

    /// The current time of the system clock, cut to milliseconds.
    ///
    /// A clock before 1970 reads as the epoch; one past year 9999 as [`MAX`](Self::MAX).
    pub fn now() -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(MAX_MS));
        Timestamp(ms.min(MAX_MS))
    }

    /// Milliseconds since the Unix epoch, or `None` outside years 0000 to 9999.
    pub const fn from_unix_millis(ms: i64) -> Option<Timestamp> {
        if ms >= MIN_MS && ms <= MAX_MS {
            Some(Timestamp(ms))
        } else {
            None
        }
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Reads a Unix time number as clients send it: seconds, with any fraction (rounded to the
    /// millisecond).
    ///
    /// A number whose magnitude is at least 10^11 is taken as milliseconds instead (JavaScript's
    /// `Date.now()`): as seconds it would be past the year 5000. `None` for a number outside
    /// the representable range (or not finite).
    ///
    /// ```
    /// use agentwire_events::Timestamp;
    ///
    /// let secs = Timestamp::from_unix_number(1_735_787_045.678).unwrap();
    /// let millis = Timestamp::from_unix_number(1_735_787_045_678.0).unwrap();
    /// assert_eq!(secs, millis);
    /// ```
    pub fn from_unix_number(value: f64) -> Option<Timestamp> {
        if !value.is_finite() {
            return None;
        }
        let ms = if value.abs() >= MILLIS_THRESHOLD {
            value.round()
        } else {
            (value * 1000.0).round()
        };
        if ms < MIN_MS as f64 || ms > MAX_MS as f64 {
            return None;
        }
        // In range, so the conversion is exact.
        Some(Timestamp(ms as i64))
    }

    /// Parses RFC 3339 text: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    ///
    /// `T` may be `t` or a space, `Z` may be `z`; fraction digits past the third are cut.
    /// The offset is required; see [`parse_lenient`](Self::parse_lenient) for text without one.
    ///
    /// # Errors
    ///
    /// [`TimestampError`] when the text is not of that form, names a day that does not exist,
    /// or lies outside years 0000 to 9999 once converted to UTC.
    pub fn parse_rfc3339(text: &str) -> Result<Timestamp, TimestampError> {
        parse(text.as_bytes(), true)
    }

    /// Like [`parse_rfc3339`](Self::parse_rfc3339), but text without an offset (as Python's
    /// `datetime.isoformat()` writes for naive times) is taken as UTC.
    ///
    /// # Errors
    ///
    /// As for [`parse_rfc3339`](Self::parse_rfc3339).
    pub fn parse_lenient(text: &str) -> Result<Timestamp, TimestampError> {
        parse(text.as_bytes(), false)
    }

    /// Writes the RFC 3339 form into a fixed buffer, without allocating.
    ///
    /// The date and time of day are computed once per second and thread: a server stamps
    /// many frames within one second, and only their milliseconds differ.
    fn format(self) -> [u8; TEXT_LEN] {
        thread_local! {
            /// The last second formatted on this thread, and its text.
            static LAST: Cell<(i64, [u8; TEXT_LEN])> = const { Cell::new((i64::MIN, [0; TEXT_LEN])) };
        }
        let second = self.0.div_euclid(1_000);
        let mut out = LAST.with(|last| match last.get() {
            (cached, text) if cached == second => text,
            _ => {
                let text = Timestamp(second * 1_000).format_uncached();
                last.set((second, text));
                text
            }
        });
        put_digits(&mut out[20..23], self.0.rem_euclid(1_000));
        out
    }

    /// [`format`](Self::format) without the per-second cache.
    fn format_uncached(self) -> [u8; TEXT_LEN] {
        let days = self.0.div_euclid(MS_PER_DAY);
        let ms_of_day = self.0.rem_euclid(MS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let hour = ms_of_day / 3_600_000;
        let minute = ms_of_day / 60_000 % 60;
        let second = ms_of_day / 1_000 % 60;
        let milli = ms_of_day % 1_000;

        let mut out = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut out[0..4], year);
        put_digits(&mut out[5..7], i64::from(month));
        put_digits(&mut out[8..10], i64::from(day));
        put_digits(&mut out[11..13], hour);
        put_digits(&mut out[14..16], minute);
        put_digits(&mut out[17..19], second);
        put_digits(&mut out[20..23], milli);
        out
    }

    /// Appends the RFC 3339 text to `out`.
    pub(crate) fn write_to(self, out: &mut String) {
        thread_local! {
            /// The last millisecond written on this thread and its whole text (the events of
            /// one run usually share it): kept as a string, it is appended without checking
            /// its bytes again.
            static LAST: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
        }
        LAST.with_borrow_mut(|(cached, text)| {
            if *cached != self.0 || text.is_empty() {
                text.clear();
                self.with_text(|full| text.push_str(full));
                *cached = self.0;
            }
            out.push_str(text);
        });
    }

    /// Runs `f` with the RFC 3339 text.
    fn with_text<R>(self, f: impl FnOnce(&str) -> R) -> R {
        let buf = self.format();
        // Only ASCII digits and punctuation are written, so this cannot fail.
        f(str::from_utf8(&buf).unwrap_or("1970-01-01T00:00:00.000Z"))
    }
}

/// Writes `value` as zero-padded decimal digits filling `out` (value is in range by
/// construction: year 0..=9999 and smaller fields).
fn put_digits(out: &mut [u8], mut value: i64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Reads exactly `N` ASCII digits at `at`.
fn digits<const N: usize>(text: &[u8], at: usize) -> Result<u32, TimestampError> {
    let slice = text.get(at..at + N).ok_or(TimestampError::Malformed)?;
    slice.iter().try_fold(0u32, |acc, &b| {
        if b.is_ascii_digit() {
            Ok(acc * 10 + u32::from(b - b'0'))
        } else {
            Err(TimestampError::Malformed)
        }
    })
}

fn expect(text: &[u8], at: usize, allowed: &[u8]) -> Result<(), TimestampError> {
    match text.get(at) {
        Some(b) if allowed.contains(b) => Ok(()),
        _ => Err(TimestampError::Malformed),
    }
}

fn parse(text: &[u8], require_offset: bool) -> Result<Timestamp, TimestampError> {
    let year = digits::<4>(text, 0)?;
    expect(text, 4, b"-")?;
    let month = digits::<2>(text, 5)?;
    expect(text, 7, b"-")?;
    let day = digits::<2>(text, 8)?;
    expect(text, 10, b"Tt ")?;
    let hour = digits::<2>(text, 11)?;
    expect(text, 13, b":")?;
    let minute = digits::<2>(text, 14)?;
    expect(text, 16, b":")?;
    let second = digits::<2>(text, 17)?;
    let year = i64::from(year);
    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        // 60 is a leap second; it counts as the first second of the next minute.
        || second > 60
    {
        return Err(TimestampError::OutOfRange);
    }

    let mut at = 19;
    let mut milli = 0i64;
    if text.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while let Some(b) = text.get(at).filter(|b| b.is_ascii_digit()) {
            if at - start < 3 {
                milli = milli * 10 + i64::from(b - b'0');
            }
            at += 1;
        }
        match at - start {
            0 => return Err(TimestampError::Malformed),
            1 => milli *= 100,
            2 => milli *= 10,
            _ => {}
        }
    }

    let offset_minutes: i64 = match text.get(at) {
        Some(b'Z' | b'z') => {
            at += 1;
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            let oh = digits::<2>(text, at + 1)?;
            expect(text, at + 3, b":")?;
            let om = digits::<2>(text, at + 4)?;
            if oh > 23 || om > 59 {
                return Err(TimestampError::OutOfRange);
            }
            at += 6;
            let minutes = i64::from(oh * 60 + om);
            if sign == b'-' { -minutes } else { minutes }
        }
        None if !require_offset => 0,
        _ => return Err(TimestampError::Malformed),
    };
    if at != text.len() {
        return Err(TimestampError::Malformed);
    }

    let seconds_of_day =
        i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second) - offset_minutes * 60;
    let ms =
        days_from_civil(year, month, day) * MS_PER_DAY + seconds_of_day * MS_PER_SECOND + milli;
    Timestamp::from_unix_millis(ms).ok_or(TimestampError::OutOfRange)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_text(|text| f.write_str(text))
    }
}

impl str::FromStr for Timestamp {
    type Err = TimestampError;

    /// Same as [`Timestamp::parse_rfc3339`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timestamp::parse_rfc3339(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.with_text(|text| serializer.serialize_str(text))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// Reads RFC 3339 text (offset required), as outbound frames carry it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;

        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp such as \"2025-01-02T03:04:05.678Z\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(TimestampVisitor)
    }
}

impl schemars::JsonSchema for Timestamp {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Timestamp".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "RFC 3339 time in UTC with millisecond precision, e.g. \
                            \"2025-01-02T03:04:05.678Z\".",
            "type": "string",
            "format": "date-time",
            "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}\\.\\d{3}Z$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_per_second_cache_changes_nothing() {
        // Instants all over the range, each followed by neighbours in the same second and
        // across second boundaries, so the cache is hit, missed and replaced.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let span = (MAX_MS - MIN_MS) as u64;
            let base = MIN_MS + (x % span) as i64;
            for delta in [0, 1, 999, 1_000, -1, -1_000, 37] {
                let Some(t) = Timestamp::from_unix_millis(base.saturating_add(delta)) else {
                    continue;
                };
                assert_eq!(t.format(), t.format_uncached(), "{}", t.0);
                // Twice: the second write comes from the per-millisecond cache.
                for _ in 0..2 {
                    let mut written = String::from("x");
                    t.write_to(&mut written);
                    assert_eq!(written.as_bytes()[1..], t.format_uncached(), "{}", t.0);
                }
            }
        }
    }

    #[test]
    fn formats_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_735_787_045_678, "2025-01-02T03:04:05.678Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (MIN_MS, "0000-01-01T00:00:00.000Z"),
            (MAX_MS, "9999-12-31T23:59:59.999Z"),
        ];
        for (ms, text) in cases {
            let t = Timestamp::from_unix_millis(ms).unwrap();
            assert_eq!(t.to_string(), text);
            assert_eq!(Timestamp::parse_rfc3339(text), Ok(t));
        }
    }

    #[test]
    fn civil_round_trip_over_many_days() {
        for days in (MIN_MS / MS_PER_DAY..=MAX_MS / MS_PER_DAY).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert!(d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parses_offsets_fractions_and_lenient_forms() {
        let base = Timestamp::parse_rfc3339("2025-01-02T03:04:05.678Z").unwrap();
        for text in [
            "2025-01-02T04:04:05.678+01:00",
            "2025-01-01T22:34:05.678-04:30",
            "2025-01-02t03:04:05.678z",
            "2025-01-02 03:04:05.678123+00:00",
            "2025-01-02T03:04:05.6789Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text), Ok(base), "{text}");
        }
        assert_eq!(
            Timestamp::parse_rfc3339("2025-01-02T03:04:05.6Z").unwrap(),
            Timestamp(base.0 - 78)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2016-12-31T23:59:60Z")
                .unwrap()
                .to_string(),
            "2017-01-01T00:00:00.000Z"
        );
        assert!(Timestamp::parse_rfc3339("2025-01-02T03:04:05.678").is_err());
        assert_eq!(
            Timestamp::parse_lenient("2025-01-02T03:04:05.678"),
            Ok(base)
        );
    }

    #[test]
    fn rejects_bad_text() {
        for text in [
            "",
            "2025",
            "2025-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00Zjunk",
            "2025-01-01T00:00:00+0100",
            "0000-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "２０２５-01-01T00:00:00Z",
            "+2025-01-01T00:00:00Z",
        ] {
            assert!(Timestamp::parse_lenient(text).is_err(), "{text}");
        }
    }

    #[test]
    fn unix_numbers_in_seconds_or_millis() {
        let t = Timestamp::from_unix_millis(1_735_787_045_678).unwrap();
        assert_eq!(Timestamp::from_unix_number(1_735_787_045.678), Some(t));
        assert_eq!(Timestamp::from_unix_number(1_735_787_045_678.0), Some(t));
        assert_eq!(
            Timestamp::from_unix_number(0.0),
            Some(Timestamp::UNIX_EPOCH)
        );
        assert_eq!(Timestamp::from_unix_number(f64::NAN), None);
        assert_eq!(Timestamp::from_unix_number(1e300), None);
        assert_eq!(Timestamp::from_unix_number(-1e300), None);
    }
}
