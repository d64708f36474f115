//! Where the CLI hands a new secret: the terminal (printed once, with a warning) or a 0600 file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::json;

use crate::service::{DeliveryFailure, DeliveryReceipt, SecretDelivery, SecretFile, Ticket};
use crate::tokens::{RawToken, Token};

/// Prints the secret to stdout once: a readable block, or JSON with `--json`.
pub struct TerminalDelivery {
    pub json: bool,
}

#[async_trait]
impl SecretDelivery for TerminalDelivery {
    async fn deliver(
        &self,
        token: &Token,
        secret: &RawToken,
        _ticket: &Ticket,
    ) -> Result<DeliveryReceipt, DeliveryFailure> {
        let text = if self.json {
            let mut v = super::output::token_json(token, chrono::Utc::now());
            v["token"] = json!(secret.expose());
            format!("{}\n", crate::shown::shown_json(&v.to_string()))
        } else {
            format!(
                "Token `{}` (id {}, expires {}) is ready:\n\n    {}\n\nStore it securely now: it will not be shown again, and nobody can recover it.\n\
                 Use it as the header `Authorization: Bearer <token>`.\n",
                token.name,
                token.id,
                super::output::expiry_text(token.expiry, chrono::Utc::now()),
                secret.expose()
            )
        };
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| DeliveryFailure(format!("cannot write to the terminal: {e}")))?;
        Ok(DeliveryReceipt::delivered("printed to the terminal"))
    }
}

/// Writes the secret to a file with mode 0600, atomically: a temporary file beside the target is
/// created before the token exists (so an unwritable path fails before anything happens on the
/// server), then renamed over the target once the secret is in it.
pub struct FileDelivery {
    path: PathBuf,
    file: Mutex<Option<SecretFile>>,
}

impl FileDelivery {
    /// Prepares to write `path`; unless `overwrite`, an existing file is an error.
    pub fn prepare(path: &Path, overwrite: bool) -> std::io::Result<Self> {
        if !overwrite && path.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists already; choose a new path or move it away",
                    path.display()
                ),
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(Some(SecretFile::prepare(path)?)),
        })
    }
}

#[async_trait]
impl SecretDelivery for FileDelivery {
    async fn deliver(
        &self,
        _token: &Token,
        secret: &RawToken,
        _ticket: &Ticket,
    ) -> Result<DeliveryReceipt, DeliveryFailure> {
        let file = self
            .file
            .lock()
            .map_err(|_| DeliveryFailure("the token file is unavailable".into()))?
            .take()
            .ok_or_else(|| DeliveryFailure("the token file was already written".into()))?;
        file.commit(secret)
            .map_err(|e| DeliveryFailure(format!("cannot write {}: {e}", self.path.display())))?;
        Ok(DeliveryReceipt::delivered(format!(
            "written to {} (mode 0600)",
            self.path.display()
        )))
    }
}
