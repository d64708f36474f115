//! MCP HTTP sessions (protocol 2025-11-25 and before) with the principal that opened each, so
//! that another process sharing the store takes a session over (after a restart, or on another
//! replica) for that principal only. The state kept is what the client sent in its `initialize`
//! (its name and capabilities, never a secret). A session is forgotten when it is closed, or
//! [`KEEP_SESSION`] after it was opened.

use super::sql::args;
use chrono::{DateTime, Utc};

use super::{Store, StoreError};

/// How long after it was opened a session can still be taken over by another process.
pub const KEEP_SESSION: chrono::Duration = chrono::Duration::days(7);
/// The most sessions kept per principal; opening one more forgets its oldest.
pub const SESSIONS_PER_PRINCIPAL: i64 = 1000;
/// The largest `initialize` state kept; a session with more (a client's own `experimental`
/// capabilities can be large) works in its process only.
pub const MAX_SESSION_STATE: usize = 16 * 1024;

/// A session as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The `[[mcp.http.clients]]` entry (or `anonymous`) that opened it.
    pub principal: String,
    /// The session's `initialize` parameters as JSON; `None` until its handshake finished.
    pub state: Option<String>,
}

fn forgotten_before(now: DateTime<Utc>) -> i64 {
    super::seconds_before(now, KEEP_SESSION)
}

impl Store {
    /// Records that `principal` opened session `id` at `now`, and forgets sessions opened longer
    /// than [`KEEP_SESSION`] ago. An id already recorded keeps its first principal.
    pub fn session_opened(
        &self,
        id: &str,
        principal: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "DELETE FROM mcp_sessions WHERE opened_at < ?1",
                args![forgotten_before(now)],
            )?;
            c.execute(
                "INSERT INTO mcp_sessions (id, principal, opened_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO NOTHING",
                args![id, principal, now.timestamp()],
            )?;
            c.execute(
                "DELETE FROM mcp_sessions WHERE principal = ?1 AND id NOT IN
                   (SELECT id FROM mcp_sessions WHERE principal = ?1
                    ORDER BY opened_at DESC, id DESC LIMIT ?2)",
                args![principal, SESSIONS_PER_PRINCIPAL],
            )
        })?;
        Ok(())
    }

    /// Keeps session `id`'s `initialize` parameters (JSON), for taking it over later; a state
    /// over [`MAX_SESSION_STATE`] bytes is not kept (false).
    pub fn session_state_saved(&self, id: &str, state: &str) -> Result<bool, StoreError> {
        if state.len() > MAX_SESSION_STATE {
            return Ok(false);
        }
        self.write(|c| {
            c.execute(
                "UPDATE mcp_sessions SET state = ?2 WHERE id = ?1",
                args![id, state],
            )
        })?;
        Ok(true)
    }

    /// Session `id`, unless it was closed or opened longer than [`KEEP_SESSION`] before `now`.
    pub fn session(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredSession>, StoreError> {
        let row = self.read(|c| {
            c.query_opt(
                "SELECT principal, state FROM mcp_sessions WHERE id = ?1 AND opened_at >= ?2",
                args![id, forgotten_before(now)],
            )
        })?;
        row.map(|r| {
            Ok(StoredSession {
                principal: r.get(0)?,
                state: r.get(1)?,
            })
        })
        .transpose()
    }

    /// Forgets session `id` (its client ended it).
    pub fn session_closed(&self, id: &str) -> Result<(), StoreError> {
        self.write(|c| c.execute("DELETE FROM mcp_sessions WHERE id = ?1", args![id]))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::testing::contract! {
    fn a_session_keeps_its_first_principal_and_state_until_closed(db) {
        let store = db.open();
        let now = Utc::now();
        assert_eq!(store.session("s1", now).unwrap(), None);
        store.session_opened("s1", "alice", now).unwrap();
        store.session_opened("s1", "mallory", now).unwrap();
        let opened = StoredSession {
            principal: "alice".into(),
            state: None,
        };
        assert_eq!(store.session("s1", now).unwrap(), Some(opened));
        assert!(store.session_state_saved("s1", r#"{"a":1}"#).unwrap());
        let huge = format!(r#"{{"x":"{}"}}"#, "x".repeat(MAX_SESSION_STATE));
        assert!(
            !store.session_state_saved("s1", &huge).unwrap(),
            "too large to keep"
        );
        assert_eq!(
            store.session("s1", now).unwrap().unwrap().state.as_deref(),
            Some(r#"{"a":1}"#)
        );
        store.session_closed("s1").unwrap();
        assert_eq!(store.session("s1", now).unwrap(), None);
    }
    fn old_sessions_are_forgotten(db) {
        let store = db.open();
        let now = Utc::now();
        store.session_opened("old", "alice", now).unwrap();
        let later = now + KEEP_SESSION + chrono::Duration::seconds(1);
        assert_eq!(store.session("old", later).unwrap(), None);
        store.session_opened("new", "alice", later).unwrap();
        let rows = store.count_rows("mcp_sessions");
        assert_eq!(rows, 1, "opening a session deletes the forgotten ones");
        store
            .session_opened("min", "alice", DateTime::<Utc>::MIN_UTC)
            .unwrap();
    }
    fn a_principal_keeps_at_most_its_newest_sessions(db) {
        let store = db.open();
        let now = Utc::now();
        for i in 0..=SESSIONS_PER_PRINCIPAL {
            store
                .session_opened(&format!("s{i}"), "alice", now)
                .unwrap();
        }
        store.session_opened("b", "bob", now).unwrap();
        assert_eq!(store.session("s0", now).unwrap(), None, "the oldest went");
        assert!(store.session("s1", now).unwrap().is_some());
        let last = format!("s{SESSIONS_PER_PRINCIPAL}");
        assert!(store.session(&last, now).unwrap().is_some());
        assert!(
            store.session("b", now).unwrap().is_some(),
            "another's are not counted"
        );
    }
    }
}
