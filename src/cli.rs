//! The human CLI: commands over the core, readable tables, `--json` for scripts, typed
//! confirmations for destructive actions, and exit codes scripts can rely on.

mod approvals;
mod delivery;
mod output;
mod people;
pub use output::explain as explain_error;
pub use output::{token_json, tokens_table};
pub use people::hash_passphrase;

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::json;

pub use delivery::{FileDelivery, TerminalDelivery};

use crate::actor::Actor;
use crate::service::{
    Channel, ErrorKind, Executed, GatePolicy, NextStep, PendingRequest, Request, ServiceError,
    TokenService,
};
use crate::shown::quoted;
use crate::tokens::{
    Expiry, ListFilter, NewToken, Page, ParseError, Permission, TokenName, TokenSpec,
};

/// Exit codes (also in the README).
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const CONFIG: u8 = 3;
    pub const AUTH: u8 = 4;
    pub const NOT_FOUND: u8 = 5;
    pub const CONFLICT: u8 = 6;
    pub const REFUSED: u8 = 7;
    pub const UNAVAILABLE: u8 = 8;
    pub const UNKNOWN_OUTCOME: u8 = 9;
    /// tokenwarden itself failed (a panic): a bug to report. `EX_SOFTWARE` of `sysexits.h`.
    pub const INTERNAL: u8 = 70;
}

/// Why a CLI command did not complete.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Input(#[from] ParseError),
    #[error("not confirmed; nothing was changed (type the name at the prompt, or pass --yes)")]
    Declined,
    #[error("cannot prepare the token file: {0}")]
    TokenFile(String),
    #[error("cannot read the confirmation: {0}")]
    Prompt(String),
    #[error("{0}")]
    Incomplete(String),
}

/// The exit code for a failure of the core.
pub fn service_exit_code(e: &ServiceError) -> u8 {
    match e.kind() {
        ErrorKind::Usage => exit::USAGE,
        ErrorKind::Config => exit::CONFIG,
        ErrorKind::Refused => exit::REFUSED,
        ErrorKind::NotFound => exit::NOT_FOUND,
        ErrorKind::Conflict => exit::CONFLICT,
        ErrorKind::Auth => exit::AUTH,
        ErrorKind::Unavailable => exit::UNAVAILABLE,
        ErrorKind::Unknown => exit::UNKNOWN_OUTCOME,
        ErrorKind::Failed => exit::FAILED,
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Service(e) => service_exit_code(e),
            Self::Input(_) => exit::USAGE,
            Self::Declined => exit::REFUSED,
            Self::TokenFile(_) | Self::Prompt(_) | Self::Incomplete(_) => exit::FAILED,
        }
    }
}

/// One CLI invocation's context.
pub struct Cli<'a> {
    pub service: &'a TokenService,
    pub actor: Actor,
    pub instance: Option<String>,
    pub json: bool,
}

/// Writes human text to stdout with every control character but its newlines escaped (outside
/// names inside it are escaped by whoever formats them, newlines too).
fn print(text: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", crate::shown::shown_lines(text.as_ref()));
}

/// Writes `value` to stdout as JSON for scripts (`pretty`: indented). It parses back to the exact
/// strings, and characters a terminal must not show raw are `\uXXXX` escapes in it.
pub fn print_json(value: &impl serde::Serialize, pretty: bool) {
    let json = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        crate::shown::shown_json(&json.unwrap_or_default())
    );
}

impl Cli<'_> {
    fn instance(&self) -> Option<&str> {
        self.instance.as_deref()
    }

    pub async fn check(&self) -> Result<(), CliError> {
        let r = self.service.check(&self.actor, self.instance()).await?;
        if self.json {
            print_json(&r, true);
        } else {
            let edition = r.edition.map_or("unknown".to_owned(), |e| e.to_string());
            print(format!(
                "Instance `{}` at {}: InfluxDB 3 {} {} answers, tokenwarden's token works, {} listed{}.",
                r.instance,
                r.url,
                edition,
                r.server.version.as_deref().unwrap_or("(version unknown)"),
                if r.more_tokens {
                    format!("{}+ tokens", r.token_count)
                } else {
                    crate::tokens::count_tokens(r.token_count, "")
                },
                if r.read_only {
                    "; the instance is read-only in the config"
                } else {
                    ""
                }
            ));
        }
        Ok(())
    }

    /// One page of tokens (`all`: every page), as a table or as
    /// `{"tokens": [...], "next_cursor": ...}`.
    pub async fn list(&self, filter: &ListFilter, page: Page, all: bool) -> Result<(), CliError> {
        let (tokens, next) = if all {
            (
                self.service
                    .list(&self.actor, self.instance(), filter)
                    .await?,
                None,
            )
        } else {
            let p = self
                .service
                .list_page(&self.actor, self.instance(), filter, page)
                .await?;
            (p.tokens, p.next)
        };
        let now = self.service.now();
        if self.json {
            let rows: Vec<_> = tokens.iter().map(|t| output::token_json(t, now)).collect();
            let out = json!({ "tokens": rows, "next_cursor": next.map(|n| n.to_string()) });
            print_json(&out, true);
        } else {
            print(output::tokens_table(&tokens, now));
            if let Some(n) = next {
                print(format!(
                    "More tokens follow: add --cursor {n} for the next page, or --all."
                ));
            }
        }
        Ok(())
    }

    pub async fn databases(&self) -> Result<(), CliError> {
        let dbs = self
            .service
            .list_databases(&self.actor, self.instance())
            .await?;
        if self.json {
            // `databases` keeps the plain names; `details` adds what the server tells of each.
            let names: Vec<&str> = dbs.iter().map(|d| d.name.as_str()).collect();
            let details: Vec<_> = dbs.iter().map(output::database_json).collect();
            print_json(&json!({ "databases": names, "details": details }), false);
        } else {
            print(output::databases_table(&dbs));
        }
        Ok(())
    }

    pub async fn create(
        &self,
        name: &str,
        permissions: &[String],
        expires_in: Option<&str>,
        expires_at: Option<&str>,
    ) -> Result<(), CliError> {
        let name = TokenName::parse_new(name)?;
        let spec = if permissions.is_empty() {
            TokenSpec::Admin
        } else {
            TokenSpec::Resource(
                permissions
                    .iter()
                    .map(|p| Permission::parse(p))
                    .collect::<Result<_, _>>()?,
            )
        };
        let expiry = Expiry::from_options(expires_in, expires_at, self.service.now())?;
        let delivery = TerminalDelivery { json: self.json };
        self.service
            .create(
                &self.actor,
                self.instance(),
                NewToken { name, spec, expiry },
                &delivery,
            )
            .await?;
        Ok(())
    }

    pub async fn delete(&self, name: &str, yes: bool) -> Result<(), CliError> {
        let name = TokenName::parse(name)?;
        let instance = self.service.instance_or_default(self.instance.clone());
        let Some((request, phrase)) = self.begin(Request::Delete { instance, name }, None).await?
        else {
            return Ok(());
        };
        let op = request.pending.action.clone();
        let proof = if yes {
            phrase
        } else {
            let about = request
                .token
                .as_ref()
                .map(|t| output::token_summary(t, self.service.now()))
                .unwrap_or_default();
            let question = format!(
                "About to delete token {about} on instance `{}`. Clients using it will stop working.\nType the token name to confirm: ",
                op.instance()
            );
            self.ask_or_decline(&question, &request.pending.id).await?
        };
        let done = self.confirm_here(&request, &proof).await?;
        if let Executed::Deleted { instance, name } = done {
            if self.json {
                print_json(&json!({ "deleted": name, "instance": instance }), false);
            } else {
                print(format!(
                    "Deleted token {} on instance {}.",
                    quoted(name.as_str()),
                    quoted(&instance)
                ));
            }
        }
        Ok(())
    }

    /// Regenerates the operator token; its new secret goes to `token_file`, else to the
    /// instance's `operator_token_file` (one of them is required).
    pub async fn regenerate_operator(
        &self,
        yes: bool,
        token_file: Option<&Path>,
    ) -> Result<(), CliError> {
        let instance = self.service.instance_or_default(self.instance.clone());
        let regenerate = Request::Regenerate {
            instance: instance.clone(),
        };
        let Some((request, phrase)) = self
            .begin(regenerate, token_file.map(Path::to_path_buf))
            .await?
        else {
            return Ok(());
        };
        let proof = if yes {
            phrase
        } else {
            let question = format!(
                "About to {}. Its current secret stops working at once,\n\
                 and every client and script that uses it breaks (tokenwarden too, unless that file is its token_file).\n\
                 Type the instance name `{instance}` to confirm: ",
                request.pending.action.describe()
            );
            self.ask_or_decline(&question, &request.pending.id).await?
        };
        let done = self.confirm_here(&request, &proof).await?;
        self.report_regenerated(done);
        Ok(())
    }

    pub(crate) fn report_regenerated(&self, done: Executed) {
        let Executed::Regenerated {
            instance,
            id,
            file,
            own_credential,
        } = done
        else {
            return;
        };
        if self.json {
            print_json(
                &json!({ "regenerated": instance, "id": id, "token_file": file, "own_credential_changed": own_credential }),
                false,
            );
        } else {
            let own = if own_credential {
                "tokenwarden's own credential for this instance is that file, and it uses the new secret now"
            } else {
                "tokenwarden's own credential for this instance did not change"
            };
            print(format!(
                "Regenerated the operator token of `{instance}`; the new secret is in {} (mode 0600). {own}.",
                file.display()
            ));
        }
    }

    /// Deletes the expired tokens (not protected ones) after showing them and a typed `prune`.
    pub async fn prune_expired(&self, yes: bool) -> Result<(), CliError> {
        let instance = self.service.instance_or_default(self.instance.clone());
        let Some((request, phrase)) = self.begin(Request::Prune { instance }, None).await? else {
            if self.json {
                print_json(&json!({ "deleted": [], "failed": [] }), false);
            } else {
                print("No expired tokens to prune (protected tokens are never pruned).");
            }
            return Ok(());
        };
        let tokens = &request.expired;
        if !self.json {
            print(output::tokens_table(tokens, self.service.now()));
        }
        let proof = if yes {
            phrase
        } else {
            let question = format!(
                "Delete these {}? Type `{phrase}` to confirm: ",
                crate::tokens::count_tokens(tokens.len(), "expired")
            );
            self.ask_or_decline(&question, &request.pending.id).await?
        };
        let done = self.confirm_here(&request, &proof).await?;
        self.report_pruned(done)
    }

    /// Opens the pending action for `request`, confirmed at this terminal; returns it and the
    /// phrase to type. `None` when there is nothing to do.
    async fn begin(
        &self,
        request: Request,
        file: Option<std::path::PathBuf>,
    ) -> Result<Option<(PendingRequest, String)>, CliError> {
        let opened = self
            .service
            .begin(
                &self.actor,
                &request,
                Channel::Terminal,
                GatePolicy::default(),
                None,
                file,
            )
            .await?;
        Ok(opened.map(|o| {
            let phrase = match o.next {
                NextStep::Type { phrase } => phrase,
                _ => request.phrase(),
            };
            (o.request, phrase)
        }))
    }

    /// Confirms `request` with `proof`, which runs it once.
    async fn confirm_here(
        &self,
        request: &PendingRequest,
        proof: &str,
    ) -> Result<Executed, CliError> {
        let pending = &request.pending;
        Ok(self
            .service
            .confirm(&self.actor, &pending.id, &pending.action, proof)
            .await?)
    }

    pub(crate) fn report_pruned(&self, done: Executed) -> Result<(), CliError> {
        let Executed::Pruned {
            instance,
            deleted,
            skipped,
            failed,
        } = done
        else {
            return Ok(());
        };
        let pairs = |items: &[(String, String)]| -> Vec<serde_json::Value> {
            items
                .iter()
                .map(|(n, e)| json!({ "name": n, "why": e }))
                .collect()
        };
        if self.json {
            print_json(
                &json!({ "instance": instance, "deleted": deleted, "skipped": pairs(&skipped), "failed": pairs(&failed) }),
                false,
            );
        } else {
            print(format!(
                "Deleted {} expired {} on instance `{instance}`.",
                deleted.len(),
                if deleted.len() == 1 {
                    "token"
                } else {
                    "tokens"
                }
            ));
            for (name, why) in &skipped {
                print(format!("Left {} alone: {why}.", quoted(name)));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            let list: Vec<String> = failed
                .iter()
                .map(|(n, e)| format!("{}: {e}", quoted(n)))
                .collect();
            Err(CliError::Incomplete(format!(
                "{} not deleted: {}",
                crate::tokens::count_tokens(failed.len(), "expired"),
                list.join("; ")
            )))
        }
    }

    pub async fn bootstrap_operator(&self, token_file: &Path) -> Result<(), CliError> {
        let file = FileDelivery::prepare(token_file, false)
            .map_err(|e| CliError::TokenFile(e.to_string()))?;
        let done = self
            .service
            .bootstrap_operator(&self.actor, self.instance(), &file)
            .await?;
        if self.json {
            print_json(
                &json!({ "created": done.token.name, "id": done.token.id, "token_file": token_file }),
                false,
            );
        } else {
            print(format!(
                "Created the operator token `_admin` (id {}); its secret is {}.\nPoint the instance's token_file at it.",
                done.token.id, done.receipt.text
            ));
        }
        Ok(())
    }

    pub async fn audit(&self, limit: usize) -> Result<(), CliError> {
        let entries = self.service.audit_log(limit).await?;
        if self.json {
            print_json(&entries, true);
        } else {
            print(output::audit_table(&entries));
        }
        Ok(())
    }

    /// Asks `question`; an empty answer closes pending action `id` and declines.
    async fn ask_or_decline(
        &self,
        question: &str,
        id: &crate::gate::PendingId,
    ) -> Result<String, CliError> {
        match self.prompt(question)? {
            Some(typed) => Ok(typed),
            None => {
                self.service
                    .reject(&self.actor, id, Some("declined at the prompt".into()))
                    .await?;
                Err(CliError::Declined)
            }
        }
    }

    /// Asks on stderr and reads a line from stdin (a terminal or a pipe); `None` when the answer
    /// is empty or stdin is closed (declined).
    fn prompt(&self, question: &str) -> Result<Option<String>, CliError> {
        let stdin = std::io::stdin();
        eprint!("{}", crate::shown::shown_lines(question));
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Prompt(e.to_string()))?;
        let answer = line.trim_end_matches(['\n', '\r']).to_owned();
        Ok((!answer.trim().is_empty()).then_some(answer))
    }
}
