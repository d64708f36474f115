//! The simulator's catalog: tokens stored by SHA-512 hash (never the raw string), databases, and
//! the rules InfluxDB 3's catalog applies to them, with its exact error texts.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine;
use rand::Rng;
use sha2::{Digest, Sha512};

use crate::tokens::{
    OPERATOR_TOKEN_NAME, RawToken, SYSTEM_RESOURCES, TOKEN_PREFIX, WirePermission,
};

use super::databases::{Databases, DbError, HardDelete, SimDatabase};

/// The database that holds `system.tokens`.
pub const INTERNAL_DB: &str = "_internal";

/// A token as the catalog keeps it.
#[derive(Debug, Clone)]
pub struct SimToken {
    pub id: u64,
    pub name: String,
    pub hash: [u8; 64],
    pub created_at: i64,
    /// Milliseconds since the epoch; `None` never expires.
    pub expiry: Option<i64>,
    pub updated_at: Option<i64>,
    pub updated_by: Option<u64>,
    /// `None` for admin tokens (`*:*:*`).
    pub permissions: Option<Vec<WirePermission>>,
    /// The `hash` column: the first 9 hex characters of the hash.
    pub hash_prefix: String,
    /// The `permissions` column. It keeps the names given at creation, also after a database is
    /// deleted: the catalog captures a deleted database's original name into the token "so
    /// `show tokens` still shows the original name" (`capture_db_name_in_tokens` in
    /// `influxdb3_catalog/src/format/records/database.rs`). How Enterprise prints that
    /// `deleted` mark in this column is Enterprise code, unknown here.
    pub permissions_text: String,
    /// The database permissions resolved to database ids, as the catalog stores them
    /// (`ResourceIdentifier::Database(Vec<DbId>)` in `influxdb3_authz/src/lib.rs`).
    pub db_grants: Vec<DbGrant>,
}

/// A database permission as ids: `None` for `*`.
#[derive(Debug, Clone)]
pub struct DbGrant {
    pub ids: Option<Vec<u32>>,
    pub actions: Vec<String>,
}

impl SimToken {
    pub fn is_admin(&self) -> bool {
        self.permissions.is_none()
    }

    /// The `permissions` column: `*:*:*`, or each permission as TYPE:NAMES:ACTIONS joined by a space.
    pub fn permissions_column(&self) -> &str {
        &self.permissions_text
    }

    /// Whether this (resource) token may do `action` on system resource `name`.
    pub fn allows_system(&self, name: &str) -> bool {
        self.permissions.as_ref().is_none_or(|perms| {
            perms.iter().any(|p| {
                p.resource_type == "system"
                    && p.resource_names
                        .iter()
                        .any(|n| n == "*" || n.eq_ignore_ascii_case(name))
                    && p.actions.iter().any(|a| a == "read")
            })
        })
    }

    /// Whether this (resource) token may `action` the database with id `db`. A token that named
    /// a database later deleted keeps that database's id, so it grants nothing on a new
    /// database of the same name.
    /// `None` is a database that does not exist, which only `*` covers.
    pub fn allows_db(&self, db: Option<u32>, action: &str) -> bool {
        self.db_grants.iter().any(|g| {
            g.ids
                .as_ref()
                .is_none_or(|ids| db.is_some_and(|db| ids.contains(&db)))
                && g.actions.iter().any(|a| a == action)
        })
    }
}

/// Catalog failures, worded as InfluxDB 3 words them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogError {
    NameExists(String),
    NotFound(String),
    CannotDeleteOperator,
    MissingAdmin,
    BadPermission(String),
}

impl CatalogError {
    pub fn message(&self) -> String {
        match self {
            Self::NameExists(n) => format!("token name already exists, {n}"),
            Self::NotFound(n) => format!("the requested resource was not found: {n}"),
            Self::CannotDeleteOperator => "cannot delete operator token".to_owned(),
            Self::MissingAdmin => "missing admin token, cannot update".to_owned(),
            Self::BadPermission(d) => format!("cannot parse token permission, {d}"),
        }
    }
}

/// Tokens and databases.
#[derive(Debug, Default)]
pub struct Catalog {
    next_id: u64,
    tokens: BTreeMap<u64, SimToken>,
    by_hash: HashMap<[u8; 64], u64>,
    by_name: HashMap<String, u64>,
    databases: Databases,
}

/// A fresh token string: `apiv3_` and 64 random bytes in URL-safe base64 without padding.
pub fn generate_token() -> RawToken {
    let mut bytes = [0u8; 64];
    rand::rng().fill_bytes(&mut bytes);
    RawToken::new(format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The `hash` column shows the first 9 hex characters.
fn hash_prefix(hash: &[u8; 64]) -> String {
    hex::encode(&hash[..5])[..9].to_owned()
}

/// `*:*:*`, or each permission as TYPE:NAMES:ACTIONS joined by a space.
fn permissions_text(permissions: Option<&[WirePermission]>) -> String {
    match permissions {
        None => "*:*:*".to_owned(),
        Some(perms) => perms
            .iter()
            .map(|p| {
                format!(
                    "{}:{}:{}",
                    p.resource_type,
                    p.resource_names.join(","),
                    p.actions.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// SHA-512 of the whole token string, prefix included.
pub fn hash_token(raw: &str) -> [u8; 64] {
    Sha512::digest(raw.as_bytes()).into()
}

impl Catalog {
    /// Tokens in id (insertion) order.
    pub fn tokens(&self) -> impl Iterator<Item = &SimToken> {
        self.tokens.values()
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Every database, deleted ones included, in id order.
    pub fn databases(&self) -> impl Iterator<Item = &SimDatabase> {
        self.databases.all()
    }

    /// The id of the live database `name`.
    pub fn database_id(&self, name: &str) -> Option<u32> {
        self.databases.active_id(name)
    }

    /// `POST /api/v3/configure/database`.
    pub fn create_database(
        &mut self,
        name: &str,
        retention: Option<Duration>,
    ) -> Result<u32, DbError> {
        self.databases.create(name, retention)
    }

    /// `PUT /api/v3/configure/database`: sets, or with `None` clears, the retention period.
    pub fn set_retention(
        &mut self,
        name: &str,
        retention: Option<Duration>,
    ) -> Result<(), DbError> {
        self.databases.set_retention(name, retention)
    }

    /// `DELETE /api/v3/configure/database`: a soft delete. Tokens that named the database keep
    /// its id (see [`SimToken::allows_db`]).
    pub fn delete_database(
        &mut self,
        name: &str,
        when: HardDelete,
        now: i64,
    ) -> Result<u32, DbError> {
        self.databases.soft_delete(name, when, now)
    }

    /// The unexpired token whose hash matches `raw`.
    pub fn authenticate(&self, raw: &str, now: i64) -> Option<&SimToken> {
        let id = self.by_hash.get(&hash_token(raw))?;
        self.tokens
            .get(id)
            .filter(|t| t.expiry.is_none_or(|e| e > now))
    }

    /// `POST .../token/admin`: creates `_admin`; only the name is checked.
    pub fn create_operator(&mut self, now: i64) -> Result<(SimToken, RawToken), CatalogError> {
        self.create(OPERATOR_TOKEN_NAME, None, None, now)
    }

    /// `POST .../token/named_admin`.
    pub fn create_named_admin(
        &mut self,
        name: &str,
        expiry_secs: Option<u64>,
        now: i64,
    ) -> Result<(SimToken, RawToken), CatalogError> {
        self.create(name, expiry_secs, None, now)
    }

    /// `POST /api/v3/enterprise/configure/token`, with the shared catalog's permission checks.
    pub fn create_resource(
        &mut self,
        name: &str,
        permissions: Vec<WirePermission>,
        expiry_secs: Option<u64>,
        now: i64,
    ) -> Result<(SimToken, RawToken), CatalogError> {
        for p in &permissions {
            self.check_permission(p)?;
        }
        self.create(name, expiry_secs, Some(permissions), now)
    }

    /// Registers a known token string under `name` (like `--admin-token-file`); skipped when the
    /// name exists, as the real server does.
    pub fn register(
        &mut self,
        name: &str,
        raw: &RawToken,
        expiry: Option<i64>,
        now: i64,
    ) -> Option<SimToken> {
        if self.by_name.contains_key(name) {
            return None;
        }
        Some(self.insert(name, hash_token(raw.expose()), expiry, None, now))
    }

    /// `DELETE .../token?token_name=`.
    pub fn delete(&mut self, name: &str) -> Result<(), CatalogError> {
        if name == OPERATOR_TOKEN_NAME {
            return Err(CatalogError::CannotDeleteOperator);
        }
        let id = self
            .by_name
            .remove(name)
            .ok_or_else(|| CatalogError::NotFound(name.to_owned()))?;
        if let Some(t) = self.tokens.remove(&id) {
            self.by_hash.remove(&t.hash);
        }
        Ok(())
    }

    /// `POST .../token/admin/regenerate`: a new secret for `_admin`, same id, name and created_at.
    pub fn regenerate_operator(&mut self, now: i64) -> Result<(SimToken, RawToken), CatalogError> {
        let id = *self
            .by_name
            .get(OPERATOR_TOKEN_NAME)
            .ok_or(CatalogError::MissingAdmin)?;
        let raw = generate_token();
        let hash = hash_token(raw.expose());
        let token = self.tokens.get_mut(&id).ok_or(CatalogError::MissingAdmin)?;
        let old = std::mem::replace(&mut token.hash, hash);
        token.hash_prefix = hash_prefix(&hash);
        token.updated_at = Some(now);
        token.updated_by = Some(id);
        let token = token.clone();
        self.by_hash.remove(&old);
        self.by_hash.insert(hash, id);
        Ok((token, raw))
    }

    fn create(
        &mut self,
        name: &str,
        expiry_secs: Option<u64>,
        permissions: Option<Vec<WirePermission>>,
        now: i64,
    ) -> Result<(SimToken, RawToken), CatalogError> {
        if self.by_name.contains_key(name) {
            return Err(CatalogError::NameExists(name.to_owned()));
        }
        // Overflowing arithmetic means "no expiry", as in the real catalog, whose time type is a
        // chrono date: beyond its last day (year 262,143) is an overflow too.
        let expiry = expiry_secs
            .and_then(|s| i64::try_from(s).ok())
            .and_then(|s| s.checked_mul(1000))
            .and_then(|ms| now.checked_add(ms))
            .filter(|ms| chrono::DateTime::from_timestamp_millis(*ms).is_some());
        let raw = generate_token();
        let token = self.insert(name, hash_token(raw.expose()), expiry, permissions, now);
        Ok((token, raw))
    }

    fn insert(
        &mut self,
        name: &str,
        hash: [u8; 64],
        expiry: Option<i64>,
        permissions: Option<Vec<WirePermission>>,
        now: i64,
    ) -> SimToken {
        let id = self.next_id;
        self.next_id += 1;
        let permissions_text = permissions_text(permissions.as_deref());
        let db_grants = self.db_grants(permissions.as_deref());
        let token = SimToken {
            id,
            name: name.to_owned(),
            hash,
            created_at: now,
            expiry,
            updated_at: None,
            updated_by: None,
            permissions,
            hash_prefix: hash_prefix(&hash),
            permissions_text,
            db_grants,
        };
        self.by_hash.insert(hash, id);
        self.by_name.insert(name.to_owned(), id);
        self.tokens.insert(id, token.clone());
        token
    }

    fn db_grants(&self, permissions: Option<&[WirePermission]>) -> Vec<DbGrant> {
        permissions
            .unwrap_or_default()
            .iter()
            .filter(|p| p.resource_type == "db")
            .map(|p| DbGrant {
                ids: (!p.resource_names.iter().any(|n| n == "*")).then(|| {
                    p.resource_names
                        .iter()
                        .filter_map(|n| self.databases.active_id(n))
                        .collect()
                }),
                actions: p.actions.clone(),
            })
            .collect()
    }

    fn check_permission(&self, p: &WirePermission) -> Result<(), CatalogError> {
        let bad = |d: String| Err(CatalogError::BadPermission(d));
        let names = &p.resource_names;
        if names.is_empty() {
            return bad("resource names cannot be empty".into());
        }
        if names.len() > 1 && names.iter().any(|n| n == "*") {
            return bad("mixed wildcard (*) and resource name".into());
        }
        let allowed: &[&str] = match p.resource_type.as_str() {
            "db" => &["read", "write", "create", "describe", "delete"],
            "system" => &["read"],
            "*" => return bad("* resource type can only be set for admin token".into()),
            other => return bad(format!("resource type not supported: {other}")),
        };
        for name in names.iter().filter(|n| *n != "*") {
            let known = match p.resource_type.as_str() {
                "db" => self.databases.active_id(name).is_some() && name != INTERNAL_DB,
                _ => SYSTEM_RESOURCES.contains(&name.trim().to_ascii_lowercase().as_str()),
            };
            if !known {
                return bad(format!("invalid resource name {name}"));
            }
        }
        if p.actions.is_empty() {
            return bad("actions cannot be empty".into());
        }
        if let Some(a) = p.actions.iter().find(|a| !allowed.contains(&a.as_str())) {
            return bad(format!("invalid action {a}"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_the_real_ones() {
        let t = generate_token();
        assert_eq!(t.expose().len(), 92);
        assert!(t.expose().starts_with("apiv3_"));
        assert!(
            t.expose()[6..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }

    #[test]
    fn ids_are_never_reused_and_names_free_up() {
        let mut c = Catalog::default();
        let (a, _) = c.create_named_admin("a", None, 0).unwrap();
        c.delete("a").unwrap();
        let (b, _) = c.create_named_admin("a", None, 0).unwrap();
        assert_eq!((a.id, b.id), (0, 1));
    }

    #[test]
    fn expiry_is_enforced_at_authentication() {
        let mut c = Catalog::default();
        let (_, raw) = c.create_named_admin("short", Some(2), 1_000).unwrap();
        assert!(c.authenticate(raw.expose(), 2_999).is_some());
        assert!(c.authenticate(raw.expose(), 3_000).is_none());
        let (t, _) = c.create_named_admin("huge", Some(u64::MAX), 0).unwrap();
        assert_eq!(t.expiry, None, "overflow means never");
    }

    #[test]
    fn regenerate_keeps_identity_and_kills_the_old_secret() {
        let mut c = Catalog::default();
        assert_eq!(
            c.regenerate_operator(0).unwrap_err(),
            CatalogError::MissingAdmin
        );
        let (op, old) = c.create_operator(5).unwrap();
        let (again, new) = c.regenerate_operator(9).unwrap();
        assert_eq!(
            (
                again.id,
                again.created_at,
                again.updated_at,
                again.updated_by
            ),
            (op.id, 5, Some(9), Some(op.id))
        );
        assert!(c.authenticate(old.expose(), 10).is_none());
        assert!(c.authenticate(new.expose(), 10).is_some());
    }

    #[test]
    fn permissions_are_checked_like_the_shared_catalog() {
        let mut c = Catalog::default();
        c.create_database("metrics", None).unwrap();
        let p = |t: &str, n: &[&str], a: &[&str]| WirePermission {
            resource_type: t.into(),
            resource_names: n.iter().map(|s| s.to_string()).collect(),
            actions: a.iter().map(|s| s.to_string()).collect(),
        };
        assert!(
            c.create_resource("ok", vec![p("db", &["metrics"], &["read"])], None, 0)
                .is_ok()
        );
        let err = |perm| c.check_permission(&perm).unwrap_err().message();
        assert_eq!(
            err(p("db", &["nope"], &["read"])),
            "cannot parse token permission, invalid resource name nope"
        );
        assert!(err(p("db", &["*", "metrics"], &["read"])).contains("mixed wildcard"));
        assert!(err(p("*", &["*"], &["*"])).contains("only be set for admin token"));
        assert!(err(p("system", &["*"], &["write"])).contains("invalid action write"));
    }
}
