//! Resource-token permissions (`db:NAME[,NAME]:ACTION[,ACTION]`, `system:*:read`), parsed at the edge.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::ParseError;

/// The permission string InfluxDB 3 lists for admin tokens.
pub const ADMIN_PERMISSION: &str = "*:*:*";

/// Names of the system resources a resource token can read.
pub const SYSTEM_RESOURCES: [&str; 4] = ["health", "metrics", "ping", "ready"];

const SHAPE_HINT: &str = "write permissions as TYPE:NAMES:ACTIONS, e.g. `db:metrics:read,write`, `db:*:read` or `system:*:read`";

/// What a permission grants access to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    Db,
    System,
}

impl ResourceType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Db => "db",
            Self::System => "system",
        }
    }
}

/// What a permission allows on its resources. System resources only know `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Read,
    Write,
    Create,
    Describe,
    Delete,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Self::Read,
        Self::Write,
        Self::Create,
        Self::Describe,
        Self::Delete,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
            Self::Describe => "describe",
            Self::Delete => "delete",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Which resources of a type: all of them (`*`) or the listed names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Resources {
    All,
    Named(BTreeSet<String>),
}

/// One permission of a resource token, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permission {
    resource_type: ResourceType,
    resources: Resources,
    actions: BTreeSet<Action>,
}

/// The JSON form InfluxDB 3 Enterprise expects in `permissions[]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePermission {
    pub resource_type: String,
    pub resource_names: Vec<String>,
    pub actions: Vec<String>,
}

impl Permission {
    /// Parses `db:metrics,logs:read,write`, `db:*:read`, `system:health:read` and the like.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let [kind, names, actions] = parts.as_slice() else {
            return Err(ParseError::new(format!(
                "permission `{s}` is not TYPE:NAMES:ACTIONS; {SHAPE_HINT}"
            )));
        };
        let resource_type = match kind.trim() {
            "db" => ResourceType::Db,
            "system" => ResourceType::System,
            "*" => {
                return Err(ParseError::new(format!(
                    "`{s}` is the admin form; create an admin token instead of a resource token"
                )));
            }
            other => {
                return Err(ParseError::new(format!(
                    "unknown resource type `{other}` in `{s}`; use `db` or `system`"
                )));
            }
        };
        let names: Vec<String> = names.split(',').map(|n| n.trim().to_owned()).collect();
        let actions: Vec<String> = actions.split(',').map(|a| a.trim().to_owned()).collect();
        Self::new(resource_type, &names, &actions)
    }

    /// Builds a permission from its parts, with the same checks as [`Permission::parse`].
    pub fn new(
        resource_type: ResourceType,
        names: &[String],
        actions: &[String],
    ) -> Result<Self, ParseError> {
        let resources = parse_resources(resource_type, names)?;
        let mut parsed = BTreeSet::new();
        for action in actions {
            let action = action.trim();
            let known = Action::parse(action)
                .filter(|a| resource_type == ResourceType::Db || *a == Action::Read);
            match known {
                Some(a) => {
                    parsed.insert(a);
                }
                None if resource_type == ResourceType::System => {
                    return Err(ParseError::new(format!(
                        "system permissions only allow `read`, not `{action}`"
                    )));
                }
                None => {
                    return Err(ParseError::new(format!(
                        "unknown database action `{action}`; use read, write, create, describe or delete"
                    )));
                }
            }
        }
        if parsed.is_empty() {
            return Err(ParseError::new(
                "a permission needs at least one action (for a database: read, write, create, describe or \
                 delete; for system resources: read)",
            ));
        }
        Ok(Self {
            resource_type,
            resources,
            actions: parsed,
        })
    }

    pub fn resource_type(&self) -> ResourceType {
        self.resource_type
    }

    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    pub fn actions(&self) -> impl Iterator<Item = Action> + '_ {
        self.actions.iter().copied()
    }

    /// Whether this permission covers database `db` (by name or through `db:*`).
    pub fn grants_database(&self, db: &str) -> bool {
        self.resource_type == ResourceType::Db
            && match &self.resources {
                Resources::All => true,
                Resources::Named(names) => names.contains(db),
            }
    }

    /// The request body form.
    pub fn to_wire(&self) -> WirePermission {
        WirePermission {
            resource_type: self.resource_type.as_str().to_owned(),
            resource_names: match &self.resources {
                Resources::All => vec!["*".to_owned()],
                Resources::Named(names) => names.iter().cloned().collect(),
            },
            actions: self.actions.iter().map(|a| a.as_str().to_owned()).collect(),
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = match &self.resources {
            Resources::All => "*".to_owned(),
            Resources::Named(names) => names.iter().cloned().collect::<Vec<_>>().join(","),
        };
        let actions: Vec<&str> = self.actions.iter().map(|a| a.as_str()).collect();
        write!(
            f,
            "{}:{names}:{}",
            self.resource_type.as_str(),
            actions.join(",")
        )
    }
}

fn parse_resources(resource_type: ResourceType, names: &[String]) -> Result<Resources, ParseError> {
    let names: Vec<&str> = names.iter().map(|n| n.trim()).collect();
    if names.is_empty() || names.iter().any(|n| n.is_empty()) {
        return Err(ParseError::new(
            "a permission needs resource names, or `*` for all",
        ));
    }
    if names.contains(&"*") {
        return if names.len() == 1 {
            Ok(Resources::All)
        } else {
            Err(ParseError::new(
                "mixed wildcard (*) and resource names; use either `*` or a list of names",
            ))
        };
    }
    let mut set = BTreeSet::new();
    for name in names {
        match resource_type {
            ResourceType::Db => validate_database_name(name)?,
            ResourceType::System => {
                if !SYSTEM_RESOURCES.contains(&name.to_ascii_lowercase().as_str()) {
                    return Err(ParseError::new(format!(
                        "unknown system resource `{name}`; use health, metrics, ping, ready or *"
                    )));
                }
            }
        }
        let name = match resource_type {
            ResourceType::Db => name.to_owned(),
            ResourceType::System => name.to_ascii_lowercase(),
        };
        set.insert(name);
    }
    Ok(Resources::Named(set))
}

/// Checks a database name the way InfluxDB 3 does: 1 to 511 ASCII letters, digits, `_` or `-`,
/// starting with a letter or digit; one `/` may separate a retention-policy part but not end it.
pub fn validate_database_name(name: &str) -> Result<(), ParseError> {
    let fail = |why: &str| {
        Err(ParseError::new(format!(
            "invalid database name `{name}`: {why}"
        )))
    };
    if name.is_empty() || name.len() > 511 {
        return fail("it must be 1 to 511 characters long");
    }
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return fail("it must start with a letter or digit");
    }
    if name.matches('/').count() > 1 || name.ends_with('/') {
        return fail("only one `/` may separate a retention policy, and not at the end");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
    {
        return fail("use only ASCII letters, digits, `_` and `-`");
    }
    Ok(())
}

/// Splits the `permissions` column of `system.tokens` into single permission strings. Core writes
/// one string; how Enterprise joins several is undocumented, so a JSON array, `;` and white
/// space are all accepted.
pub fn split_listed_permissions(column: &str) -> Vec<String> {
    let column = column.trim();
    if column.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(column)
    {
        return list;
    }
    column
        .split(|c: char| c == ';' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Whether a listed permission string (as the server wrote it) covers database `db`.
pub fn listed_grants_database(permission: &str, db: &str) -> bool {
    let mut parts = permission.splitn(3, ':');
    match (parts.next(), parts.next()) {
        (Some("db"), Some(names)) => names.split(',').any(|n| n.trim() == "*" || n.trim() == db),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_canonically() {
        let p = Permission::parse("db:metrics,logs:write,read").unwrap();
        assert_eq!(p.to_string(), "db:logs,metrics:read,write");
        assert_eq!(
            Permission::parse("system:*:read").unwrap().to_string(),
            "system:*:read"
        );
        assert_eq!(
            Permission::parse(" system:Health:read ")
                .unwrap()
                .to_string(),
            "system:health:read"
        );
    }

    #[test]
    fn wire_form_uses_resource_names() {
        let wire = serde_json::to_value(Permission::parse("db:*:read").unwrap().to_wire()).unwrap();
        assert_eq!(
            wire,
            serde_json::json!({"resource_type":"db","resource_names":["*"],"actions":["read"]})
        );
    }

    #[test]
    fn rejects_bad_permissions_with_a_hint() {
        let cases = [
            ("db:metrics", "TYPE:NAMES:ACTIONS"),
            ("*:*:*", "admin form"),
            ("token:x:read", "unknown resource type `token`"),
            ("db:*,metrics:read", "mixed wildcard"),
            ("db:metrics:*", "unknown database action `*`"),
            ("db:metrics:", "unknown database action ``"),
            ("system:*:write", "only allow `read`"),
            ("system:disk:read", "unknown system resource"),
            ("db:bad name:read", "invalid database name"),
            ("db::read", "needs resource names"),
        ];
        for (input, expected) in cases {
            let err = Permission::parse(input).unwrap_err().0;
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn database_names_follow_influxdb_rules() {
        assert!(validate_database_name("metrics_2-a").is_ok());
        assert!(validate_database_name("db/rp").is_ok());
        assert!(validate_database_name("db/").is_err());
        assert!(validate_database_name("-x").is_err());
        assert!(validate_database_name("a%b").is_err());
    }

    #[test]
    fn grants_database_by_name_or_wildcard() {
        assert!(
            Permission::parse("db:a,b:read")
                .unwrap()
                .grants_database("b")
        );
        assert!(Permission::parse("db:*:read").unwrap().grants_database("x"));
        assert!(
            !Permission::parse("db:ab:read")
                .unwrap()
                .grants_database("a")
        );
        assert!(
            !Permission::parse("system:*:read")
                .unwrap()
                .grants_database("a")
        );
        assert!(listed_grants_database("db:a,b:read,write", "b"));
        assert!(!listed_grants_database("db:ab:read", "a"));
        assert!(!listed_grants_database("*:*:*", "a"));
    }

    #[test]
    fn listed_permissions_split_in_every_known_form() {
        assert_eq!(split_listed_permissions("*:*:*"), vec!["*:*:*"]);
        assert_eq!(
            split_listed_permissions("db:a:read system:*:read"),
            vec!["db:a:read", "system:*:read"]
        );
        assert_eq!(
            split_listed_permissions(r#"["db:a,b:read","db:c:write"]"#),
            vec!["db:a,b:read", "db:c:write"]
        );
    }
}
