//! The outbox: notices written with the outcome they report, in the same transaction, and sent
//! by whichever process runs the adapter that delivers them (the CLI may settle an action, but it
//! never talks to Discord). One notice per key, so an action never reports two outcomes; a
//! sender claims a notice, sends it, then marks it sent, so each is sent at least once.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::sql::{Conn, args};
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

pub(super) fn enqueue(conn: &mut dyn Conn, notice: &Notice) -> Result<(), StoreError> {
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
        args![notice.key(), pending_id, body, Utc::now().to_rfc3339()],
    )?;
    Ok(())
}

impl Store {
    /// Queues a notice (a second one with the same key is dropped).
    pub fn outbox_enqueue(&self, notice: &Notice) -> Result<(), StoreError> {
        self.write(|c| enqueue(c, notice))
    }

    /// Claims up to `limit` unsent notices nobody else is sending (leases by the database's
    /// clock).
    pub fn outbox_claim(&self, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let me = self.owner.to_string();
        let lease = i64::try_from(LEASE.as_millis()).unwrap_or(30_000);
        self.write(|c| {
            let now = c.now_ms()?;
            let rows = c.query(
                "SELECT key, owner, lease_until, body FROM outbox WHERE sent_at IS NULL ORDER BY created_at",
                &[],
            )?;
            let mut out = Vec::new();
            for row in rows {
                if out.len() >= limit {
                    break;
                }
                let key: String = row.get(0)?;
                let owner: Option<String> = row.get(1)?;
                let lease_until: Option<i64> = row.get(2)?;
                let free = owner.is_none()
                    || lease_until.is_none_or(|l| l < now)
                    || owner
                        .as_deref()
                        .and_then(Owner::parse)
                        .is_some_and(|o| o.is_certainly_dead());
                if !free {
                    continue;
                }
                let Ok(notice) = serde_json::from_str::<Notice>(&row.get::<String>(3)?) else {
                    c.execute(
                        "UPDATE outbox SET sent_at = ?2 WHERE key = ?1",
                        args![&key, "unreadable"],
                    )?;
                    continue;
                };
                c.execute(
                    "UPDATE outbox SET owner = ?2, lease_until = ?3 WHERE key = ?1",
                    args![&key, &me, now + lease],
                )?;
                out.push(OutboxItem { key, notice });
            }
            Ok(out)
        })
    }

    /// Marks a claimed notice sent.
    pub fn outbox_sent(&self, key: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "UPDATE outbox SET sent_at = ?2 WHERE key = ?1",
                args![key, Utc::now().to_rfc3339()],
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::testing::contract! {
    fn one_notice_per_key_sent_once_claimed(db) {
        let store = db.open();
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
}
