//! UTC timestamps in RFC 3339, without a date-time dependency.
//!
//! Stored and printed as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (fixed width, so text
//! order is time order); parsed from any RFC 3339 date-time, with or without
//! fraction, with `Z` or a numeric offset.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

/// A duration in seconds, in the largest unit that reads well ("3 years",
/// "2 days", "5 hours", "90 s").
pub(crate) fn duration_words(seconds: u64) -> String {
    const DAY: u64 = 86_400;
    match seconds {
        s if s >= 2 * 365 * DAY => format!("{} years", s / (365 * DAY)),
        s if s >= 2 * DAY => format!("{} days", s / DAY),
        s if s >= 2 * 3600 => format!("{} hours", s / 3600),
        s if s >= 120 => format!("{} minutes", s / 60),
        s => format!("{s} s"),
    }
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_micros() as i64)
    }

    pub fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms as i64 * 1000)
    }

    pub fn millis(self) -> u64 {
        self.0.max(0) as u64 / 1000
    }

    pub(crate) fn minus_days(self, days: i64) -> Timestamp {
        Timestamp(self.0 - days * 86_400_000_000)
    }

    /// `YYYY-MM-DD HH:MM:SS`, as the legacy status report shows times.
    pub(crate) fn to_legacy(self) -> String {
        let s = self.to_string();
        format!("{} {}", &s[..10], &s[11..19])
    }

    /// Parse an RFC 3339 date-time (`2026-01-02T03:04:05Z`,
    /// `2026-01-02T03:04:05.5+02:00`); a space may stand for the `T`.
    pub fn parse(text: &str) -> Option<Timestamp> {
        let b = text.trim().as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let s = std::str::from_utf8(b.get(r)?).ok()?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 60
        {
            return None;
        }
        let mut i = 19;
        let mut micros = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 6 {
                    micros = micros * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return None;
            }
            for _ in (i - start)..6 {
                micros *= 10;
            }
        }
        let offset_secs = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if h > 23 || m > 59 {
                    return None;
                }
                let off = h * 3600 + m * 60;
                if *sign == b'+' { off } else { -off }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
        Some(Timestamp(secs * 1_000_000 + micros))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms: days since 1970-01-01 <-> proleptic Gregorian.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_round_trip() {
        let t = Timestamp::parse("2026-11-25T17:25:22.123456Z").unwrap();
        assert_eq!(t.to_string(), "2026-11-25T17:25:22.123456Z");
        assert_eq!(t.to_legacy(), "2026-11-25 17:25:22");
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000000Z");
        let leap = Timestamp::parse("2024-02-29T23:59:59Z").unwrap();
        assert_eq!(leap.to_string(), "2024-02-29T23:59:59.000000Z");
    }

    #[test]
    fn applies_offsets_and_short_fractions() {
        let a = Timestamp::parse("2026-01-01T02:00:00.5+02:00").unwrap();
        assert_eq!(a.to_string(), "2026-01-01T00:00:00.500000Z");
        let b = Timestamp::parse("2025-12-31 23:30:00-01:00").unwrap();
        assert_eq!(b.to_string(), "2026-01-01T00:30:00.000000Z");
    }

    #[test]
    fn rejects_what_is_not_a_date_time() {
        for bad in [
            "",
            "2026-11-25",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-25T24:00:00Z",
            "2026-11-25T10:00:00",
            "2026-11-25T10:00:00.Z",
            "yesterday at noon, roughly",
            "2026-11-25T10:00:00+2:00",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad:?}");
        }
    }
}
