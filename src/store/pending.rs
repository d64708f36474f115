//! Pending actions of the gate as stored rows, the adapters' references to them (a Discord card),
//! and the notice every close leaves in the outbox, written in the same transaction.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::journal::{self, JournalEntry, JournalId, Stage};
use super::outbox::{self, Notice};
use super::sql::{Conn, args};
use super::{Store, StoreError};
use crate::gate::{Outcome, Pending, PendingId, PendingState};

impl Store {
    /// Stores a new pending action.
    pub fn insert_pending<A: Serialize>(&self, p: &Pending<A>) -> Result<(), StoreError> {
        let body = to_body(p)?;
        self.write(|c| {
            c.execute(
                "INSERT INTO pending (id, state, created_at, expires_at, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![p.id.as_str(), p.state.label(), p.created_at.to_rfc3339(), p.expires_at.to_rfc3339(), body],
            )
        })?;
        Ok(())
    }

    /// Reads a pending action.
    pub fn get_pending<A: DeserializeOwned>(
        &self,
        id: &PendingId,
    ) -> Result<Pending<A>, StoreError> {
        self.read(|c| load(c, id))
    }

    /// Runs `f` on a pending action inside one immediate transaction and stores the result, so
    /// concurrent callers (threads or processes) see each other's changes in order. A close
    /// leaves one notice in the outbox.
    pub fn update_pending<A, T>(
        &self,
        id: &PendingId,
        f: impl FnOnce(&mut Pending<A>) -> T,
    ) -> Result<T, StoreError>
    where
        A: Serialize + DeserializeOwned,
    {
        self.update_pending_journaled(id, |p| (f(p), None))
    }

    /// As [`Store::update_pending`], and when `f` also returns a journal entry (the intent of the
    /// operation the gate just released), it is written in the same transaction: a released
    /// action is never without its intent.
    pub fn update_pending_journaled<A, T>(
        &self,
        id: &PendingId,
        f: impl FnOnce(&mut Pending<A>) -> (T, Option<JournalEntry>),
    ) -> Result<T, StoreError>
    where
        A: Serialize + DeserializeOwned,
    {
        self.write(|c| apply(c, id, &self.owner, f))
    }

    /// As [`Store::update_pending_journaled`], with `f` told the time by `now`, read inside the
    /// transaction: a deadline is checked when the action is had, not before waiting for it.
    pub fn update_pending_at<A, T>(
        &self,
        id: &PendingId,
        now: Now,
        f: impl FnOnce(&mut Pending<A>, DateTime<Utc>) -> (T, Option<JournalEntry>),
    ) -> Result<T, StoreError>
    where
        A: Serialize + DeserializeOwned,
    {
        self.write(|c| {
            let now = match now {
                Now::Given(t) => t,
                Now::Database => c.now()?,
            };
            apply(c, id, &self.owner, |p| f(p, now))
        })
    }

    /// Records how the operation of pending action `id` ended, on the action (with its notice)
    /// and on its journal entry `journal`, in one transaction: neither is ever settled without
    /// the other.
    pub fn finish_journaled<A>(
        &self,
        id: &PendingId,
        outcome: Outcome,
        journal: &JournalId,
        stage: Stage,
        detail: Option<String>,
    ) -> Result<Pending<A>, StoreError>
    where
        A: Serialize + DeserializeOwned + PartialEq,
    {
        self.write(|c| {
            journal::update(c, journal, &self.owner, |e| {
                e.stage = stage;
                e.detail = detail;
            })?;
            let mut pending: Pending<A> = load(c, id)?;
            let was_closed = is_closed(&pending.state);
            pending.finish(outcome);
            save(c, &pending, was_closed)?;
            Ok(pending)
        })
    }

    /// Claims the right to attach `adapter`'s reference (say, a Discord card) to a pending action:
    /// true for exactly one caller, whichever process it runs in.
    pub fn claim_ref(&self, id: &PendingId, adapter: &str) -> Result<bool, StoreError> {
        let changed = self.write(|c| {
            c.execute(
                "INSERT INTO pending_refs (pending_id, adapter, value) VALUES (?1, ?2, '') ON CONFLICT DO NOTHING",
                args![id.as_str(), adapter],
            )
        })?;
        Ok(changed == 1)
    }

    /// Records `adapter`'s reference for a pending action.
    pub fn set_ref(&self, id: &PendingId, adapter: &str, value: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO pending_refs (pending_id, adapter, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (pending_id, adapter) DO UPDATE SET value = excluded.value",
                args![id.as_str(), adapter, value],
            )
        })?;
        Ok(())
    }

    /// `adapter`'s reference for a pending action, once set.
    pub fn get_ref(&self, id: &PendingId, adapter: &str) -> Result<Option<String>, StoreError> {
        let row = self.read(|c| {
            c.query_opt(
                "SELECT value FROM pending_refs WHERE pending_id = ?1 AND adapter = ?2",
                args![id.as_str(), adapter],
            )
        })?;
        let value: Option<String> = row.map(|r| r.get(0)).transpose()?;
        Ok(value.filter(|v| !v.is_empty()))
    }

    /// Pending actions still open (possibly past their expiry), oldest first.
    pub fn open_pending<A: DeserializeOwned>(&self) -> Result<Vec<Pending<A>>, StoreError> {
        let rows = self.read(|c| {
            c.query(
                "SELECT id, body FROM pending WHERE state = ?1 ORDER BY created_at",
                args![PendingState::Open.label()],
            )
        })?;
        rows.iter()
            .map(|r| from_body(&r.get::<String>(0)?, &r.get::<String>(1)?))
            .collect()
    }
}

/// Where a transaction's "now" comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Now {
    /// The database's clock (replicas' hosts' clocks drift).
    Database,
    /// This time (a host's clock, or a test's).
    Given(DateTime<Utc>),
}

/// Applies `f` to pending action `id` inside the caller's transaction and writes it back, with
/// the journal entry `f` returns.
fn apply<A, T>(
    c: &mut dyn Conn,
    id: &PendingId,
    owner: &super::Owner,
    f: impl FnOnce(&mut Pending<A>) -> (T, Option<JournalEntry>),
) -> Result<T, StoreError>
where
    A: Serialize + DeserializeOwned,
{
    let mut pending: Pending<A> = load(c, id)?;
    let was_closed = is_closed(&pending.state);
    let (out, entry) = f(&mut pending);
    save(c, &pending, was_closed)?;
    if let Some(entry) = entry {
        journal::insert(c, &entry, owner)?;
    }
    Ok(out)
}

/// Writes `p` back; if this write closes it, its one notice goes into the outbox with it.
fn save<A: Serialize>(
    conn: &mut dyn Conn,
    p: &Pending<A>,
    was_closed: bool,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE pending SET state = ?2, body = ?3 WHERE id = ?1",
        args![p.id.as_str(), p.state.label(), to_body(p)?],
    )?;
    if !was_closed && is_closed(&p.state) {
        let notice = Notice::PendingClosed {
            pending_id: p.id.to_string(),
        };
        outbox::enqueue(conn, &notice)?;
    }
    Ok(())
}

fn is_closed(state: &PendingState) -> bool {
    !matches!(state, PendingState::Open | PendingState::Executing)
}

fn load<A: DeserializeOwned>(
    conn: &mut dyn Conn,
    id: &PendingId,
) -> Result<Pending<A>, StoreError> {
    let row = conn
        .query_opt("SELECT body FROM pending WHERE id = ?1", args![id.as_str()])?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    from_body(id.as_str(), &row.get::<String>(0)?)
}

fn to_body<A: Serialize>(p: &Pending<A>) -> Result<String, StoreError> {
    serde_json::to_string(p).map_err(|e| StoreError::Corrupt {
        id: p.id.to_string(),
        detail: e.to_string(),
    })
}

fn from_body<A: DeserializeOwned>(id: &str, body: &str) -> Result<Pending<A>, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt {
        id: id.to_owned(),
        detail: e.to_string(),
    })
}
