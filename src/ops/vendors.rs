//! Vendors: tracked components with a health status and test results,
//! found by name in any case.

use rusqlite::OptionalExtension;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::Tracker;
use super::page::{Page, capped_count, clamp_limit, decode_cursor, encode_cursor, paginate};
use crate::domain::{self, VendorStatus, ids};
use crate::error::{Error, Kind, Result};
use crate::store::id::{self, get_id};
use crate::store::write::Fields;
use crate::store::{VENDORS, WriteTx};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Vendor {
    pub id: String,
    pub name: String,
    pub status: String,
    pub extractor_version: String,
    pub metadata: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
    #[serde(default)]
    pub version: i64,
}

/// A vendor in a list.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct VendorRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub extractor_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tests: Option<String>,
    pub updated_at: String,
    pub version: i64,
}

impl super::page::Row for VendorRow {
    const COLUMNS: &'static [&'static str] = &["name", "status", "extractor_version", "tests", "updated_at", "version"];
}

/// What `create_vendor` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVendor {
    /// Letters, digits, space, - and _; unique in any case.
    #[schemars(length(max = 100))]
    pub name: String,
    /// Default 0.0.0.
    #[schemars(length(max = 50))]
    pub extractor_version: Option<String>,
    /// format_support {excel,csv,pdf,ocr}, test_results {passing,total,skipped}, notes, ...
    pub metadata: Option<Map<String, Value>>,
}

/// What `update_vendor_status` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorUpdate {
    #[schemars(length(max = 100))]
    pub name: String,
    pub version: i64,
    #[schemars(extend("enum" = ["operational", "broken"]))]
    pub status: Option<String>,
    #[schemars(length(max = 50))]
    pub extractor_version: Option<String>,
    /// Keys to merge; null removes one.
    pub metadata: Option<Map<String, Value>>,
}

/// Filters of `list_vendors`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorFilter {
    #[schemars(extend("enum" = ["operational", "broken"]))]
    pub status: Option<String>,
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What `query_vendor_status` takes.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorQuery {
    /// Any case.
    #[schemars(length(max = 100))]
    pub name: String,
}

pub(crate) const VENDOR_COLUMNS: &str = "id, name, status, extractor_version, metadata, deleted_at, created_at, \
     created_by, updated_at, updated_by, version";

pub(crate) fn vendor_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Vendor> {
    let metadata: String = r.get(4)?;
    Ok(Vendor {
        id: get_id(r, 0)?,
        name: r.get(1)?,
        status: r.get(2)?,
        extractor_version: r.get(3)?,
        metadata: serde_json::from_str(&metadata).unwrap_or_else(|_| Value::Object(Map::new())),
        deleted_at: r.get(5)?,
        created_at: r.get(6)?,
        created_by: r.get(7)?,
        updated_at: r.get(8)?,
        updated_by: r.get(9)?,
        version: r.get(10)?,
    })
}

/// `passing/total` of a vendor's metadata, when it has test results.
pub(crate) fn tests_of(metadata: &Value) -> Option<String> {
    let t = metadata.get("test_results")?;
    let n = |k| t.get(k).and_then(Value::as_i64).unwrap_or(0);
    Some(format!("{}/{}", n("passing"), n("total")))
}

pub(crate) fn find(conn: &rusqlite::Connection, name_or_id: &str) -> Result<Option<Vendor>> {
    let id = match uuid::Uuid::parse_str(name_or_id.trim()) {
        Ok(u) => u.to_string(),
        Err(_) => ids::vendor(name_or_id),
    };
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {VENDOR_COLUMNS} FROM vendors WHERE id = ?1 AND deleted_at IS NULL"
        ))?
        .query_row([id::sql(&id)], vendor_from_row)
        .optional()?)
}

fn require(conn: &rusqlite::Connection, name: &str) -> Result<Vendor> {
    find(conn, name)?.ok_or_else(|| Error::not_found(Kind::Vendor, format!("{:?}", name.trim())))
}

/// Create a vendor, or refuse when one of that name (any case) exists.
pub(crate) fn create_in(tx: &mut WriteTx<'_>, input: NewVendor) -> Result<Vendor> {
    let name = domain::vendor_name(&input.name)?;
    let extractor_version = domain::extractor_version(input.extractor_version.as_deref().unwrap_or("0.0.0"))?;
    let metadata = input.metadata.unwrap_or_default();
    let metadata: Map<String, Value> = metadata.into_iter().filter(|(_, v)| !v.is_null()).collect();
    domain::vendor_metadata(&metadata)?;
    if let Some(existing) = find(tx.conn(), &name)? {
        return Err(Error::Conflict(format!(
            "vendor {:?} already exists (as {:?}, version {}); update_vendor_status changes it",
            name, existing.name, existing.version
        )));
    }
    let id = ids::vendor(&name);
    let mut fields = Fields::new();
    fields.insert("name".into(), name.into());
    fields.insert("status".into(), VendorStatus::Broken.as_str().into());
    fields.insert("extractor_version".into(), extractor_version.into());
    for (k, v) in metadata {
        fields.insert(format!("metadata.{k}"), v);
    }
    if tx.state(&VENDORS, &id)?.vv.is_empty() {
        fields.insert("created_at".into(), tx.now().to_string().into());
        fields.insert("created_by".into(), tx.author().into());
    } else {
        // A deleted vendor of that name comes back.
        fields.insert("deleted_at".into(), Value::Null);
    }
    tx.write(&VENDORS, &id, fields)?;
    require(tx.conn(), &id)
}

/// Apply an update to a vendor that was read at `expected_version` (None:
/// no locking, for imports).
pub(crate) fn update_in(tx: &mut WriteTx<'_>, input: VendorUpdate, locked: bool) -> Result<Vendor> {
    let vendor = require(tx.conn(), &input.name)?;
    if locked && vendor.version != input.version {
        return Err(Error::StaleVersion {
            kind: Kind::Vendor,
            id: vendor.name.clone(),
            expected: input.version,
            current: vendor.version,
            updated_by: vendor.updated_by,
        });
    }
    let mut fields = Fields::new();
    if let Some(s) = &input.status {
        let s = VendorStatus::parse(s)?;
        if s.as_str() != vendor.status {
            fields.insert("status".into(), s.as_str().into());
        }
    }
    if let Some(v) = &input.extractor_version {
        let v = domain::extractor_version(v)?;
        if v != vendor.extractor_version {
            fields.insert("extractor_version".into(), v.into());
        }
    }
    let given = input.metadata.unwrap_or_default();
    let mut merged = vendor.metadata.as_object().cloned().unwrap_or_default();
    for (k, v) in &given {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    domain::vendor_metadata(&merged)?;
    for (k, v) in given {
        if vendor.metadata.get(&k).unwrap_or(&Value::Null) != &v {
            fields.insert(format!("metadata.{k}"), v);
        }
    }
    if fields.is_empty() {
        return Ok(vendor);
    }
    tx.write(&VENDORS, &vendor.id, fields)?;
    require(tx.conn(), &vendor.id)
}

impl Tracker {
    /// Create a vendor; it starts `broken` until updated.
    pub fn create_vendor(&self, author: &str, input: NewVendor) -> Result<Vendor> {
        self.store.write(author, move |tx| create_in(tx, input))
    }

    /// A vendor by name, in any case (or by id).
    pub fn query_vendor_status(&self, name: &str) -> Result<Vendor> {
        if name.trim().is_empty() {
            return Err(Error::invalid("name", "is empty; give a vendor's name"));
        }
        self.store.read(|tx| require(tx, name))
    }

    /// Update a vendor with optimistic locking.
    pub fn update_vendor_status(&self, author: &str, input: VendorUpdate) -> Result<Vendor> {
        self.store.write(author, move |tx| update_in(tx, input, true))
    }

    /// Vendors by name.
    pub fn list_vendors(&self, filter: VendorFilter) -> Result<Page<VendorRow>> {
        let limit = clamp_limit(filter.limit)?;
        let status = filter.status.as_deref().map(VendorStatus::parse).transpose()?;
        let mut clauses = vec!["deleted_at IS NULL".to_owned()];
        let mut args: Vec<String> = Vec::new();
        if let Some(s) = status {
            args.push(s.as_str().to_owned());
            clauses.push(format!("status = ?{}", args.len()));
        }
        let filters = clauses.join(" AND ");
        let count_args = args.len();
        let mut page_filters = filters.clone();
        if let Some(c) = &filter.cursor {
            let k = decode_cursor(c, 1)?;
            args.push(k[0].clone());
            page_filters.push_str(&format!(" AND name_key > ?{}", args.len()));
        }
        self.store.read(|tx| {
            let total = capped_count(tx, &format!("vendors WHERE {filters}"), &args[..count_args])?;
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT id, name, status, extractor_version, metadata, updated_at, version, name_key
                 FROM vendors WHERE {page_filters} ORDER BY name_key LIMIT {}",
                limit + 1
            ))?;
            let rows: Vec<(VendorRow, String)> = stmt
                .query_map(rusqlite::params_from_iter(&args), |r| {
                    let metadata: String = r.get(4)?;
                    let metadata: Value = serde_json::from_str(&metadata).unwrap_or(Value::Null);
                    Ok((
                        VendorRow {
                            id: get_id(r, 0)?,
                            name: r.get(1)?,
                            status: r.get(2)?,
                            extractor_version: r.get(3)?,
                            tests: tests_of(&metadata),
                            updated_at: r.get(5)?,
                            version: r.get(6)?,
                        },
                        r.get(7)?,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(paginate(rows, limit, total, |(_, key)| encode_cursor(&[key])).map(|(row, _)| row))
        })
    }
}
