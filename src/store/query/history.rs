//! The registers of one record, for an item's history (`ops::history`).

use rusqlite::Connection;
use waymark_sync::RecordState;

use crate::error::Result;
use crate::store::Collection;

/// The registers of record `id` of `collection` (empty when never written).
pub(crate) fn state(conn: &Connection, collection: &Collection, id: &str) -> Result<RecordState> {
    crate::store::write::load_state(conn, collection, id)
}
