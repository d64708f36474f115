//! One-time reveal links: a new secret waits behind an unguessable URL, sealed in the store
//! (see [`crate::service::LinkKey`]) so that the link opens on whichever replica serves it;
//! opening the link and pressing the button shows it once, after which the link answers 410. A
//! link that lapses unopened withdraws its token, so no token exists that nobody holds: here, at
//! its time, in the process that made it; and in any replica's recovery when that one is gone.

mod host;
mod page;
mod private;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::middleware;
use axum::response::Response;
use axum::routing::get;
use rand::Rng;
use tokio::sync::{OnceCell, watch};
use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;

use host::{loopback_hosts, only};

use crate::actor::Actor;
use crate::http_serve::{HttpLimits, serve};
use crate::service::{LinkHeld, LinkPick, LinkState, TokenService, link_hash};
use crate::tokens::RawToken;

pub use crate::service::MAX_PASSPHRASE_FAILURES;

/// A link taken for showing or withdrawing: its secret, and what settles its token.
struct Waiting {
    held: LinkHeld,
    secret: RawToken,
}

/// A link this process made, and the timer that withdraws it at its time.
struct Slot {
    held: LinkHeld,
    timer: Option<AbortHandle>,
}

/// Length of a link id: 24 random bytes in hex.
const ID_LEN: usize = 48;

/// Whether `id` has the shape of a link id; one that is not waiting was used or has expired.
fn well_formed(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The links this process made, and the HTTP routes that serve every link of the store.
pub struct RevealHub {
    slots: Mutex<HashMap<String, Slot>>,
    ttl: Duration,
    service: Arc<TokenService>,
    /// Where links point: set when the routes are mounted on a server.
    base_url: OnceCell<String>,
    /// Whether that server was given (links then reach any replica behind it), rather than a
    /// loopback listener of this process's own.
    mounted: AtomicBool,
    /// For stdio: the loopback address a listener is started on at first use.
    listen: String,
    /// For stdio: that listener's limits.
    limits: HttpLimits,
    /// How many unopened links this hub has withdrawn on their lapse or by [`RevealHub::withdraw`]
    /// (the token deleted, or left to recovery when that failed), so a caller can wait for one
    /// without polling.
    settled: watch::Sender<u64>,
    /// Pages with a secret on their way, until the journal has their outcome: a stopping
    /// server waits for them, or a delivered secret would be withdrawn as in doubt.
    deliveries: TaskTracker,
}

/// How long a stopping server waits for the outcome of pages already sent. MCP clients send
/// SIGTERM 2 s after closing stdin (the Python SDK) and SIGKILL later; what is left is settled by
/// recovery, which withdraws a token whose delivery it cannot confirm.
const DELIVERIES_GRACE: Duration = Duration::from_secs(2);

/// A link just made.
#[derive(Debug, Clone)]
pub struct RevealLink {
    pub id: String,
    pub url: String,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RevealHub {
    pub fn new(
        service: Arc<TokenService>,
        ttl: Duration,
        listen: String,
        limits: HttpLimits,
    ) -> Arc<Self> {
        Arc::new(Self {
            slots: Mutex::new(HashMap::new()),
            ttl,
            service,
            base_url: OnceCell::new(),
            mounted: AtomicBool::new(false),
            listen,
            limits,
            settled: watch::Sender::new(0),
            deliveries: TaskTracker::new(),
        })
    }

    /// Waits until this hub has withdrawn `n` unopened links in all (see `settled`); false if
    /// `within` passes first.
    pub async fn settled(&self, n: u64, within: Duration) -> bool {
        let mut count = self.settled.subscribe();
        tokio::time::timeout(within, count.wait_for(|c| *c >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Serve links from an existing server reachable at `base_url` (mount [`RevealHub::router`] there).
    pub fn set_base_url(&self, base_url: String) {
        if self
            .base_url
            .set(base_url.trim_end_matches('/').to_owned())
            .is_ok()
        {
            self.mounted.store(true, Ordering::Relaxed);
        }
    }

    /// The routes: `GET /reveal/{id}` (a page with a button) and `POST /reveal/{id}` (the
    /// secret, once); `GET /reveal/private` (a sign-in form) and `POST /reveal/private` (the
    /// signed-in person's oldest waiting secret, once).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                "/reveal/private",
                get(private::sign_in).post(private::reveal),
            )
            .route("/reveal/{id}", get(page).post(reveal))
            .with_state(Arc::clone(self))
    }

    /// Where the private page is, starting the loopback listener if it is not running yet.
    pub async fn private_page(self: &Arc<Self>) -> std::io::Result<String> {
        Ok(format!("{}/reveal/private", self.base().await?))
    }

    /// The base URL, starting a loopback listener on first use when none was set.
    async fn base(self: &Arc<Self>) -> std::io::Result<String> {
        let hub = Arc::clone(self);
        self.base_url
            .get_or_try_init(|| async move {
                let listener = tokio::net::TcpListener::bind(&hub.listen).await?;
                let addr = listener.local_addr()?;
                let app = hub
                    .router()
                    .layer(middleware::from_fn_with_state(loopback_hosts(addr), only));
                tokio::spawn(serve(listener, app, hub.limits, std::future::pending()));
                tracing::info!(%addr, "reveal-link listener started");
                Ok(format!("http://{addr}"))
            })
            .await
            .cloned()
    }

    /// Whether this process's links open on other replicas too (a shared key, and a server
    /// they all stand behind): then they outlive it.
    fn shared(&self) -> bool {
        self.mounted.load(Ordering::Relaxed) && self.service.link_key_shared()
    }

    /// Parks `secret` behind a new link, and arranges its withdrawal if nobody opens it in time.
    pub async fn register(
        self: &Arc<Self>,
        held: LinkHeld,
        secret: &RawToken,
    ) -> std::io::Result<RevealLink> {
        let base = self.base().await?;
        let mut bytes = [0u8; 24];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        debug_assert!(well_formed(&id));
        let served = self.mounted.load(Ordering::Relaxed);
        let expires_at = self
            .service
            .park_link(&id, &held, secret, self.ttl, served)
            .await
            .map_err(std::io::Error::other)?;
        lock(&self.slots).insert(id.clone(), Slot { held, timer: None });
        let hub = Arc::clone(self);
        let expiring = id.clone();
        let timer = tokio::spawn(async move {
            tokio::time::sleep(hub.ttl).await;
            hub.expire(&expiring).await;
        })
        .abort_handle();
        if let Some(slot) = lock(&self.slots).get_mut(&id) {
            slot.timer = Some(timer);
        }
        Ok(RevealLink {
            url: format!("{base}/reveal/{id}"),
            id,
            expires_at,
        })
    }

    /// Withdraws an unopened link now (the user declined): the token is deleted again.
    pub async fn withdraw(&self, id: &str, why: &str) -> bool {
        self.forget(id);
        match self.take(LinkPick::Withdraw(link_hash(id))).await {
            Some(w) => {
                self.settle(w, why).await;
                true
            }
            None => false,
        }
    }

    /// Deletes the token of a secret that was never delivered. If that fails, the journal
    /// still holds it, and recovery withdraws it.
    async fn settle(&self, w: Box<Waiting>, why: &str) {
        if let Err(e) = self.service.withdraw_undelivered(&w.held.ticket, why).await {
            tracing::error!(error = %e, token = %w.held.token_name, "could not withdraw an undelivered token; recovery will");
        }
        self.settled.send_modify(|c| *c += 1);
    }

    /// Withdraws the unopened link of `token_name` requested by `requester`, if there is one,
    /// whichever replica made it.
    pub async fn withdraw_for(
        &self,
        requester: &Actor,
        instance: &str,
        token_name: &str,
        why: &str,
    ) -> bool {
        // A link made here: its timer has nothing left to do.
        let mine = lock(&self.slots).iter().find_map(|(id, slot)| {
            slot.held
                .is_of(requester, instance, token_name)
                .then(|| id.clone())
        });
        if let Some(id) = mine {
            self.forget(&id);
        }
        match self
            .service
            .withdraw_link_of(requester, instance, token_name, why)
            .await
        {
            Ok(withdrawn) => withdrawn,
            Err(e) => {
                tracing::error!(error = %e, "could not withdraw a declined reveal link");
                false
            }
        }
    }

    /// The server is stopping. Links only this process serves die with it, so they are
    /// withdrawn now; shared ones stay for any replica to open, and are withdrawn at their time.
    /// Then it waits (up to [`DELIVERIES_GRACE`]) for the pages already sent to be recorded as
    /// delivered.
    pub async fn withdraw_all(&self, why: &str) {
        self.withdraw_unopened(why).await;
        self.deliveries.close();
        if tokio::time::timeout(DELIVERIES_GRACE, self.deliveries.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.deliveries.len(),
                "pages with a secret were still being recorded as delivered when the server \
                 stopped; recovery settles them (withdrawing what it cannot confirm)"
            );
        }
    }

    async fn withdraw_unopened(&self, why: &str) {
        let ids: Vec<String> = lock(&self.slots).keys().cloned().collect();
        if self.shared() {
            for id in &ids {
                self.forget(id);
            }
            if !ids.is_empty() {
                tracing::info!(
                    links = ids.len(),
                    "reveal links made here stay open on the other replicas"
                );
            }
            return;
        }
        for id in ids {
            self.withdraw(&id, why).await;
        }
    }

    /// Whether the link's token is gone (or its name now belongs to another token). When
    /// InfluxDB cannot say, the secret is shown: delivering it is what the link is for.
    async fn deleted_meanwhile(&self, w: &Waiting) -> bool {
        let named = self
            .service
            .find_named(
                &w.held.requester,
                Some(&w.held.instance),
                &w.held.token_name,
            )
            .await;
        match named {
            Ok(token) => token.map(|t| t.id) != Some(w.held.token_id),
            Err(e) => {
                tracing::warn!(error = %e, token = %w.held.token_name, "cannot check a revealed token still exists; showing its secret");
                false
            }
        }
    }

    /// Runs in the link's own timer task, which therefore is not aborted.
    async fn expire(&self, id: &str) {
        if lock(&self.slots).remove(id).is_none() {
            return;
        }
        if let Some(w) = self.take(LinkPick::Withdraw(link_hash(id))).await {
            self.settle(w, "its one-time reveal link expired unopened")
                .await;
            tracing::info!("a reveal link expired unopened; its token was deleted");
        }
    }

    /// Stops the timer of a link this process made.
    fn forget(&self, id: &str) {
        if let Some(slot) = lock(&self.slots).remove(id)
            && let Some(timer) = slot.timer
        {
            timer.abort();
        }
    }

    /// Takes a link from the store for this process; `None` if another opener, a withdrawal or
    /// its time was first.
    async fn take(&self, pick: LinkPick) -> Option<Box<Waiting>> {
        match self.service.take_link(pick).await {
            Ok(Some((held, secret))) => Some(Box::new(Waiting { held, secret })),
            Ok(None) => None,
            Err(e) => {
                tracing::error!(error = %e, "could not take a reveal link");
                None
            }
        }
    }

    /// The token name behind a waiting link; `Err` for a link that was used or expired, `None`
    /// for text that was never a link (or a private link, which no link opens).
    async fn state(&self, id: &str) -> Option<Result<String, ()>> {
        if !well_formed(id) {
            return None;
        }
        match self.service.link_state(id).await {
            Ok(Some(LinkState::Waiting(held))) if held.for_person.is_some() => None,
            Ok(Some(LinkState::Waiting(held))) => Some(Ok(held.token_name.to_string())),
            Ok(_) => Some(Err(())),
            Err(e) => {
                tracing::error!(error = %e, "could not look a reveal link up");
                Some(Err(()))
            }
        }
    }
}

async fn page(State(hub): State<Arc<RevealHub>>, Path(id): Path<String>) -> Response {
    match hub.state(&id).await {
        Some(Ok(name)) => page::ready(&name),
        Some(Err(())) => page::gone(),
        None => page::unknown(),
    }
}

async fn reveal(State(hub): State<Arc<RevealHub>>, Path(id): Path<String>) -> Response {
    // A private secret is shown only on the private page, after its person's passphrase.
    if hub.state(&id).await.is_none() {
        return page::unknown();
    }
    let Some(w) = hub.take(LinkPick::Open(link_hash(&id))).await else {
        return page::gone();
    };
    // Taken: its maker's timer (if this is the maker) has nothing left to withdraw.
    hub.forget(&id);
    show(&hub, w).await
}

/// Shows `w`'s secret once, unless its token was deleted meanwhile; the journal learns whether
/// the page reached the browser.
async fn show(hub: &Arc<RevealHub>, w: Box<Waiting>) -> Response {
    if hub.deleted_meanwhile(&w).await {
        tracing::info!(token = %w.held.token_name, "a reveal link was opened after its token was deleted");
        hub.service.secret_delivered(&w.held.ticket).await;
        return page::deleted(w.held.token_name.as_str());
    }
    // From here until the page has left, a crash leaves a doubt about who holds the secret:
    // the journal says so, and recovery then withdraws the token.
    if !hub.service.secret_delivering(&w.held.ticket).await {
        return page::gone();
    }
    tracing::info!(token = %w.held.token_name, "a reveal link was opened");
    let shown = page::secret(w.held.token_name.as_str(), w.secret.expose());
    let (parts, body) = shown.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return page::gone();
    };
    let (sent, done) = tokio::sync::oneshot::channel();
    let service = Arc::clone(&hub.service);
    hub.deliveries.spawn(async move {
        if done.await.unwrap_or(false) {
            service.secret_delivered(&w.held.ticket).await;
        } else {
            let why = "the page with its secret never reached the browser that opened its link";
            if let Err(e) = service.withdraw_undelivered(&w.held.ticket, why).await {
                tracing::error!(error = %e, "could not withdraw an undelivered token; recovery will");
            }
        }
    });
    Response::from_parts(
        parts,
        axum::body::Body::new(crate::sent::SentBody::new(bytes, sent)),
    )
}
