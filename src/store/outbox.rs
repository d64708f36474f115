//! The outbox: notices written with the outcome they report, in the same transaction, and sent
//! by whichever process runs the adapter that delivers them (the CLI may settle an action, but it
//! never talks to Discord). One notice per key, so an action never reports two outcomes; a
//! sender claims a notice, sends it, then marks it sent, so each is sent at least once.

use chrono::Utc;
use rusqlite::{Connection, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use super::{LEASE, Owner, Store, StoreError};
use crate::actor::Actor;

/// Something a person should be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum Notice {
    /// A pending action closed: its card shows the outcome, and its requester is told once.
    PendingClosed { pending_id: String },
    /// A new token was deleted again because its secret may not have reached `owner`.
    Withdrawn {
        journal_id: String,
        owner: Actor,
        instance: String,
        name: String,
        id: u64,
        why: String,
    },
}

impl Notice {
    /// One notice per key.
    pub fn key(&self) -> String {
        match self {
            Self::PendingClosed { pending_id } => format!("closed:{pending_id}"),
            Self::Withdrawn { journal_id, .. } => format!("withdrawn:{journal_id}"),
        }
    }
}

/// A notice claimed for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxItem {
    pub key: String,
    pub notice: Notice,
}

pub(super) fn enqueue(conn: &Connection, notice: &Notice) -> Result<(), StoreError> {
    let body = serde_json::to_string(notice).map_err(|e| StoreError::Corrupt {
        id: notice.key(),
        detail: e.to_string(),
    })?;
    let pending_id = match notice {
        Notice::PendingClosed { pending_id } => Some(pending_id.as_str()),
        Notice::Withdrawn { .. } => None,
    };
    conn.execute(
        "INSERT INTO outbox (key, pending_id, body, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (key) DO NOTHING",
        params![notice.key(), pending_id, body, Utc::now().to_rfc3339()],
    )?;
    Ok(())
}

impl Store {
    /// Queues a notice (a second one with the same key is dropped).
    pub fn outbox_enqueue(&self, notice: &Notice) -> Result<(), StoreError> {
        enqueue(&self.conn(), notice)
    }

    /// Claims up to `limit` unsent notices nobody else is sending.
    pub fn outbox_claim(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = Utc::now().timestamp_millis();
        let me = self.owner.to_string();
        let rows: Vec<(String, Option<String>, Option<i64>, String)> = {
            let mut stmt = tx.prepare(
                "SELECT key, owner, lease_until, body FROM outbox WHERE sent_at IS NULL ORDER BY created_at",
            )?;
            let mapped =
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            mapped.collect::<Result<_, _>>()?
        };
        let lease = i64::try_from(LEASE.as_millis()).unwrap_or(30_000);
        let mut out = Vec::new();
        for (key, owner, lease_until, body) in rows {
            if out.len() >= limit {
                break;
            }
            let free = owner.is_none()
                || lease_until.is_none_or(|l| l < now)
                || owner
                    .as_deref()
                    .and_then(Owner::parse)
                    .is_some_and(|o| o.is_certainly_dead());
            if !free {
                continue;
            }
            let Ok(notice) = serde_json::from_str::<Notice>(&body) else {
                tx.execute(
                    "UPDATE outbox SET sent_at = ?2 WHERE key = ?1",
                    params![key, "unreadable"],
                )?;
                continue;
            };
            tx.execute(
                "UPDATE outbox SET owner = ?2, lease_until = ?3 WHERE key = ?1",
                params![key, me, now + lease],
            )?;
            out.push(OutboxItem { key, notice });
        }
        tx.commit()?;
        Ok(out)
    }

    /// Marks a claimed notice sent.
    pub fn outbox_sent(&self, key: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE outbox SET sent_at = ?2 WHERE key = ?1",
            params![key, Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_notice_per_key_sent_once_claimed() {
        let store = Store::open_in_memory().unwrap();
        let n = Notice::PendingClosed {
            pending_id: "p".into(),
        };
        store.outbox_enqueue(&n).unwrap();
        store.outbox_enqueue(&n).unwrap();
        let claimed = store.outbox_claim(10).unwrap();
        assert_eq!(claimed.len(), 1);
        let other = store.as_owner(Owner::parse("far-host:1:x").unwrap());
        assert!(
            other.outbox_claim(10).unwrap().is_empty(),
            "claimed by one sender"
        );
        store.outbox_sent(&claimed[0].key).unwrap();
        assert!(store.outbox_claim(10).unwrap().is_empty(), "sent");
    }
}
