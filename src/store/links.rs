//! Reveal links as stored rows, so a link opens on whichever process the load balancer picks:
//! the secret only sealed (the key is in each process's configuration, never here), the rest
//! of what settles its token, and its expiry by the database's clock. Opening a link deletes its
//! row and hands its journal entry to the opener in one transaction, so exactly one opener,
//! in whatever process, sees the secret.

use super::sql::{Conn, Row, args};
use super::{LEASE, Store, StoreError};

/// A link as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedLink {
    /// SHA-256 of the link's id (the id itself is the bearer's secret and is not kept).
    pub id_hash: String,
    /// The journal entry of the create whose secret waits.
    pub journal: String,
    /// For private delivery: the `[[people]]` entry that alone may see it.
    pub for_person: Option<String>,
    /// Whether other processes can open it (their key is the same); an unshared link dies
    /// with its maker, and recovery withdraws its token at once.
    pub shared: bool,
    /// Which key sealed it (a fingerprint, not the key).
    pub key_id: String,
    /// The secret, sealed.
    pub sealed: String,
    /// What settles its token (JSON, no secret).
    pub held: String,
}

/// Which link to take.
#[derive(Debug, Clone, Copy)]
pub enum Pick<'a> {
    /// The link with this id hash; `even_lapsed` for withdrawing rather than opening it.
    Hash { id_hash: &'a str, even_lapsed: bool },
    /// A person's longest-waiting live link.
    OldestFor(&'a str),
}

/// What taking a link found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// It is this process's now: its row is gone and its journal entry held here.
    Link(ParkedLink),
    /// Opened or withdrawn already, lapsed, or never made.
    Gone,
    /// Sealed with another key: this process cannot open it (and left it alone).
    OtherKey,
}

const COLUMNS: &str = "id_hash, journal_id, for_person, shared, key_id, sealed, held, expires_ms";

fn parked(r: &Row) -> Result<(ParkedLink, i64), StoreError> {
    Ok((
        ParkedLink {
            id_hash: r.get(0)?,
            journal: r.get(1)?,
            for_person: r.get(2)?,
            shared: r.get(3)?,
            key_id: r.get(4)?,
            sealed: r.get(5)?,
            held: r.get(6)?,
        },
        r.get(7)?,
    ))
}

/// Forgets the links of journal entry `journal` (recovery settles it now).
pub(super) fn forget_for(conn: &mut dyn Conn, journal: &str) -> Result<(), StoreError> {
    conn.execute(
        "DELETE FROM reveal_links WHERE journal_id = ?1",
        args![journal],
    )?;
    Ok(())
}

/// Journal entries whose link other processes may still open.
pub(super) fn shared_live(conn: &mut dyn Conn, now: i64) -> Result<Vec<String>, StoreError> {
    conn.query(
        "SELECT journal_id FROM reveal_links WHERE shared = 1 AND expires_ms > ?1",
        args![now],
    )?
    .iter()
    .map(|r| r.get(0))
    .collect()
}

impl Store {
    /// Keeps `link` until `ttl_ms` from now by the database's clock; that time (its token's
    /// deadline is this, whatever a host's clock says).
    pub fn link_park(
        &self,
        link: &ParkedLink,
        ttl_ms: i64,
    ) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        self.write(|c| {
            let now = c.now_ms()?;
            let expires = now.saturating_add(ttl_ms);
            c.execute(
                "INSERT INTO reveal_links (id_hash, journal_id, for_person, shared, key_id, sealed, held, made_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                args![
                    &link.id_hash,
                    &link.journal,
                    link.for_person.as_deref(),
                    link.shared,
                    &link.key_id,
                    &link.sealed,
                    &link.held,
                    now,
                    expires,
                ],
            )?;
            super::sql::time_of(expires)
        })
    }

    /// Every link waiting (or lapsed, not yet forgotten).
    pub fn link_list(&self) -> Result<Vec<ParkedLink>, StoreError> {
        self.read(|c| {
            let sql = format!("SELECT {COLUMNS} FROM reveal_links ORDER BY made_ms");
            c.query(&sql, &[])?
                .iter()
                .map(|r| parked(r).map(|(link, _)| link))
                .collect()
        })
    }

    /// Link `id_hash` as stored, and whether it is still live; `None` once taken or forgotten.
    pub fn link_peek(&self, id_hash: &str) -> Result<Option<(ParkedLink, bool)>, StoreError> {
        self.read(|c| {
            let now = c.now_ms()?;
            let sql = format!("SELECT {COLUMNS} FROM reveal_links WHERE id_hash = ?1");
            c.query_opt(&sql, args![id_hash])?
                .map(|r| parked(&r).map(|(link, expires)| (link, expires > now)))
                .transpose()
        })
    }

    /// Takes a link for this process, sealed with key `key_id`: its row is deleted and its
    /// journal entry held here, or nothing changes.
    pub fn link_take(&self, pick: Pick<'_>, key_id: &str) -> Result<Taken, StoreError> {
        let me = self.owner.to_string();
        let lease = i64::try_from(LEASE.as_millis()).unwrap_or(30_000);
        self.write(|c| {
            let now = c.now_ms()?;
            let (row, even_lapsed) = match pick {
                Pick::Hash {
                    id_hash,
                    even_lapsed,
                } => {
                    let sql = format!("SELECT {COLUMNS} FROM reveal_links WHERE id_hash = ?1");
                    (c.query_opt(&sql, args![id_hash])?, even_lapsed)
                }
                // A link sealed with another key is left to lapse: it must not hide the rest.
                Pick::OldestFor(person) => {
                    let sql = format!(
                        "SELECT {COLUMNS} FROM reveal_links
                         WHERE for_person = ?1 AND expires_ms > ?2 AND key_id = ?3
                         ORDER BY made_ms, id_hash LIMIT 1"
                    );
                    (c.query_opt(&sql, args![person, now, key_id])?, false)
                }
            };
            let Some(row) = row else {
                return Ok(Taken::Gone);
            };
            let (link, expires) = parked(&row)?;
            if expires <= now && !even_lapsed {
                return Ok(Taken::Gone);
            }
            if link.key_id != key_id {
                return Ok(Taken::OtherKey);
            }
            c.execute(
                "DELETE FROM reveal_links WHERE id_hash = ?1",
                args![&link.id_hash],
            )?;
            let held = c.execute(
                "UPDATE journal SET owner = ?2, lease_until = ?3 WHERE id = ?1 AND settled = 0",
                args![&link.journal, &me, now + lease],
            )?;
            Ok(if held == 1 {
                Taken::Link(link)
            } else {
                Taken::Gone
            })
        })
    }
}
