//! Forgetting finished work: settled journal entries, notices already posted, and closed
//! pending actions, once they are older than a cutoff. The one unfinished thing pruned is a
//! Discord notice nobody sent in all that time (no bot runs on this store): kept, it would also
//! keep its action, and the store would grow with every action closed. The audit log is never
//! touched (it is append-only).

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
    /// Notices nobody sent before the cutoff, dropped unsent.
    pub unsent_notices: usize,
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
            let unsent_notices = c.execute(
                "DELETE FROM outbox WHERE sent_at IS NULL AND created_at < ?1",
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
                unsent_notices,
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
            // The old unsent notice names an old rejected action, which goes with it; the
            // recent one names an old closed action, which stays for it.
            for (key, sent, at, pending) in [
                ("n-old-sent", Some(old.as_str()), &old, None),
                ("n-old-unsent", None, &old, Some("p-old-rejected")),
                ("n-new-unsent", None, &recent, Some("p-old-noticed")),
                ("n-unreadable", Some("unreadable"), &old, None),
            ] {
                conn.execute(
                    "INSERT INTO outbox (key, pending_id, body, created_at, sent_at)
                     VALUES (?1, ?4, '{}', ?3, ?2)",
                    args![key, sent, at, pending],
                )
                .unwrap();
            }
            for (id, state, expires) in [
                ("p-old-closed", "succeeded", &old),
                ("p-old-rejected", "rejected", &old),
                ("p-old-noticed", "failed", &old),
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
                unsent_notices: 1,
                actions: 2
            }
        );
        assert_eq!(
            count(&store, "journal"),
            2,
            "running and recent entries stay"
        );
        assert_eq!(
            count(&store, "outbox"),
            1,
            "a recent unsent notice stays; one nobody sent in the window goes"
        );
        let left: Vec<String> = store
            .conn()
            .query("SELECT id FROM pending ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0).unwrap())
            .collect();
        assert_eq!(
            left,
            ["p-new-closed", "p-old-noticed", "p-old-open"],
            "an open action, one a recent entry names and one a recent notice names stay"
        );
        assert_eq!(count(&store, "pending_refs"), 3);
        assert_eq!(
            store
                .prune_finished(now - chrono::Duration::days(30))
                .unwrap(),
            Pruned::default()
        );
    }
    }
}
