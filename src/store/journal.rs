//! The journal of operations: every create, delete, prune and regeneration is written as an
//! intent before InfluxDB is called, then moved through its stages to an outcome. The process
//! doing the work holds a lease it renews; an entry whose holder died or whose lease lapsed is
//! claimed by exactly one other process, which settles it.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::sql::{Conn, args};
use super::{LEASE, Owner, Store, StoreError};
use crate::actor::Actor;
use crate::tokens::{TokenName, TokenRef};

/// An unguessable journal entry id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct JournalId(String);

impl JournalId {
    pub fn random() -> Self {
        Self(crate::gate::PendingId::random().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for JournalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalOp {
    /// Creating `name`. `highest_before` is the highest token id when the intent was written:
    /// a token holding the name with a higher id was made after it, by this create.
    Create {
        name: TokenName,
        highest_before: Option<u64>,
        id: Option<u64>,
    },
    /// Deleting exactly `target`, released by pending action `pending_id` of the entry.
    Delete { target: TokenRef },
    /// Deleting exactly these expired tokens; `settled` lists the ids already dealt with.
    Prune {
        targets: Vec<TokenRef>,
        #[serde(default)]
        settled: Vec<u64>,
    },
    /// Regenerating the operator token, whose new secret goes to `file` before anything else.
    /// `before` fingerprints what the file held just before InfluxDB was called (a SHA-256, or
    /// `absent`): a file still holding that did not receive a new secret.
    Regenerate {
        file: PathBuf,
        #[serde(default)]
        before: Option<String>,
    },
}

impl JournalOp {
    fn label(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Delete { .. } => "delete",
            Self::Prune { .. } => "prune",
            Self::Regenerate { .. } => "regenerate",
        }
    }
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Written; InfluxDB may or may not have been called.
    Intent,
    /// Created: the id is known, the secret not yet handed over.
    Created,
    /// The secret is being handed over now (a DM sent, a page served): a crash here leaves a doubt.
    Delivering,
    /// The secret waits behind a one-time link until `due_at`.
    AwaitingLink,
    /// Finished as intended.
    Done,
    /// Finished without effect.
    Failed,
    /// The created token was deleted again: nobody could be sure to hold its secret.
    Withdrawn,
    /// Finished, but what happened cannot be known; the detail says what to check.
    Unknown,
}

impl Stage {
    pub fn label(self) -> &'static str {
        match self {
            Self::Intent => "intent",
            Self::Created => "created",
            Self::Delivering => "delivering",
            Self::AwaitingLink => "awaiting_link",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Withdrawn => "withdrawn",
            Self::Unknown => "unknown",
        }
    }

    /// Whether nothing more will happen to the entry.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Self::Done | Self::Failed | Self::Withdrawn | Self::Unknown
        )
    }
}

/// One journal entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub id: JournalId,
    pub instance: String,
    pub actor: Actor,
    pub op: JournalOp,
    pub stage: Stage,
    /// The pending action that released it, for gated operations.
    pub pending_id: Option<String>,
    /// For [`Stage::AwaitingLink`]: when the link lapses. For a create whose answer was lost:
    /// the end of its watch (a token of its name made before then is its own).
    pub due_at: Option<DateTime<Utc>>,
    /// For a create whose answer was lost: what the look right after found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostAnswer>,
    pub detail: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The tokens whose DELETE was sent under this entry, and when (by the store's clock). Such
    /// a request may still land late, so recovery never sends it again: InfluxDB deletes by
    /// name, and a DELETE landing late deletes whichever token holds the name by then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sent: Vec<SentDelete>,
}

/// A DELETE sent for token `id` at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentDelete {
    pub id: u64,
    pub at: DateTime<Utc>,
}

/// What tokenwarden found right after InfluxDB's answer to a create was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LostAnswer {
    /// No token of its name: one that appears before the watch ends was made late.
    NoneFound,
    /// InfluxDB could not be asked, or deleting the token it had made failed.
    Unsettled,
}

/// An unsettled create whose answer was lost: its name stays reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateInDoubt {
    /// The end of its watch, while still ahead (by the database's clock); `None` once it has
    /// passed (recovery settles it at its next round) or when it has none.
    pub until: Option<DateTime<Utc>>,
}

impl JournalEntry {
    pub fn new(instance: &str, actor: &Actor, op: JournalOp, now: DateTime<Utc>) -> Self {
        Self {
            id: JournalId::random(),
            instance: instance.to_owned(),
            actor: actor.clone(),
            op,
            stage: Stage::Intent,
            pending_id: None,
            due_at: None,
            lost: None,
            detail: None,
            created_at: now,
            sent: Vec::new(),
        }
    }
}

/// Entries claimed for settling, and what the store could not read.
#[derive(Debug, Default)]
pub struct Claimed {
    pub entries: Vec<JournalEntry>,
    pub unreadable: Vec<StoreError>,
}

/// How long past its due time an awaiting link may be left to a live owner before another
/// process takes it over (the owner withdraws it itself, normally at once).
const DUE_GRACE_MS: i64 = 60_000;

fn lease_ms() -> i64 {
    i64::try_from(LEASE.as_millis()).unwrap_or(30_000)
}

fn body(e: &JournalEntry) -> Result<String, StoreError> {
    serde_json::to_string(e).map_err(|err| StoreError::Corrupt {
        id: format!("journal {}", e.id),
        detail: err.to_string(),
    })
}

fn parse(id: &str, text: &str) -> Result<JournalEntry, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        id: format!("journal {id}"),
        detail: err.to_string(),
    })
}

/// Applies `f` to entry `id` inside the caller's transaction and renews `owner`'s lease on it.
/// Another holder's entry is [`StoreError::LostClaim`]; a settled one is never changed again.
pub(super) fn update(
    conn: &mut dyn Conn,
    id: &JournalId,
    owner: &Owner,
    f: impl FnOnce(&mut JournalEntry),
) -> Result<JournalEntry, StoreError> {
    let row = conn
        .query_opt(
            "SELECT owner, body FROM journal WHERE id = ?1",
            args![id.as_str()],
        )?
        .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
    let holder: String = row.get(0)?;
    if holder != owner.to_string() {
        return Err(StoreError::LostClaim { id: id.to_string() });
    }
    let mut e = parse(id.as_str(), &row.get::<String>(1)?)?;
    if e.stage.is_settled() {
        return Err(StoreError::Settled { id: id.to_string() });
    }
    f(&mut e);
    let now = conn.now_ms()?;
    conn.execute(
        "UPDATE journal SET stage = ?2, settled = ?3, lease_until = ?4, due_at = ?5, body = ?6, updated_at = ?7
         WHERE id = ?1",
        args![
            id.as_str(),
            e.stage.label(),
            e.stage.is_settled(),
            now + lease_ms(),
            e.due_at.map(|d| d.timestamp_millis()),
            body(&e)?,
            Utc::now().to_rfc3339(),
        ],
    )?;
    Ok(e)
}

/// Writes a new entry held by `owner`.
pub(super) fn insert(
    conn: &mut dyn Conn,
    e: &JournalEntry,
    owner: &Owner,
) -> Result<(), StoreError> {
    let now = conn.now_ms()?;
    conn.execute(
        "INSERT INTO journal (id, op, instance, stage, settled, owner, lease_until, due_at, pending_id, body, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        args![
            e.id.as_str(),
            e.op.label(),
            &e.instance,
            e.stage.label(),
            e.stage.is_settled(),
            owner.to_string(),
            now + lease_ms(),
            e.due_at.map(|d| d.timestamp_millis()),
            e.pending_id.as_deref(),
            body(e)?,
            Utc::now().to_rfc3339(),
        ],
    )?;
    Ok(())
}

impl Store {
    /// Writes the intent of an operation, held by this process.
    pub fn journal_begin(&self, e: &JournalEntry) -> Result<(), StoreError> {
        self.write(|c| insert(c, e, &self.owner))
    }

    /// Applies `f` to entry `id` and renews this process's lease on it. Fails with
    /// [`StoreError::LostClaim`] if another process took the entry over meanwhile.
    pub fn journal_update(
        &self,
        id: &JournalId,
        f: impl FnOnce(&mut JournalEntry),
    ) -> Result<JournalEntry, StoreError> {
        self.write(|c| update(c, id, &self.owner, f))
    }

    /// Gives entry `id` up for recovery: no process holds it, and any may claim it once `after`
    /// has passed (so InfluxDB has time to apply a late request before anyone looks).
    pub fn journal_release(
        &self,
        id: &JournalId,
        after: std::time::Duration,
    ) -> Result<(), StoreError> {
        let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2);
        self.write(|c| {
            let now = c.now_ms()?;
            c.execute(
                "UPDATE journal SET owner = '', lease_until = ?3 WHERE id = ?1 AND owner = ?2",
                args![
                    id.as_str(),
                    self.owner.to_string(),
                    now.saturating_add(after)
                ],
            )
        })?;
        Ok(())
    }

    /// Gives create `id`, whose answer was lost, up for recovery after watching it for `after`
    /// (by the database's clock): its `due_at` is set to the end of the watch rounded up to a
    /// whole second, which is returned, and `lost` to what the look right after found.
    pub fn journal_watch(
        &self,
        id: &JournalId,
        after: std::time::Duration,
        lost: LostAnswer,
    ) -> Result<DateTime<Utc>, StoreError> {
        let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2);
        self.write(|c| {
            let end = c.now_ms()?.saturating_add(after);
            let until = super::sql::time_of(end.saturating_add(999) / 1000 * 1000)?;
            update(c, id, &self.owner, |e| {
                e.due_at = Some(until);
                e.lost = Some(lost);
            })?;
            c.execute(
                "UPDATE journal SET owner = '', lease_until = ?2 WHERE id = ?1",
                args![id.as_str(), end],
            )?;
            Ok(until)
        })
    }

    /// Renews this process's lease on every unsettled entry it holds; the number renewed.
    pub fn journal_renew(&self) -> Result<usize, StoreError> {
        self.write(|c| {
            let now = c.now_ms()?;
            c.execute(
                "UPDATE journal SET lease_until = ?2 WHERE owner = ?1 AND settled = 0",
                args![self.owner.to_string(), now + lease_ms()],
            )
        })
    }

    /// Claims up to `limit` unsettled entries that nobody is working on: their holder died (a
    /// process on this host that no longer exists), their lease lapsed (or was given up), or
    /// their link is long past due. This process's own live work is never claimed; each entry
    /// goes to exactly one claimer.
    pub fn journal_claim(&self, instances: &[String], limit: usize) -> Result<Claimed, StoreError> {
        let me = self.owner.to_string();
        self.write(|c| {
            let now = c.now_ms()?;
            let rows = c.query(
                "SELECT id, instance, owner, lease_until, due_at, body FROM journal
                 WHERE settled = 0 ORDER BY created_at",
                &[],
            )?;
            let shared = super::links::shared_live(c, now)?;
            let mut claimed = Claimed::default();
            for row in rows {
                if claimed.entries.len() >= limit {
                    break;
                }
                let id: String = row.get(0)?;
                let instance: String = row.get(1)?;
                // A process configured without this instance cannot ask it anything.
                if !instances.contains(&instance) {
                    continue;
                }
                let owner: String = row.get(2)?;
                let lease_until: i64 = row.get(3)?;
                let due_at: Option<i64> = row.get(4)?;
                let holder_gone = lease_until <= now
                    || Owner::parse(&owner).is_some_and(|o| o.is_certainly_dead());
                // A link any process can open outlives its maker: its token waits for its time.
                let link_waits = shared.contains(&id);
                let free =
                    (holder_gone && !link_waits) || due_at.is_some_and(|d| d + DUE_GRACE_MS < now);
                if !free {
                    continue;
                }
                super::links::forget_for(c, &id)?;
                c.execute(
                    "UPDATE journal SET owner = ?2, lease_until = ?3 WHERE id = ?1",
                    args![&id, &me, now + lease_ms()],
                )?;
                match parse(&id, &row.get::<String>(5)?) {
                    Ok(e) => claimed.entries.push(e),
                    Err(err) => claimed.unreadable.push(err),
                }
            }
            Ok(claimed)
        })
    }

    /// An unsettled create of `name` on `instance` with no token id yet: its answer was lost,
    /// so a token of that name made now could be mistaken for it.
    pub fn journal_create_in_doubt(
        &self,
        instance: &str,
        name: &TokenName,
    ) -> Result<Option<CreateInDoubt>, StoreError> {
        self.read(|c| {
            let d = c.dialect();
            let sql = format!(
                "SELECT due_at FROM journal WHERE op = 'create' AND instance = ?1 AND settled = 0
                 AND {} = ?2 AND {} IS NULL ORDER BY COALESCE(due_at, 0) DESC LIMIT 1",
                d.json_text("body", "op", "name"),
                d.json_text("body", "op", "id"),
            );
            let Some(row) = c.query_opt(&sql, args![instance, name.as_str()])? else {
                return Ok(None);
            };
            let due: Option<i64> = row.get(0)?;
            let now = c.now_ms()?;
            let until = match due.filter(|&d| d > now) {
                Some(d) => Some(super::sql::time_of(d)?),
                None => None,
            };
            Ok(Some(CreateInDoubt { until }))
        })
    }

    /// Whether a create other than `except` on `instance` recorded token `id` as its own.
    pub fn journal_id_recorded(
        &self,
        instance: &str,
        id: u64,
        except: &JournalId,
    ) -> Result<bool, StoreError> {
        self.read(|c| {
            let sql = format!(
                "SELECT EXISTS (SELECT 1 FROM journal WHERE op = 'create' AND instance = ?1 AND id <> ?3
                 AND {} = ?2)",
                c.dialect().json_text("body", "op", "id"),
            );
            c.scalar(&sql, args![instance, id.to_string(), except.as_str()])
        })
    }

    /// An entry as stored.
    pub fn journal_get(&self, id: &JournalId) -> Result<JournalEntry, StoreError> {
        let row = self
            .read(|c| c.query_opt("SELECT body FROM journal WHERE id = ?1", args![id.as_str()]))?
            .ok_or_else(|| StoreError::NotFound { id: id.to_string() })?;
        parse(id.as_str(), &row.get::<String>(0)?)
    }

    /// Every unsettled entry, oldest first, whoever holds it.
    pub fn journal_unsettled(&self) -> Result<Vec<JournalEntry>, StoreError> {
        let rows = self.read(|c| {
            c.query(
                "SELECT id, body FROM journal WHERE settled = 0 ORDER BY created_at",
                &[],
            )
        })?;
        rows.iter()
            .map(|r| parse(&r.get::<String>(0)?, &r.get::<String>(1)?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> JournalEntry {
        JournalEntry::new(
            "local",
            &Actor::system(),
            JournalOp::Create {
                name: TokenName::parse("x").unwrap(),
                highest_before: Some(3),
                id: None,
            },
            Utc::now(),
        )
    }

    fn dead_owner() -> Owner {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        Owner::local(pid)
    }

    crate::store::testing::contract! {
    fn live_work_is_left_to_its_holder_and_dead_work_is_claimed_once(db) {
        let store = db.open();
        let mine = entry();
        store.journal_begin(&mine).unwrap();
        let other = store.as_owner(Owner::parse("far-host:1:abc").unwrap());
        assert!(
            other
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries
                .is_empty(),
            "a live lease is respected"
        );
        let dead = store.as_owner(dead_owner());
        let orphan = entry();
        dead.journal_begin(&orphan).unwrap();
        let first = store.journal_claim(&["local".to_owned()], 10).unwrap();
        assert_eq!(first.entries, vec![orphan.clone()]);
        assert!(
            store
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries
                .is_empty(),
            "claimed once"
        );
        let taken = dead.journal_update(&orphan.id, |e| e.stage = Stage::Done);
        assert!(
            matches!(taken, Err(StoreError::LostClaim { .. })),
            "{taken:?}"
        );
        let settled = store
            .journal_update(&orphan.id, |e| e.stage = Stage::Withdrawn)
            .unwrap();
        assert_eq!(settled.stage, Stage::Withdrawn);
        let unsettled = store.journal_unsettled().unwrap();
        assert_eq!(unsettled, vec![mine.clone()]);
        assert!(
            store
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries
                .is_empty(),
            "own live work stays"
        );
        store
            .journal_release(&mine.id, std::time::Duration::from_secs(3600))
            .unwrap();
        assert!(
            store
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries
                .is_empty(),
            "not before its time"
        );
        store
            .journal_release(&mine.id, std::time::Duration::ZERO)
            .unwrap();
        assert!(
            store
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries
                .is_empty(),
            "released by its holder only"
        );
        let given_up = entry();
        store.journal_begin(&given_up).unwrap();
        store
            .journal_release(&given_up.id, std::time::Duration::ZERO)
            .unwrap();
        let later = store.as_owner(Owner::parse("far-host:2:def").unwrap());
        assert_eq!(
            later
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries,
            vec![given_up.clone()]
        );
        later
            .journal_release(&given_up.id, std::time::Duration::ZERO)
            .unwrap();
        assert_eq!(
            later
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries,
            vec![given_up],
            "work a process gave up, it may take up again itself"
        );
    }

    fn a_watched_create_reserves_its_name_until_a_whole_second_and_is_claimed_then(db) {
        let store = db.open();
        let name = TokenName::parse("x").unwrap();
        assert_eq!(store.journal_create_in_doubt("local", &name).unwrap(), None);
        let lost = entry();
        store.journal_begin(&lost).unwrap();
        assert_eq!(
            store.journal_create_in_doubt("local", &name).unwrap(),
            Some(CreateInDoubt { until: None }),
            "in doubt while its answer is awaited, with no end yet"
        );
        let before = Utc::now();
        let until = store
            .journal_watch(&lost.id, std::time::Duration::from_secs(60), LostAnswer::NoneFound)
            .unwrap();
        assert_eq!(until.timestamp_subsec_millis(), 0, "{until}");
        assert!(until > before + chrono::Duration::seconds(59), "{until}");
        let e = store.journal_get(&lost.id).unwrap();
        assert_eq!((e.due_at, e.lost), (Some(until), Some(LostAnswer::NoneFound)));
        assert_eq!(
            store.journal_create_in_doubt("local", &name).unwrap(),
            Some(CreateInDoubt { until: Some(until) })
        );
        assert_eq!(
            store
                .journal_create_in_doubt("other", &name)
                .unwrap(),
            None
        );
        assert!(
            store
                .journal_claim(&["local".to_owned()], 10)
                .unwrap()
                .entries
                .is_empty(),
            "nobody looks again before the watch ends"
        );
        let ended = entry();
        store.journal_begin(&ended).unwrap();
        store
            .journal_watch(&ended.id, std::time::Duration::ZERO, LostAnswer::Unsettled)
            .unwrap();
        let claimed = store.journal_claim(&["local".to_owned()], 10).unwrap();
        assert_eq!(
            claimed.entries.iter().map(|e| &e.id).collect::<Vec<_>>(),
            [&ended.id],
            "a watch that has ended is claimed"
        );
    }
    }
}
