//! Record ids as the store holds them.
//!
//! An id in its canonical form (a lowercase, hyphenated UUID, the only form
//! Waymark mints or accepts from a user) is stored as its 16 bytes: less
//! than half its 36 characters, in every row and every index that holds it.
//! Any other text (an id a foreign replica wrote) is stored as that text,
//! so storing an id never changes or loses it. Bytes compare in the order of
//! their canonical texts, so `ORDER BY id` and range conditions keep their
//! meaning (an id kept as text sorts before every 16-byte one, the same way
//! on every replica).
//!
//! Every statement that binds an id binds [`sql`] (a blob never equals a
//! text in SQLite), and every read of an id column goes through
//! [`get_id`] / [`get_opt_id`] (or [`text`] for a value already read).

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, Value, ValueRef};
use uuid::Uuid;

/// An id, ready to bind to a statement.
#[derive(Clone, Copy, Debug)]
pub enum Id<'a> {
    Bytes([u8; 16]),
    Text(&'a str),
}

/// The stored form of the id `text`.
pub fn sql(text: &str) -> Id<'_> {
    match canonical(text) {
        Some(uuid) => Id::Bytes(uuid.into_bytes()),
        None => Id::Text(text),
    }
}

/// The UUID `text` spells in canonical form, if it does.
fn canonical(text: &str) -> Option<Uuid> {
    if text.len() != 36 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    // 36 characters parse only in the hyphenated form.
    Uuid::try_parse(text).ok()
}

impl ToSql for Id<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Id::Bytes(bytes) => ValueRef::Blob(bytes),
            Id::Text(text) => ValueRef::Text(text.as_bytes()),
        }))
    }
}

/// The stored form of the id `text`, as an owned SQL value.
pub fn value(text: &str) -> Value {
    match sql(text) {
        Id::Bytes(bytes) => Value::Blob(bytes.to_vec()),
        Id::Text(text) => Value::Text(text.to_owned()),
    }
}

/// The id a stored value holds, if it holds one.
pub fn text(value: ValueRef<'_>) -> Option<String> {
    match value {
        ValueRef::Blob(bytes) => {
            let uuid = Uuid::from_slice(bytes).ok()?;
            Some(uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()).to_owned())
        }
        ValueRef::Text(text) => std::str::from_utf8(text).ok().map(str::to_owned),
        _ => None,
    }
}

/// An id read from a column.
struct Read(String);

impl FromSql for Read {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        text(value).map(Read).ok_or(FromSqlError::InvalidType)
    }
}

/// The id in column `i` of a row.
pub fn get_id<I: rusqlite::RowIndex>(row: &rusqlite::Row<'_>, i: I) -> rusqlite::Result<String> {
    Ok(row.get::<_, Read>(i)?.0)
}

/// The id, or NULL, in column `i` of a row.
pub fn get_opt_id<I: rusqlite::RowIndex>(row: &rusqlite::Row<'_>, i: I) -> rusqlite::Result<Option<String>> {
    Ok(row.get::<_, Option<Read>>(i)?.map(|r| r.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids_are_bytes_and_everything_else_stays_text() {
        let u = "0192f4c4-8a1b-7c3d-9e2f-a0b1c2d3e4f5";
        assert!(matches!(sql(u), Id::Bytes(_)));
        for other in [
            "0192F4C4-8A1B-7C3D-9E2F-A0B1C2D3E4F5",
            "0192f4c48a1b7c3d9e2fa0b1c2d3e4f5",
            "{0192f4c4-8a1b-7c3d-9e2f-a0b1c2d3e4f5}",
            "not-an-id",
            "",
        ] {
            assert!(matches!(sql(other), Id::Text(t) if t == other), "{other}");
        }
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        for t in [u, "0192F4C4-8A1B-7C3D-9E2F-A0B1C2D3E4F5", "not-an-id"] {
            let back: String = conn.query_row("SELECT ?1", [sql(t)], |r| get_id(r, 0)).unwrap();
            assert_eq!(back, t);
        }
        let none: Option<String> = conn.query_row("SELECT NULL", [], |r| get_opt_id(r, 0)).unwrap();
        assert_eq!(none, None);
    }

    /// The id columns schema 4 converts, as its migration names them.
    const ID_COLUMNS: [(&str, &[&str]); 7] = [
        ("work_items", &["id", "parent_id"]),
        ("dependencies", &["id", "source_id", "target_id"]),
        ("vendors", &["id"]),
        ("deployments", &["id"]),
        ("deployment_links", &["id", "deployment_id", "target_id"]),
        ("enhancements", &["id"]),
        ("configuration", &["id", "current_session_id"]),
    ];

    /// Text that is, or nearly is, a canonical id: one made from `n`, then
    /// (by `edit`) a character replaced, inserted or removed at `at`.
    fn id_like() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let chars = prop::sample::select(vec!['0', '9', 'a', 'f', 'A', 'F', 'g', '-', ' ', '{', 'é']);
        (any::<u128>(), 0..4u8, 0..40usize, chars).prop_map(|(n, edit, at, c)| {
            let mut text: Vec<char> = Uuid::from_u128(n).to_string().chars().collect();
            let at = at.min(text.len() - 1);
            match edit {
                1 => text[at] = c,
                2 => text.insert(at, c),
                3 => {
                    text.remove(at);
                }
                _ => {}
            }
            text.into_iter().collect()
        })
    }

    proptest::proptest! {
        /// The migration to schema 4 and the code apply one rule: a text
        /// becomes 16 bytes in the store exactly when `sql` binds it so.
        #[test]
        fn the_migration_converts_exactly_what_binds_as_bytes(text in id_like()) {
            let conn = rusqlite::Connection::open_in_memory().unwrap();
            for (table, columns) in ID_COLUMNS {
                let defs: Vec<String> = columns.iter().map(|c| format!("{c} TEXT")).collect();
                conn.execute(&format!("CREATE TABLE {table} ({})", defs.join(", ")), []).unwrap();
                let params: Vec<&str> = columns.iter().map(|_| "?1").collect();
                conn.execute(&format!("INSERT INTO {table} VALUES ({})", params.join(", ")), [&text]).unwrap();
            }
            conn.execute_batch(include_str!("../../sql/sqlite/0004_binary_ids.sql")).unwrap();
            for (table, columns) in ID_COLUMNS {
                for column in columns {
                    let stored: Value = conn
                        .query_row(&format!("SELECT {column} FROM {table}"), [], |r| r.get(0))
                        .unwrap();
                    proptest::prop_assert_eq!(stored, value(&text), "{}.{}", table, column);
                }
            }
        }
    }

    #[test]
    fn stored_ids_sort_like_their_text() {
        let mut ids: Vec<String> = (0..200)
            .map(|i| Uuid::new_v5(&Uuid::NAMESPACE_OID, &[i]).to_string())
            .collect();
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute("CREATE TABLE t (id TEXT)", []).unwrap();
        for i in &ids {
            conn.execute("INSERT INTO t VALUES (?1)", [sql(i)]).unwrap();
        }
        let sorted: Vec<String> = conn
            .prepare("SELECT id FROM t ORDER BY id")
            .unwrap()
            .query_map([], |r| get_id(r, 0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        ids.sort();
        assert_eq!(sorted, ids);
        let kind: String = conn
            .query_row("SELECT DISTINCT typeof(id) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kind, "blob");
    }
}
