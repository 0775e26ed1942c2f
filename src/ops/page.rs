//! Pages of compact rows with opaque keyset cursors.

use serde::Serialize;

use crate::error::{Error, Result};

/// The default and largest page sizes of every list.
pub(crate) const DEFAULT_LIMIT: i64 = 20;
pub(crate) const MAX_LIMIT: i64 = 100;

/// A kind of list row: the fields a page of them shows, in order.
pub trait Row: Serialize {
    /// Named once per page as `columns`; each row is an array of these
    /// fields (missing ones null), which keeps a page small.
    const COLUMNS: &'static [&'static str];
}

/// One page of a list. It serializes as `{columns, rows, total_count,
/// total_is_capped?, next_cursor?}`: what both faces answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// How many rows match the filters, over all pages (at most
    /// `store::query::COUNT_CAP`: see `total_is_capped`).
    pub total_count: i64,
    /// More rows than `store::query::COUNT_CAP` match: `total_count` is a lower bound.
    /// Counting is capped so that no list costs more as the store grows.
    pub total_is_capped: bool,
    /// Pass back as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `values` as `{columns, rows}` rows under their columns.
pub(crate) fn rows<T: Row>(values: &[T]) -> Vec<serde_json::Value> {
    values
        .iter()
        .map(|item| {
            let mut v = serde_json::to_value(item).unwrap_or(serde_json::Value::Null);
            serde_json::Value::Array(
                T::COLUMNS
                    .iter()
                    .map(|c| v.get_mut(*c).map(serde_json::Value::take).unwrap_or_default())
                    .collect(),
            )
        })
        .collect()
}

/// Serializes a row list as `rows`, for answers that hold one.
#[allow(clippy::ptr_arg)] // serde's `serialize_with` passes the field itself
pub(crate) fn serialize_rows<T: Row, S: serde::Serializer>(
    values: &Vec<T>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    rows(values).serialize(s)
}

impl<T: Row> Serialize for Page<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("columns", T::COLUMNS)?;
        m.serialize_entry("rows", &rows(&self.items))?;
        m.serialize_entry("total_count", &self.total_count)?;
        if self.total_is_capped {
            m.serialize_entry("total_is_capped", &true)?;
        }
        if let Some(c) = &self.next_cursor {
            m.serialize_entry("next_cursor", c)?;
        }
        m.end()
    }
}

/// Check a requested page size: 1 to 100, [`DEFAULT_LIMIT`] when not given.
pub fn clamp_limit(limit: Option<i64>) -> Result<i64> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => Err(Error::invalid("limit", format!("must be 1 to {MAX_LIMIT} (got {n})"))),
    }
}

/// A cursor is the sort key of the last row shown, hex-encoded so that
/// clients treat it as opaque.
pub(crate) fn encode_cursor(parts: &[&str]) -> String {
    let joined = parts.join("\u{1f}");
    joined.bytes().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn decode_cursor(cursor: &str, arity: usize) -> Result<Vec<String>> {
    if !cursor.len().is_multiple_of(2) || cursor.len() > 4096 {
        return Err(bad_cursor());
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes.ok_or_else(bad_cursor)?).map_err(|_| bad_cursor())?;
    let parts: Vec<String> = text.split('\u{1f}').map(str::to_owned).collect();
    if parts.len() == arity {
        Ok(parts)
    } else {
        Err(bad_cursor())
    }
}

/// A cursor of `(time, id)`.
pub(crate) fn decode_timed_cursor(cursor: &str) -> Result<(String, String)> {
    let [at, id] = decode_parts(cursor)?;
    Ok((at, id))
}

/// A cursor of `(priority, time, id)`.
pub(crate) fn decode_ranked_cursor(cursor: &str) -> Result<(i64, String, String)> {
    let [priority, at, id] = decode_parts(cursor)?;
    let priority: i64 = priority.parse().map_err(|_| bad_cursor())?;
    Ok((priority, at, id))
}

pub(crate) fn decode_parts<const N: usize>(cursor: &str) -> Result<[String; N]> {
    <[String; N]>::try_from(decode_cursor(cursor, N)?).map_err(|_| bad_cursor())
}

pub(crate) fn bad_cursor() -> Error {
    Error::invalid("cursor", "is not a cursor this list returned; start again without one")
}

/// The cursor of a list that pages by row key.
pub(crate) fn encode_key_cursor(key: i64) -> String {
    encode_cursor(&["k", &key.to_string()])
}

pub(crate) fn decode_key_cursor(cursor: &str) -> Result<i64> {
    match decode_cursor(cursor, 2)?.as_slice() {
        [tag, key] if tag == "k" => key.parse().ok(),
        _ => None,
    }
    .ok_or_else(bad_cursor)
}

/// Cut a fetched `limit + 1` rows to a page, with the cursor of its last row.
pub(crate) fn paginate<T>(mut rows: Vec<T>, limit: i64, total: (i64, bool), key: impl Fn(&T) -> String) -> Page<T> {
    let (total_count, total_is_capped) = total;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more { rows.last().map(key) } else { None };
    Page {
        items: rows,
        total_count,
        total_is_capped,
        next_cursor,
    }
}

impl<T> Page<T> {
    /// The same page with each row transformed.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total_count: self.total_count,
            total_is_capped: self.total_is_capped,
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(&["2026-01-01T00:00:00.000000Z", "abc"]);
        assert_eq!(decode_cursor(&c, 2).unwrap(), ["2026-01-01T00:00:00.000000Z", "abc"]);
        assert!(decode_cursor("zz", 2).is_err());
        assert!(decode_cursor(&c, 3).is_err());
        assert!(decode_cursor("abc", 1).is_err());
    }

    #[test]
    fn limits_are_bounded() {
        assert_eq!(clamp_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(DEFAULT_LIMIT, 20, "a page under 4 KB");
        assert!(clamp_limit(Some(0)).is_err() && clamp_limit(Some(101)).is_err());
    }
}
