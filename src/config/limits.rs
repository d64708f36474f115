//! The keys every listener's table takes (`header_read_timeout`, `idle_timeout`,
//! `max_connections`), checked into [`HttpLimits`].

use std::time::Duration;

use super::parse_duration_key;
use crate::http_serve::HttpLimits;

/// The limits written in `table` (such as `mcp.http`); what is not written keeps its default.
pub(super) fn http_limits(
    table: &str,
    header_read_timeout: Option<&str>,
    idle_timeout: Option<&str>,
    max_connections: Option<usize>,
) -> Result<HttpLimits, String> {
    let defaults = HttpLimits::default();
    let duration = |key: &str, value: Option<&str>, default: Duration| {
        let Some(value) = value else {
            return Ok(default);
        };
        let d = parse_duration_key(&format!("{table}.{key}"), value)?;
        if d.is_zero() {
            return Err(format!("{table}.{key} must be more than zero"));
        }
        Ok(d)
    };
    let max_connections = max_connections.unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(format!("{table}.max_connections must be at least 1"));
    }
    Ok(HttpLimits {
        header_read_timeout: duration(
            "header_read_timeout",
            header_read_timeout,
            defaults.header_read_timeout,
        )?,
        idle_timeout: duration("idle_timeout", idle_timeout, defaults.idle_timeout)?,
        max_connections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_refuse_zero() {
        assert_eq!(
            http_limits("mcp.http", None, None, None),
            Ok(HttpLimits::default())
        );
        let set = http_limits("mcp.http", Some("2s"), Some("5m"), Some(3)).unwrap();
        assert_eq!(set.header_read_timeout, Duration::from_secs(2));
        assert_eq!(set.idle_timeout, Duration::from_secs(300));
        assert_eq!(set.max_connections, 3);
        let e = http_limits("discord.endpoint", Some("0s"), None, None).unwrap_err();
        assert_eq!(
            e,
            "discord.endpoint.header_read_timeout must be more than zero"
        );
        let e = http_limits("mcp.http", None, None, Some(0)).unwrap_err();
        assert_eq!(e, "mcp.http.max_connections must be at least 1");
        let e = http_limits("mcp.http", None, Some("soon"), None).unwrap_err();
        assert!(e.starts_with("mcp.http.idle_timeout: "), "{e}");
    }
}
