//! Values and expressions of the simulator's SQL subset, and their evaluation with SQL's
//! three-valued logic.

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{NaiveDate, NaiveDateTime};

/// A cell of `system.tokens`, a literal or a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    UInt(u64),
    Int(i64),
    Str(String),
    /// Milliseconds since the epoch, no time zone (Arrow `Timestamp(ms, None)`).
    Ts(i64),
    Bool(bool),
}

impl Value {
    /// From a JSON query parameter.
    pub fn from_json(v: &serde_json::Value) -> Result<Self, String> {
        Ok(match v {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(*b),
            serde_json::Value::String(s) => Self::Str(s.clone()),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Self::Int(i),
                (None, Some(u)) => Self::UInt(u),
                _ => {
                    return Err(format!(
                        "the simulator does not support the non-integer parameter {n}"
                    ));
                }
            },
            other => return Err(format!("unsupported parameter value {other}")),
        })
    }

    fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "Null",
            Self::UInt(_) => "UInt64",
            Self::Int(_) => "Int64",
            Self::Str(_) => "Utf8",
            Self::Ts(_) => "Timestamp(Millisecond, None)",
            Self::Bool(_) => "Boolean",
        }
    }
}

/// Parses a timestamp string the way a cast to `TIMESTAMP` accepts it.
pub fn parse_timestamp(s: &str) -> Result<i64, String> {
    let t = s.trim();
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_millis());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, fmt) {
            return Ok(dt.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_millis())
            .unwrap_or(0));
    }
    Err(format!(
        "Arrow error: Cast error: Cannot cast string '{s}' to value of Timestamp(Millisecond, None) type"
    ))
}

/// Formats a millisecond timestamp as Arrow's JSON writer does: no zone, fraction only when non-zero.
pub fn format_timestamp(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|dt| dt.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
}

/// A compiled expression: columns resolved to indices, parameters substituted.
#[derive(Debug, Clone)]
pub enum Ex {
    Col(usize),
    Lit(Value),
    Not(Box<Ex>),
    And(Box<Ex>, Box<Ex>),
    Or(Box<Ex>, Box<Ex>),
    Cmp(CmpOp, Box<Ex>, Box<Ex>),
    Like {
        expr: Box<Ex>,
        pattern: Box<Ex>,
        negated: bool,
        case_insensitive: bool,
    },
    IsNull {
        expr: Box<Ex>,
        negated: bool,
    },
    InList {
        expr: Box<Ex>,
        list: Vec<Ex>,
        negated: bool,
    },
    CastTs(Box<Ex>),
}

impl Ex {
    /// Evaluates against one row, borrowing cells and literals instead of copying them.
    pub fn eval<'a>(&'a self, row: &'a [Value]) -> Result<Cow<'a, Value>, String> {
        const NULL: Value = Value::Null;
        let bool_or_null = |b: Option<bool>| Cow::Owned(b.map_or(Value::Null, Value::Bool));
        Ok(match self {
            Self::Col(i) => row.get(*i).map_or(Cow::Owned(NULL), Cow::Borrowed),
            Self::Lit(v) => Cow::Borrowed(v),
            Self::Not(e) => bool_or_null(truth(e.eval(row)?.as_ref())?.map(|b| !b)),
            Self::And(a, b) => bool_or_null(
                match (truth(a.eval(row)?.as_ref())?, truth(b.eval(row)?.as_ref())?) {
                    (Some(false), _) | (_, Some(false)) => Some(false),
                    (Some(true), Some(true)) => Some(true),
                    _ => None,
                },
            ),
            Self::Or(a, b) => bool_or_null(
                match (truth(a.eval(row)?.as_ref())?, truth(b.eval(row)?.as_ref())?) {
                    (Some(true), _) | (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
            ),
            Self::Cmp(op, a, b) => bool_or_null(
                compare(a.eval(row)?.as_ref(), b.eval(row)?.as_ref())?.map(|ord| match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::NotEq => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::LtEq => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::GtEq => ord != Ordering::Less,
                }),
            ),
            Self::Like {
                expr,
                pattern,
                negated,
                case_insensitive,
            } => match (expr.eval(row)?.as_ref(), pattern.eval(row)?.as_ref()) {
                (Value::Null, _) | (_, Value::Null) => Cow::Owned(Value::Null),
                (Value::Str(s), Value::Str(p)) => {
                    let hit = if *case_insensitive {
                        like(&s.to_lowercase(), &p.to_lowercase())
                    } else {
                        like(s, p)
                    };
                    Cow::Owned(Value::Bool(hit != *negated))
                }
                (a, b) => {
                    return Err(format!(
                        "Error during planning: There isn't a common type to coerce {} and {} in LIKE expression",
                        a.type_name(),
                        b.type_name()
                    ));
                }
            },
            Self::IsNull { expr, negated } => {
                Cow::Owned(Value::Bool((*expr.eval(row)? == Value::Null) != *negated))
            }
            Self::InList {
                expr,
                list,
                negated,
            } => {
                let v = expr.eval(row)?;
                let mut saw_null = *v == Value::Null;
                let mut hit = false;
                for item in list {
                    match compare(&v, item.eval(row)?.as_ref())? {
                        Some(Ordering::Equal) => hit = true,
                        None => saw_null = true,
                        Some(_) => {}
                    }
                }
                bool_or_null(if hit {
                    Some(!negated)
                } else if saw_null {
                    None
                } else {
                    Some(*negated)
                })
            }
            Self::CastTs(e) => Cow::Owned(cast_ts(e.eval(row)?.as_ref())?),
        })
    }
}

/// `CAST(v AS TIMESTAMP)`.
pub fn cast_ts(v: &Value) -> Result<Value, String> {
    Ok(match v {
        Value::Null => Value::Null,
        Value::Ts(t) => Value::Ts(*t),
        Value::Str(s) => Value::Ts(parse_timestamp(s)?),
        Value::Int(i) => Value::Ts(i / 1_000_000),
        Value::UInt(u) => Value::Ts(i64::try_from(u / 1_000_000).unwrap_or(i64::MAX)),
        Value::Bool(_) => {
            return Err("Error during planning: Cannot cast Boolean to Timestamp".into());
        }
    })
}

/// SQL truth of a value: `None` is unknown (NULL).
pub fn truth(v: &Value) -> Result<Option<bool>, String> {
    match v {
        Value::Bool(b) => Ok(Some(*b)),
        Value::Null => Ok(None),
        other => Err(format!(
            "Error during planning: Cannot use {} as a boolean",
            other.type_name()
        )),
    }
}

/// Compares two values with the coercions DataFusion applies (numbers with numbers, strings
/// cast to timestamps against timestamps). `None` when either side is NULL.
pub fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, String> {
    use Value::*;
    Ok(Some(match (a, b) {
        (Null, _) | (_, Null) => return Ok(None),
        (UInt(x), UInt(y)) => x.cmp(y),
        (Int(x), Int(y)) => x.cmp(y),
        (UInt(x), Int(y)) => i128::from(*x).cmp(&i128::from(*y)),
        (Int(x), UInt(y)) => i128::from(*x).cmp(&i128::from(*y)),
        (Str(x), Str(y)) => x.cmp(y),
        (Ts(x), Ts(y)) => x.cmp(y),
        (Ts(x), Str(s)) => x.cmp(&parse_timestamp(s)?),
        (Str(s), Ts(y)) => parse_timestamp(s)?.cmp(y),
        (Bool(x), Bool(y)) => x.cmp(y),
        (x, y) => {
            return Err(format!(
                "Error during planning: Cannot infer common argument type for comparison operation {} = {}",
                x.type_name(),
                y.type_name()
            ));
        }
    }))
}

/// Ordering for ORDER BY: NULLs sort after every value (before them when descending).
pub fn sort_cmp(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Greater,
        (_, Value::Null) => Ordering::Less,
        _ => compare(a, b).ok().flatten().unwrap_or(Ordering::Equal),
    }
}

/// SQL LIKE: `%` any run, `_` one character, `\` escapes the next character.
pub fn like(s: &str, pattern: &str) -> bool {
    enum Tok {
        Any,
        One,
        Lit(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        toks.push(match c {
            '%' => Tok::Any,
            '_' => Tok::One,
            '\\' => Tok::Lit(chars.next().unwrap_or('\\')),
            c => Tok::Lit(c),
        });
    }
    let s: Vec<char> = s.chars().collect(); // names are short; one allocation per comparison
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut si, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match toks.get(ti) {
            Some(Tok::One) => {
                si += 1;
                ti += 1;
            }
            Some(Tok::Lit(c)) if *c == s[si] => {
                si += 1;
                ti += 1;
            }
            Some(Tok::Any) => {
                star = Some((ti, si));
                ti += 1;
            }
            _ => match star {
                Some((t, sp)) => {
                    ti = t + 1;
                    si = sp + 1;
                    star = Some((t, sp + 1));
                }
                None => return false,
            },
        }
    }
    toks[ti..].iter().all(|t| matches!(t, Tok::Any))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_handles_wildcards_and_escapes() {
        assert!(like("grafana-reader", "%reader"));
        assert!(like("grafana-reader", "g_afana%"));
        assert!(!like("grafana", "%x%"));
        assert!(like("100%", "100\\%"));
        assert!(!like("1000", "100\\%"));
        assert!(like("a_b", "a\\_b"));
        assert!(!like("axb", "a\\_b"));
        assert!(like("", "%"));
        assert!(like("abcabc", "%abc"));
    }

    #[test]
    fn timestamps_format_like_arrow() {
        assert_eq!(
            format_timestamp(1_795_825_301_016),
            "2026-11-28T00:21:41.016"
        );
        assert_eq!(format_timestamp(1_795_825_301_000), "2026-11-28T00:21:41");
        assert_eq!(
            parse_timestamp("2026-11-28T00:21:41.016").unwrap(),
            1_795_825_301_016
        );
        assert_eq!(
            parse_timestamp("2026-11-28T00:21:41.016Z").unwrap(),
            1_795_825_301_016
        );
    }

    #[test]
    fn nulls_compare_unknown() {
        let e = Ex::Cmp(
            CmpOp::Eq,
            Box::new(Ex::Lit(Value::Null)),
            Box::new(Ex::Lit(Value::Int(1))),
        );
        assert_eq!(*e.eval(&[]).unwrap(), Value::Null);
        let not = Ex::Not(Box::new(e));
        assert_eq!(*not.eval(&[]).unwrap(), Value::Null);
    }

    #[test]
    fn mismatched_types_are_errors_not_answers() {
        assert!(compare(&Value::Ts(0), &Value::Int(0)).is_err());
        assert!(compare(&Value::Str("x".into()), &Value::UInt(1)).is_err());
    }
}
