//! Protected token names: exact names and globs that no adapter may delete. `_admin` is always in.

use super::{OPERATOR_TOKEN_NAME, ParseError};

/// A set of name patterns (`grafana`, `ci-*`, `prod-?`) that mark tokens as protected.
#[derive(Debug, Clone)]
pub struct ProtectedNames {
    patterns: Vec<(String, glob::Pattern)>,
}

impl ProtectedNames {
    /// The configured patterns plus `_admin`.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, ParseError> {
        let mut out = vec![(OPERATOR_TOKEN_NAME.to_owned(), exact(OPERATOR_TOKEN_NAME))];
        for p in patterns {
            let p = p.as_ref();
            let pattern = glob::Pattern::new(p).map_err(|e| {
                ParseError::new(format!(
                    "protected name pattern `{p}` is not a valid glob: {e}"
                ))
            })?;
            out.push((p.to_owned(), pattern));
        }
        Ok(Self { patterns: out })
    }

    /// The pattern that protects `name`, if any.
    pub fn protecting(&self, name: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|(_, p)| p.matches(name))
            .map(|(text, _)| text.as_str())
    }

    /// The patterns, `_admin` first.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|(text, _)| text.as_str())
    }
}

impl Default for ProtectedNames {
    fn default() -> Self {
        Self {
            patterns: vec![(OPERATOR_TOKEN_NAME.to_owned(), exact(OPERATOR_TOKEN_NAME))],
        }
    }
}

fn exact(name: &str) -> glob::Pattern {
    // An escaped literal is always a valid pattern.
    glob::Pattern::new(&glob::Pattern::escape(name)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_is_always_protected() {
        let p = ProtectedNames::new::<&str>(&[]).unwrap();
        assert_eq!(p.protecting("_admin"), Some("_admin"));
        assert_eq!(p.protecting("admin"), None);
    }

    #[test]
    fn globs_and_exact_names() {
        let p = ProtectedNames::new(&["ci-*", "grafana"]).unwrap();
        assert_eq!(p.protecting("ci-deploy"), Some("ci-*"));
        assert_eq!(p.protecting("grafana"), Some("grafana"));
        assert_eq!(p.protecting("grafana-2"), None);
    }

    #[test]
    fn bad_globs_are_reported() {
        let err = ProtectedNames::new(&["[oops"]).unwrap_err().0;
        assert!(err.contains("`[oops` is not a valid glob"), "{err}");
    }
}
