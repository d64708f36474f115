//! One `[[instances]]` entry: an InfluxDB 3 server, how tokenwarden authenticates to it, and
//! its policy.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{EditionSetting, InstanceConfig, TokenSource, parse_duration_key};
use crate::tokens::{ProtectedNames, RawToken, TOKEN_PREFIX};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawInstance {
    pub(super) name: String,
    url: String,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    token: Option<String>,
    #[serde(default)]
    allow_inline_token: bool,
    #[serde(default)]
    edition: EditionSetting,
    #[serde(default = "default_timeout")]
    timeout: String,
    ca_file: Option<PathBuf>,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    protected: Vec<String>,
    operator_token_file: Option<PathBuf>,
}

fn default_timeout() -> String {
    "10s".into()
}

impl RawInstance {
    pub(super) fn validate(
        self,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<InstanceConfig, String> {
        let name = self.name;
        if name.trim().is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "instance name `{name}` must be non-empty and without spaces"
            ));
        }
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| format!("instance `{name}`: url `{}`: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "instance `{name}`: url `{}` must be http:// or https:// with a host",
                self.url
            ));
        }
        let token = match (self.token_file, self.token_env, self.token) {
            (Some(file), None, None) => TokenSource::File(resolve(&file)),
            (None, Some(var), None) => TokenSource::Env(var),
            (None, None, Some(inline)) if self.allow_inline_token => {
                TokenSource::Inline(RawToken::new(inline))
            }
            (None, None, Some(_)) => {
                return Err(format!(
                    "instance `{name}`: `token` puts a secret in the config file; use token_file or token_env \
                     (or set allow_inline_token = true if you really mean it)"
                ));
            }
            (None, None, None) => {
                return Err(format!(
                    "instance `{name}` needs token_file = \"PATH\" or token_env = \"VAR\" (e.g. INFLUXDB3_AUTH_TOKEN)"
                ));
            }
            _ => {
                return Err(format!(
                    "instance `{name}`: give only one of token_file, token_env and token"
                ));
            }
        };
        if let TokenSource::Inline(t) = &token
            && !t.expose().starts_with(TOKEN_PREFIX)
        {
            tracing::warn!(instance = %name, "the inline token does not start with {TOKEN_PREFIX}");
        }
        let timeout = parse_duration_key(&format!("instances.{name}.timeout"), &self.timeout)?;
        if timeout.is_zero() {
            return Err(format!("instance `{name}`: timeout must be more than zero"));
        }
        let protected =
            ProtectedNames::new(&self.protected).map_err(|e| format!("instance `{name}`: {e}"))?;
        Ok(InstanceConfig {
            url: url.as_str().trim_end_matches('/').to_owned(),
            name,
            token,
            edition: self.edition,
            timeout,
            ca_file: self.ca_file.map(|p| resolve(&p)),
            read_only: self.read_only,
            protected,
            operator_token_file: self.operator_token_file.map(|p| resolve(&p)),
        })
    }
}
