//! Forgetting finished work: settled journal entries, notices already posted, and closed
//! pending actions, once they are older than a cutoff. Nothing unfinished is ever pruned, and
//! the audit log is never touched (it is append-only).

use super::sql::args;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreError};

/// How long finished work is kept: long enough for `get_pending_action` and an operator's
/// questions about last month.
pub const KEEP_FINISHED: chrono::Duration = chrono::Duration::days(30);

/// Rows removed by one pruning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pruned {
    pub operations: usize,
    pub notices: usize,
    pub actions: usize,
}

impl Store {
    /// Removes finished work older than `before`, in one transaction.
    pub fn prune_finished(&self, before: DateTime<Utc>) -> Result<Pruned, StoreError> {
        let cutoff = before.to_rfc3339();
        self.write(|c| {
            let operations = c.execute(
                "DELETE FROM journal WHERE settled = 1 AND updated_at < ?1",
                args![&cutoff],
            )?;
            let notices = c.execute(
                "DELETE FROM outbox WHERE sent_at IS NOT NULL AND created_at < ?1",
                args![&cutoff],
            )?;
            // A closed action whose time ran out long ago, and that no unsettled operation or
            // unsent notice still names.
            let actions = c.execute(
                "DELETE FROM pending WHERE state NOT IN ('open', 'executing') AND expires_at < ?1
                   AND id NOT IN (SELECT pending_id FROM journal WHERE pending_id IS NOT NULL)
                   AND id NOT IN (SELECT pending_id FROM outbox WHERE pending_id IS NOT NULL)",
                args![&cutoff],
            )?;
            c.execute(
                "DELETE FROM pending_refs WHERE pending_id NOT IN (SELECT id FROM pending)",
                &[],
            )?;
            Ok(Pruned {
                operations,
                notices,
                actions,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::args;

    fn count(store: &Store, table: &str) -> i64 {
        store.count_rows(table)
    }

    crate::store::testing::contract! {
    fn only_finished_work_older_than_the_cutoff_is_forgotten(db) {
        let store = db.open();
        let now = Utc::now();
        let old = (now - chrono::Duration::days(60)).to_rfc3339();
        let recent = now.to_rfc3339();
        {
            let mut conn = store.conn();
            for (id, settled, at, pending) in [
                ("j-old-settled", 1, &old, Some("p-old-closed")),
                ("j-old-running", 0, &old, None),
                ("j-new-settled", 1, &recent, Some("p-new-closed")),
            ] {
                conn.execute(
                    "INSERT INTO journal (id, op, instance, stage, settled, owner, lease_until,
                         pending_id, body, created_at, updated_at)
                     VALUES (?1, 'delete', 'local', 'x', ?2, 'o', 0, ?4, '{}', ?3, ?3)",
                    args![id, settled, at, pending],
                )
                .unwrap();
            }
            for (key, sent, at) in [
                ("n-old-sent", Some(old.as_str()), &old),
                ("n-old-unsent", None, &old),
                ("n-unreadable", Some("unreadable"), &old),
            ] {
                conn.execute(
                    "INSERT INTO outbox (key, body, created_at, sent_at) VALUES (?1, '{}', ?3, ?2)",
                    args![key, sent, at],
                )
                .unwrap();
            }
            for (id, state, expires) in [
                ("p-old-closed", "succeeded", &old),
                ("p-old-rejected", "rejected", &old),
                ("p-old-open", "open", &old),
                ("p-new-closed", "succeeded", &old),
            ] {
                conn.execute(
                    "INSERT INTO pending (id, state, created_at, expires_at, body)
                     VALUES (?1, ?2, ?3, ?3, '{}')",
                    args![id, state, expires],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO pending_refs (pending_id, adapter, value) VALUES (?1, 'discord', 'm')",
                    args![id],
                )
                .unwrap();
            }
        }
        let pruned = store
            .prune_finished(now - chrono::Duration::days(30))
            .unwrap();
        assert_eq!(
            pruned,
            Pruned {
                operations: 1,
                notices: 2,
                actions: 2
            }
        );
        assert_eq!(
            count(&store, "journal"),
            2,
            "running and recent entries stay"
        );
        assert_eq!(count(&store, "outbox"), 1, "an unsent notice stays");
        let left: Vec<String> = store
            .conn()
            .query("SELECT id FROM pending ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(
            left,
            ["p-new-closed", "p-old-open"],
            "an open action and one a recent entry names stay"
        );
        assert_eq!(count(&store, "pending_refs"), 2);
        assert_eq!(
            store
                .prune_finished(now - chrono::Duration::days(30))
                .unwrap(),
            Pruned::default()
        );
    }
    }
}
