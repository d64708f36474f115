//! The core: [`TokenService`] applies policy (read-only instances, protected names, edition
//! checks), runs destructive actions through the gate, hands new secrets to a delivery port and
//! audits every step. Adapters (CLI, MCP, Discord) call only this.

mod clock;
mod create;
mod error;
mod gated;
mod health;
mod interactions;
mod journal;
mod leases;
mod links;
mod listings;
mod pending;
mod protocol;
mod prune;
mod recover;
mod regenerate;
mod remedy;
mod remove;
mod run;
mod secret_file;
mod sessions;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

pub use clock::Clock;
pub use error::{ErrorKind, LostCreate, ServiceError};
pub use gated::{
    ApprovalResult, Executed, ExpiredToken, GateRequest, Operation, PendingRequest, Request,
};
pub use health::{READY_WITHIN, Readiness};
pub use journal::{LATE_WRITES, Ticket, pause_point};
pub use links::{
    LOCKOUT, LinkHeld, LinkKey, LinkPick, LinkState, MAX_PASSPHRASE_FAILURES, link_hash,
};
pub use protocol::{ApprovalPolicy, Channel, GatePolicy, NextStep, Opened};
pub use recover::RecoveryReport;
pub use remedy::Remedy;
pub use remove::Removal;
use remove::Sent;
pub use secret_file::{SecretFile, private_dir};

use crate::actor::Actor;
use crate::people::People;
use crate::store::{AuditEntry, AuditEvent, AuditOutcome, Store};
use crate::tokens::{
    BackendError, Database, Edition, ListFilter, Page, ProtectedNames, RawToken, ServerInfo, Token,
    TokenBackend, TokenName,
};

/// Policy for one instance.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    pub name: String,
    pub read_only: bool,
    pub protected: ProtectedNames,
    /// `None` to detect from `/ping`.
    pub edition: Option<Edition>,
    /// Where a regenerated operator secret is written; without it regeneration is refused.
    pub operator_token_file: Option<std::path::PathBuf>,
    /// The file tokenwarden reads its own token for this instance from, if any.
    pub credential_file: Option<std::path::PathBuf>,
}

struct Instance {
    settings: InstanceSettings,
    backend: Arc<dyn TokenBackend>,
    detected: OnceCell<ServerInfo>,
}

/// What a delivery port reports after handing over a secret, e.g. "sent by direct message".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryReceipt {
    /// How the secret went, for the audit log.
    pub text: String,
    /// Set when the secret waits to be collected (a one-time link) until then: the port reports
    /// the collection, or the lapse, through its [`Ticket`].
    pub waiting_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl DeliveryReceipt {
    /// The secret reached its owner.
    pub fn delivered(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            waiting_until: None,
        }
    }

    /// The secret waits for its owner until `until`.
    pub fn waiting(text: impl Into<String>, until: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            text: text.into(),
            waiting_until: Some(until),
        }
    }
}

/// Why a secret could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeliveryFailure(pub String);

/// The one way a new secret leaves the core: to its owner, through the adapter's channel.
#[async_trait]
pub trait SecretDelivery: Send + Sync {
    /// Hands `secret` over. A port that only parks it (a link) keeps `ticket` and reports
    /// through the service when it is collected or lapses.
    async fn deliver(
        &self,
        token: &Token,
        secret: &RawToken,
        ticket: &Ticket,
    ) -> Result<DeliveryReceipt, DeliveryFailure>;
}

/// A token created and delivered.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub token: Token,
    pub receipt: DeliveryReceipt,
}

/// What `check` learned about an instance.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub instance: String,
    pub url: String,
    pub server: ServerInfo,
    pub edition: Option<Edition>,
    /// Tokens seen on the first page (at most `CHECK_PAGE`).
    pub token_count: usize,
    /// Whether there are more than `token_count`.
    pub more_tokens: bool,
    pub read_only: bool,
}

/// A page of tokens, and the offset of the next page if there is one.
#[derive(Debug, Clone)]
pub struct TokenPage {
    pub tokens: Vec<Token>,
    pub next: Option<usize>,
}

/// The largest page a backend is asked for.
pub const MAX_PAGE: usize = 1000;
/// How many tokens `check` lists.
const CHECK_PAGE: usize = 1000;

/// The core service.
pub struct TokenService {
    instances: Vec<Instance>,
    default_instance: String,
    store: Store,
    clock: Clock,
    confirm_ttl: Duration,
    people: Arc<People>,
    ready_cache: Arc<health::ReadyCache>,
    link_key: Arc<LinkKey>,
    /// How long an operation whose answer was lost waits for a late write ([`LATE_WRITES`]).
    late_writes: Duration,
}

impl TokenService {
    /// `instances` pairs each instance's policy with its backend; the first is the default
    /// unless `default_instance` names another.
    pub fn new(
        instances: Vec<(InstanceSettings, Arc<dyn TokenBackend>)>,
        default_instance: Option<String>,
        store: Store,
        clock: Clock,
        confirm_ttl: Duration,
    ) -> Self {
        let default_instance = default_instance
            .or_else(|| instances.first().map(|(s, _)| s.name.clone()))
            .unwrap_or_default();
        let instances = instances
            .into_iter()
            .map(|(settings, backend)| Instance {
                settings,
                backend,
                detected: OnceCell::new(),
            })
            .collect();
        Self {
            instances,
            default_instance,
            store,
            clock,
            confirm_ttl,
            people: Arc::default(),
            ready_cache: Arc::default(),
            link_key: Arc::new(LinkKey::ephemeral()),
            late_writes: LATE_WRITES,
        }
    }

    /// The same service, sealing reveal links with `key` (shared by the replicas).
    pub fn with_link_key(mut self, key: LinkKey) -> Self {
        self.link_key = Arc::new(key);
        self
    }

    /// The same service, waiting `late_writes` instead of [`LATE_WRITES`] before it looks again
    /// at an operation whose answer was lost (tests settle such work at once with zero).
    pub fn with_late_writes(mut self, late_writes: Duration) -> Self {
        self.late_writes = late_writes;
        self
    }

    /// The same service, knowing which accounts are one person.
    pub fn with_people(mut self, people: People) -> Self {
        self.people = Arc::new(people);
        self
    }

    /// The `[[people]]` map.
    pub fn people(&self) -> &People {
        &self.people
    }

    /// `actor` with the person its account belongs to.
    pub fn identify(&self, actor: &Actor) -> Actor {
        self.people.identify(actor)
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// The time deadlines that replicas share (the gate's, remembered interactions) are set and
    /// checked by: on a store replicas share (PostgreSQL), the database's clock, since hosts'
    /// clocks drift; this host's otherwise.
    /// Where a store transaction reads the shared time, for deadlines checked when the action
    /// is had (see [`TokenService::shared_now`]).
    fn shared_clock(&self) -> crate::store::Now {
        if self.store.dialect() == crate::store::Dialect::Postgres && self.clock.is_wall() {
            crate::store::Now::Database
        } else {
            crate::store::Now::Given(self.now())
        }
    }

    async fn shared_now(&self) -> chrono::DateTime<chrono::Utc> {
        match self.shared_clock() {
            crate::store::Now::Given(now) => now,
            crate::store::Now::Database => {
                let store = self.store.clone();
                blocking(move || store.now()).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the store's clock cannot be read; using this host's");
                    self.now()
                })
            }
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The instances' policies, in configuration order.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceSettings> {
        self.instances.iter().map(|i| &i.settings)
    }

    pub fn default_instance(&self) -> &str {
        &self.default_instance
    }

    /// `name`, or the default instance's name when none was given.
    pub fn instance_or_default(&self, name: Option<String>) -> String {
        name.unwrap_or_else(|| self.default_instance.clone())
    }

    /// Whether `name` (or the default) is a configured instance, checked before anything runs.
    pub fn check_instance(&self, name: Option<&str>) -> Result<(), ServiceError> {
        self.instance(name).map(drop)
    }

    fn instance(&self, name: Option<&str>) -> Result<&Instance, ServiceError> {
        let name = name.unwrap_or(&self.default_instance);
        self.instances
            .iter()
            .find(|i| i.settings.name == name)
            .ok_or_else(|| ServiceError::UnknownInstance {
                name: name.to_owned(),
                known: self
                    .instances
                    .iter()
                    .map(|i| i.settings.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    fn backend_err(inst: &Instance) -> impl Fn(BackendError) -> ServiceError + '_ {
        move |source| ServiceError::Backend {
            instance: inst.settings.name.clone(),
            source,
        }
    }

    /// The instance's edition: configured, or detected once from `/ping`.
    pub async fn edition(&self, instance: Option<&str>) -> Result<Edition, ServiceError> {
        let inst = self.instance(instance)?;
        if let Some(e) = inst.settings.edition {
            return Ok(e);
        }
        let info = inst
            .detected
            .get_or_try_init(|| inst.backend.ping())
            .await
            .map_err(Self::backend_err(inst))?;
        info.edition.ok_or_else(|| ServiceError::EditionUnknown {
            instance: inst.settings.name.clone(),
        })
    }

    /// What the instance's `/ping` says.
    pub async fn server_info(&self, instance: Option<&str>) -> Result<ServerInfo, ServiceError> {
        let inst = self.instance(instance)?;
        inst.backend.ping().await.map_err(Self::backend_err(inst))
    }

    /// Pings the instance and lists a page of its tokens: proves the url, the token and its rights.
    pub async fn check(
        &self,
        actor: &Actor,
        instance: Option<&str>,
    ) -> Result<CheckReport, ServiceError> {
        let inst = self.instance(instance)?;
        let server = inst.backend.ping().await.map_err(Self::backend_err(inst))?;
        let page = Page {
            offset: 0,
            limit: CHECK_PAGE,
        };
        let listed = self
            .list_page(actor, instance, &ListFilter::default(), page)
            .await?;
        Ok(CheckReport {
            instance: inst.settings.name.clone(),
            url: inst.backend.url().to_owned(),
            edition: inst.settings.edition.or(server.edition),
            server,
            token_count: listed.tokens.len(),
            more_tokens: listed.next.is_some(),
            read_only: inst.settings.read_only,
        })
    }

    /// One page of the tokens matching `filter`, in name order, and where the next page starts.
    pub async fn list_page(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        filter: &ListFilter,
        page: Page,
    ) -> Result<TokenPage, ServiceError> {
        let inst = self.instance(instance)?;
        let now = self.now();
        let limit = page.limit.clamp(1, MAX_PAGE);
        // One row more than asked tells whether another page follows.
        let probe = Page {
            offset: page.offset,
            limit: limit + 1,
        };
        let mut tokens = inst
            .backend
            .list_tokens(filter, Some(probe), now)
            .await
            .map_err(Self::backend_err(inst))?;
        // A cursor beyond any listing (a hand-made one) has no next page, rather than an overflow.
        let next = (tokens.len() > limit)
            .then(|| page.offset.checked_add(limit))
            .flatten();
        tokens.truncate(limit);
        tokens.retain(|t| filter.matches(t, now));
        tracing::debug!(actor = %actor, instance = %inst.settings.name, count = tokens.len(), "listed tokens");
        Ok(TokenPage { tokens, next })
    }

    /// Every token matching `filter`, in name order, fetched page by page.
    pub async fn list(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        filter: &ListFilter,
    ) -> Result<Vec<Token>, ServiceError> {
        let mut all = Vec::new();
        let mut offset = 0;
        loop {
            let page = self
                .list_page(
                    actor,
                    instance,
                    filter,
                    Page {
                        offset,
                        limit: MAX_PAGE,
                    },
                )
                .await?;
            all.extend(page.tokens);
            match page.next {
                Some(next) => offset = next,
                None => return Ok(all),
            }
        }
    }

    /// The token named exactly `name`.
    pub async fn find(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        name: &TokenName,
    ) -> Result<Token, ServiceError> {
        let inst = self.instance(instance)?;
        self.find_named(actor, instance, name)
            .await?
            .ok_or_else(|| ServiceError::Backend {
                instance: inst.settings.name.clone(),
                source: BackendError::NotFound {
                    name: name.to_string(),
                },
            })
    }

    /// The token named exactly `name`, if one exists now. Names pass from deleted tokens to new
    /// ones, so its id tells whether it is still the token tokenwarden created.
    pub async fn find_named(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        name: &TokenName,
    ) -> Result<Option<Token>, ServiceError> {
        let filter = ListFilter {
            name_is: Some(name.to_string()),
            ..Default::default()
        };
        Ok(self
            .list(actor, instance, &filter)
            .await?
            .into_iter()
            .find(|t| t.name == name.as_str()))
    }

    /// The token with id `id`, if one exists now (InfluxDB finds tokens by name only, so this
    /// goes through the listing). For names an adapter cannot carry back intact.
    pub async fn find_by_id(
        &self,
        actor: &Actor,
        instance: Option<&str>,
        id: u64,
    ) -> Result<Option<Token>, ServiceError> {
        Ok(self
            .list(actor, instance, &ListFilter::default())
            .await?
            .into_iter()
            .find(|t| t.id == id))
    }

    /// Databases a resource token can name (InfluxDB's own `_internal` left out).
    pub async fn list_databases(
        &self,
        _actor: &Actor,
        instance: Option<&str>,
    ) -> Result<Vec<Database>, ServiceError> {
        let inst = self.instance(instance)?;
        let mut dbs = inst
            .backend
            .list_databases()
            .await
            .map_err(Self::backend_err(inst))?;
        dbs.retain(|d| !d.name.starts_with('_'));
        dbs.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(dbs)
    }

    /// The newest audit records.
    pub async fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, ServiceError> {
        let store = self.store.clone();
        blocking(move || store.recent_audit(limit)).await
    }

    fn may_mutate(&self, inst: &Instance) -> Result<(), ServiceError> {
        if inst.settings.read_only {
            return Err(ServiceError::ReadOnly {
                instance: inst.settings.name.clone(),
            });
        }
        Ok(())
    }

    /// On a store shared by replicas (PostgreSQL), a regenerated operator secret must land where
    /// every replica reads its credential: the instance's own `token_file`. Anywhere else (an
    /// environment variable, the config, another file), the other replicas would go on sending
    /// the old secret, which stopped working.
    fn may_regenerate_into(
        &self,
        inst: &Instance,
        file: &std::path::Path,
    ) -> Result<(), ServiceError> {
        if self.store.dialect() != crate::store::Dialect::Postgres {
            return Ok(());
        }
        let why = match inst.settings.credential_file.as_deref() {
            Some(own) if own == file => return Ok(()),
            Some(own) => format!(
                "the new secret would go to {}, not to {} which the replicas read",
                file.display(),
                own.display()
            ),
            None => {
                "the replicas read the operator token from an environment variable or the config, \
                     not from a file"
                    .to_owned()
            }
        };
        Err(ServiceError::UnsharedCredential {
            instance: inst.settings.name.clone(),
            why,
        })
    }

    /// Records an audit event (and a tracing event); failing to record stops the operation.
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        actor: &Actor,
        event: &str,
        inst: &Instance,
        token_name: Option<&str>,
        outcome: AuditOutcome,
        detail: Option<String>,
        pending_id: Option<String>,
    ) -> Result<(), ServiceError> {
        tracing::info!(
            actor = %actor, event, instance = %inst.settings.name, token = token_name.unwrap_or("-"),
            outcome = ?outcome, detail = detail.as_deref().unwrap_or(""), "audit"
        );
        let e = AuditEvent {
            at: self.now(),
            actor: actor.clone(),
            event: event.to_owned(),
            instance: Some(inst.settings.name.clone()),
            token_name: token_name.map(str::to_owned),
            outcome,
            detail,
            pending_id,
        };
        let store = self.store.clone();
        blocking(move || store.append(&e)).await.map(drop)
    }

    /// Records that `actor` was refused `op` on `inst`, and returns the refusal.
    async fn refuse(
        &self,
        actor: &Actor,
        op: &Operation,
        inst: &Instance,
        token_name: &str,
        e: ServiceError,
    ) -> ServiceError {
        let detail = Some(e.to_string());
        let event = op.event();
        match self
            .audit(
                actor,
                event,
                inst,
                Some(token_name),
                AuditOutcome::Refused,
                detail,
                None,
            )
            .await
        {
            Ok(()) => e,
            Err(audit) => audit,
        }
    }

    /// Records what already happened; a failure to record is logged, not returned.
    #[allow(clippy::too_many_arguments)]
    async fn audit_after(
        &self,
        actor: &Actor,
        event: &str,
        inst: &Instance,
        token_name: Option<&str>,
        outcome: AuditOutcome,
        detail: Option<String>,
        pending_id: Option<String>,
    ) {
        if let Err(e) = self
            .audit(actor, event, inst, token_name, outcome, detail, pending_id)
            .await
        {
            tracing::error!(error = %e, "could not write the audit log");
        }
    }
}

/// The audit outcome of a failed backend call.
fn outcome_of(e: &BackendError) -> AuditOutcome {
    match e {
        BackendError::OutcomeUnknown { .. } => AuditOutcome::Unknown,
        _ => AuditOutcome::Failed,
    }
}

/// Runs store work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
        .map_err(ServiceError::from)
}
