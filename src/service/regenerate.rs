//! Regenerating the operator token: its new secret must land in a durable place before anything
//! else happens, because InfluxDB shows it once and the old secret stops working at once. The
//! file is prepared before InfluxDB is called, and written atomically (mode 0600) right after
//! the answer; when it is tokenwarden's own credential, tokenwarden switches to the new secret.

use std::path::Path;

use super::gated::Executed;
use super::run::Ran;
use super::{Instance, SecretFile, ServiceError, TokenService, pause_point};
use crate::store::{JournalEntry, JournalOp};
use crate::tokens::{BackendError, CreatedToken, RawToken};

/// Reads the secret a file holds (the bare token on its first line).
pub(super) fn read_secret(path: &Path) -> Option<RawToken> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.trim();
    (!line.is_empty()).then(|| RawToken::new(line.to_owned()))
}

impl TokenService {
    pub(super) async fn run_regenerate(
        &self,
        inst: &Instance,
        file: &Path,
        entry: &JournalEntry,
    ) -> Ran {
        if let Err(e) = self
            .may_mutate(inst)
            .and_then(|()| self.may_regenerate_into(inst, file))
        {
            return Ran::settled(Err(e));
        }
        let prepared = match SecretFile::prepare(file) {
            Ok(p) => p,
            Err(e) => {
                return Ran::settled(Err(ServiceError::SecretFile {
                    path: file.to_owned(),
                    detail: e.to_string(),
                }));
            }
        };
        let before = fingerprint(file);
        let noted = self
            .journal_step(&entry.id, move |e| {
                if let JournalOp::Regenerate { before: slot, .. } = &mut e.op {
                    *slot = Some(before);
                }
            })
            .await;
        if noted.is_none() {
            return Ran::unsettled(ServiceError::Internal(
                "the regeneration could not be journaled; nothing was sent".into(),
            ));
        }
        pause_point("regenerate:before-call").await;
        let CreatedToken { token, secret } = match inst.backend.regenerate_operator_token().await {
            Ok(c) => c,
            // A lost answer is settled later, once a late write would have landed.
            Err(source @ BackendError::OutcomeUnknown { .. }) => {
                drop(prepared);
                return Ran::unsettled(ServiceError::RegenerationAnswerLost {
                    instance: inst.settings.name.clone(),
                    path: file.to_owned(),
                    source,
                });
            }
            Err(e) => {
                drop(prepared);
                return Ran::settled(Err(Self::backend_err(inst)(e)));
            }
        };
        pause_point("regenerate:answered").await;
        if let Err(e) = prepared.commit(&secret) {
            return Ran::settled(Err(ServiceError::RegeneratedUnsaved {
                path: file.to_owned(),
                detail: e.to_string(),
            }));
        }
        let own = inst.settings.credential_file.as_deref() == Some(file);
        if own {
            inst.backend.set_credential(secret);
        }
        Ran::settled(Ok(Executed::Regenerated {
            instance: inst.settings.name.clone(),
            id: token.id,
            file: file.to_owned(),
            own_credential: own,
        }))
    }

    /// Settles a regeneration whose outcome was not recorded. The file tells: changed and
    /// working, the new secret was saved; unchanged and working (or never noted, so InfluxDB was
    /// never called), nothing happened; otherwise the new secret may be lost, which only
    /// InfluxDB's recovery listener or another admin token can mend.
    pub(super) async fn settle_regenerate(
        &self,
        inst: &Instance,
        file: &Path,
        before: Option<&str>,
    ) -> Ran {
        let Some(before) = before else {
            return Ran::settled(Err(ServiceError::NotRegenerated));
        };
        let unchanged = fingerprint(file) == before;
        let works = match read_secret(file) {
            Some(s) => match inst.backend.authenticates(&s).await {
                Ok(works) => works,
                Err(e) => {
                    return Ran::unsettled(Self::backend_err(inst)(e));
                }
            },
            None => false,
        };
        match (works, unchanged) {
            (true, true) => Ran::settled(Err(ServiceError::NotRegenerated)),
            (true, false) => Ran::settled(Ok(Executed::Regenerated {
                instance: inst.settings.name.clone(),
                id: 0,
                file: file.to_owned(),
                own_credential: inst.settings.credential_file.as_deref() == Some(file),
            })),
            (false, _) => Ran::settled(Err(ServiceError::RegeneratedLost {
                instance: inst.settings.name.clone(),
                path: file.to_owned(),
            })),
        }
    }
}

/// What `path` holds, as a SHA-256 (never the secret itself), or `absent`.
fn fingerprint(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    match std::fs::read(path) {
        Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
        Err(_) => "absent".to_owned(),
    }
}
