//! The SQL subset the simulator answers on its system tables, parsed by `sqlparser`: projection of
//! columns (with aliases), `WHERE` with comparisons, `LIKE`/`ILIKE`, `IS [NOT] NULL`, `IN`,
//! `AND`/`OR`/`NOT`, `CAST(.. AS TIMESTAMP)` and `$name` parameters, `ORDER BY`, `LIMIT`, `OFFSET`.
//! Anything else is a clear 400, never a wrong answer.

use std::collections::HashMap;

use sqlparser::ast::{
    self, BinaryOperator, DataType, Expr, GroupByExpr, LimitClause, ObjectNamePart, OrderByKind,
    SelectItem, SetExpr, Statement, TableFactor, UnaryOperator,
};

use super::value::{CmpOp, Ex, Value, cast_ts, parse_timestamp, sort_cmp, truth};

/// The qualified name of the tokens table.
pub const TOKENS_TABLE: &str = "system.tokens";

/// A failed query: the status and plain-text body InfluxDB 3 would send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub status: u16,
    pub message: String,
}

impl SqlError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: 400,
            message: message.into(),
        }
    }

    fn unsupported(what: impl std::fmt::Display) -> Self {
        Self::bad(format!(
            "the InfluxDB 3 simulator does not support {what}; it answers SELECT on one system table with \
             column lists, WHERE (comparisons, LIKE, IS NULL, IN, AND/OR/NOT, CAST AS TIMESTAMP, $params), \
             ORDER BY, LIMIT and OFFSET"
        ))
    }
}

/// The result of a query: column names and rows in order.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

struct Ctx<'a> {
    /// The qualified table name, e.g. `system.tokens`.
    table: &'a str,
    columns: &'a [&'a str],
    params: &'a HashMap<String, Value>,
    alias: Option<String>,
}

/// Runs `sql` on the one table it reads: `columns_of` gives a qualified table's columns (`None`
/// if there is no such table), and `rows` its rows (only called once the query has been planned,
/// so planning errors come first, as in DataFusion).
pub fn run(
    sql: &str,
    params: &HashMap<String, Value>,
    columns_of: impl Fn(&str) -> Option<Vec<&'static str>>,
    rows: impl FnOnce(&str) -> Vec<Vec<Value>>,
) -> Result<QueryOutput, SqlError> {
    let statements = super::parse::parse(sql).map_err(SqlError::bad)?;
    let [Statement::Query(query)] = statements.as_slice() else {
        return Err(SqlError::unsupported(
            "anything but a single SELECT statement",
        ));
    };
    if query.with.is_some()
        || query.fetch.is_some()
        || !query.locks.is_empty()
        || !query.pipe_operators.is_empty()
    {
        return Err(SqlError::unsupported(
            "WITH, FETCH, locking or pipe clauses",
        ));
    }
    let SetExpr::Select(select) = query.body.as_ref() else {
        return Err(SqlError::unsupported("set operations or VALUES"));
    };
    let plain_group_by =
        matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    if select.distinct.is_some()
        || select.top.is_some()
        || select.into.is_some()
        || select.having.is_some()
        || select.qualify.is_some()
        || select.prewhere.is_some()
        || !plain_group_by
        || !select.lateral_views.is_empty()
        || !select.named_window.is_empty()
        || !select.sort_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
        || select.connect_by.is_some()
    {
        return Err(SqlError::unsupported(
            "DISTINCT, GROUP BY, HAVING, windows or similar clauses",
        ));
    }
    let (table, alias) = table_alias(select)?;
    let columns = columns_of(&table).ok_or_else(|| {
        SqlError::bad(format!("Error during planning: table '{table}' not found"))
    })?;
    let columns = columns.as_slice();
    let ctx = Ctx {
        table: &table,
        columns,
        params,
        alias,
    };

    let mut projection: Vec<(String, Ex)> = Vec::new();
    for item in &select.projection {
        match item {
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..) => {
                projection.extend(
                    columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| ((*c).to_owned(), Ex::Col(i))),
                );
            }
            SelectItem::UnnamedExpr(e) => projection.push((output_name(e)?, column_only(e, &ctx)?)),
            SelectItem::ExprWithAlias { expr, alias } => {
                projection.push((alias.value.clone(), column_only(expr, &ctx)?));
            }
        }
    }
    let filter = select
        .selection
        .as_ref()
        .map(|e| compile(e, &ctx))
        .transpose()?;
    let mut order: Vec<(Ex, bool, bool)> = Vec::new();
    if let Some(order_by) = &query.order_by {
        let OrderByKind::Expressions(exprs) = &order_by.kind else {
            return Err(SqlError::unsupported("ORDER BY ALL"));
        };
        for o in exprs {
            let ex = order_key(&o.expr, &projection, &ctx)?;
            let asc = o.options.asc.unwrap_or(true);
            order.push((ex, asc, o.options.nulls_first.unwrap_or(!asc)));
        }
    }
    let (limit, offset) = limits(query.limit_clause.as_ref(), &ctx)?;

    let mut kept = Vec::new();
    for row in rows(&table) {
        let keep = match &filter {
            Some(f) => {
                truth(f.eval(&row).map_err(SqlError::bad)?.as_ref()).map_err(SqlError::bad)?
                    == Some(true)
            }
            None => true,
        };
        if keep {
            kept.push(row);
        }
    }
    if !order.is_empty() {
        let mut keyed = Vec::with_capacity(kept.len());
        for row in kept {
            let keys = order
                .iter()
                .map(|(e, ..)| e.eval(&row).map(std::borrow::Cow::into_owned))
                .collect::<Result<Vec<_>, _>>()
                .map_err(SqlError::bad)?;
            keyed.push((keys, row));
        }
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, (_, asc, nulls_first)) in order.iter().enumerate() {
                let (x, y) = (&a[i], &b[i]);
                let ord = match (x == &Value::Null, y == &Value::Null) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => {
                        if *nulls_first {
                            std::cmp::Ordering::Less
                        } else {
                            std::cmp::Ordering::Greater
                        }
                    }
                    (false, true) => {
                        if *nulls_first {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Less
                        }
                    }
                    (false, false) => {
                        if *asc {
                            sort_cmp(x, y)
                        } else {
                            sort_cmp(y, x)
                        }
                    }
                };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
        kept = keyed.into_iter().map(|(_, row)| row).collect();
    }
    let rows = kept
        .into_iter()
        .skip(offset)
        .take(limit.unwrap_or(usize::MAX))
        .map(|row| {
            projection
                .iter()
                .map(|(_, e)| e.eval(&row).map(std::borrow::Cow::into_owned))
                .collect::<Result<Vec<_>, _>>()
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(SqlError::bad)?;
    Ok(QueryOutput {
        columns: projection.into_iter().map(|(n, _)| n).collect(),
        rows,
    })
}

/// The qualified name of the table in FROM, and its alias.
fn table_alias(select: &ast::Select) -> Result<(String, Option<String>), SqlError> {
    let [from] = select.from.as_slice() else {
        return Err(SqlError::unsupported(
            "a query without exactly one table in FROM",
        ));
    };
    if !from.joins.is_empty() {
        return Err(SqlError::unsupported("JOIN"));
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &from.relation
    else {
        return Err(SqlError::unsupported(
            "subqueries or table functions in FROM",
        ));
    };
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Ok(normalise(i)),
            ObjectNamePart::Function(_) => Err(SqlError::unsupported("table functions")),
        })
        .collect::<Result<_, _>>()?;
    Ok((parts.join("."), alias.as_ref().map(|a| normalise(&a.name))))
}

fn normalise(ident: &ast::Ident) -> String {
    if ident.quote_style.is_some() {
        ident.value.clone()
    } else {
        ident.value.to_lowercase()
    }
}

fn output_name(e: &Expr) -> Result<String, SqlError> {
    match e {
        Expr::Identifier(i) => Ok(normalise(i)),
        Expr::CompoundIdentifier(parts) => parts
            .last()
            .map(normalise)
            .ok_or_else(|| SqlError::unsupported(e)),
        other => Err(SqlError::unsupported(format!(
            "the expression `{other}` in the SELECT list"
        ))),
    }
}

fn column_only(e: &Expr, ctx: &Ctx) -> Result<Ex, SqlError> {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => compile(e, ctx),
        other => Err(SqlError::unsupported(format!(
            "the expression `{other}` in the SELECT list"
        ))),
    }
}

fn column(parts: &[ast::Ident], ctx: &Ctx) -> Result<Ex, SqlError> {
    let names: Vec<String> = parts.iter().map(normalise).collect();
    let (qualifier, name) = names.split_at(names.len().saturating_sub(1));
    let qualifier = qualifier.join(".");
    let bare = ctx.table.rsplit('.').next().unwrap_or(ctx.table);
    let qualifier_ok = qualifier.is_empty()
        || qualifier == ctx.table
        || qualifier == bare
        || ctx.alias.as_deref() == Some(&qualifier);
    let found = name
        .first()
        .and_then(|n| ctx.columns.iter().position(|c| c == n));
    match found {
        Some(i) if qualifier_ok => Ok(Ex::Col(i)),
        _ => {
            let valid: Vec<String> = ctx
                .columns
                .iter()
                .map(|c| format!("{}.{c}", ctx.table))
                .collect();
            Err(SqlError {
                status: 500,
                message: format!(
                    "Schema error: No field named {}. Valid fields are {}.",
                    names.join("."),
                    valid.join(", ")
                ),
            })
        }
    }
}

fn order_key(e: &Expr, projection: &[(String, Ex)], ctx: &Ctx) -> Result<Ex, SqlError> {
    if let Expr::Identifier(i) = e
        && let Some((_, ex)) = projection.iter().find(|(name, _)| *name == normalise(i))
    {
        return Ok(ex.clone());
    }
    if let Expr::Value(v) = e
        && let ast::Value::Number(n, _) = &v.value
    {
        let pos: usize = n
            .parse()
            .map_err(|_| SqlError::unsupported(format!("ORDER BY {n}")))?;
        return projection
            .get(pos.wrapping_sub(1))
            .map(|(_, ex)| ex.clone())
            .ok_or_else(|| {
                SqlError::bad(format!(
                    "Error during planning: Order by column out of bounds: {pos}"
                ))
            });
    }
    compile(e, ctx)
}

fn limits(clause: Option<&LimitClause>, ctx: &Ctx) -> Result<(Option<usize>, usize), SqlError> {
    let count = |e: &Expr| -> Result<usize, SqlError> {
        match compile(e, ctx)?
            .eval(&[])
            .map_err(SqlError::bad)?
            .into_owned()
        {
            Value::Int(i) if i >= 0 => Ok(i as usize),
            Value::UInt(u) => Ok(usize::try_from(u).unwrap_or(usize::MAX)),
            _ => Err(SqlError::bad(format!(
                "Error during planning: LIMIT and OFFSET must be non-negative integers, not {e}"
            ))),
        }
    };
    match clause {
        None => Ok((None, 0)),
        Some(LimitClause::LimitOffset {
            limit,
            offset,
            limit_by,
        }) => {
            if !limit_by.is_empty() {
                return Err(SqlError::unsupported("LIMIT BY"));
            }
            let limit = limit.as_ref().map(count).transpose()?;
            let offset = offset
                .as_ref()
                .map(|o| count(&o.value))
                .transpose()?
                .unwrap_or(0);
            Ok((limit, offset))
        }
        Some(LimitClause::OffsetCommaLimit { .. }) => {
            Err(SqlError::unsupported("LIMIT offset, count"))
        }
    }
}

fn compile(e: &Expr, ctx: &Ctx) -> Result<Ex, SqlError> {
    let b = |e: &Expr| compile(e, ctx).map(Box::new);
    Ok(match e {
        Expr::Identifier(i) => column(std::slice::from_ref(i), ctx)?,
        Expr::CompoundIdentifier(parts) => column(parts, ctx)?,
        Expr::Nested(inner) => compile(inner, ctx)?,
        Expr::Value(v) => Ex::Lit(literal(&v.value, ctx)?),
        Expr::TypedString(ts) if is_timestamp(&ts.data_type) => match &ts.value.value {
            ast::Value::SingleQuotedString(s) => {
                Ex::Lit(Value::Ts(parse_timestamp(s).map_err(SqlError::bad)?))
            }
            other => return Err(SqlError::unsupported(format!("TIMESTAMP {other}"))),
        },
        // A cast of a constant (the usual `CAST($now AS TIMESTAMP)`) is done once, not per row.
        Expr::Cast {
            expr,
            data_type,
            format: None,
            ..
        } if is_timestamp(data_type) => match compile(expr, ctx)? {
            Ex::Lit(v) => Ex::Lit(cast_ts(&v).map_err(SqlError::bad)?),
            other => Ex::CastTs(Box::new(other)),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Not,
            expr,
        } => Ex::Not(b(expr)?),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match compile(expr, ctx)? {
            Ex::Lit(Value::Int(i)) => Ex::Lit(Value::Int(i.checked_neg().ok_or_else(|| {
                SqlError::bad(format!(
                    "Arrow error: Arithmetic overflow: Overflow happened on: - {i}"
                ))
            })?)),
            _ => return Err(SqlError::unsupported(format!("the expression `{e}`"))),
        },
        Expr::IsNull(inner) => Ex::IsNull {
            expr: b(inner)?,
            negated: false,
        },
        Expr::IsNotNull(inner) => Ex::IsNull {
            expr: b(inner)?,
            negated: true,
        },
        Expr::InList {
            expr,
            list,
            negated,
        } => Ex::InList {
            expr: b(expr)?,
            list: list
                .iter()
                .map(|i| compile(i, ctx))
                .collect::<Result<_, _>>()?,
            negated: *negated,
        },
        Expr::Like {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        } => Ex::Like {
            expr: b(expr)?,
            pattern: b(pattern)?,
            negated: *negated,
            case_insensitive: false,
        },
        Expr::ILike {
            negated,
            any: false,
            expr,
            pattern,
            escape_char: None,
        } => Ex::Like {
            expr: b(expr)?,
            pattern: b(pattern)?,
            negated: *negated,
            case_insensitive: true,
        },
        Expr::BinaryOp { left, op, right } => {
            let (l, r) = (b(left)?, b(right)?);
            match op {
                BinaryOperator::And => Ex::And(l, r),
                BinaryOperator::Or => Ex::Or(l, r),
                BinaryOperator::Eq => Ex::Cmp(CmpOp::Eq, l, r),
                BinaryOperator::NotEq => Ex::Cmp(CmpOp::NotEq, l, r),
                BinaryOperator::Lt => Ex::Cmp(CmpOp::Lt, l, r),
                BinaryOperator::LtEq => Ex::Cmp(CmpOp::LtEq, l, r),
                BinaryOperator::Gt => Ex::Cmp(CmpOp::Gt, l, r),
                BinaryOperator::GtEq => Ex::Cmp(CmpOp::GtEq, l, r),
                other => return Err(SqlError::unsupported(format!("the operator {other}"))),
            }
        }
        other => return Err(SqlError::unsupported(format!("the expression `{other}`"))),
    })
}

fn is_timestamp(t: &DataType) -> bool {
    matches!(t, DataType::Timestamp(..) | DataType::Datetime(_))
}

fn literal(v: &ast::Value, ctx: &Ctx) -> Result<Value, SqlError> {
    Ok(match v {
        ast::Value::Null => Value::Null,
        ast::Value::Boolean(b) => Value::Bool(*b),
        ast::Value::SingleQuotedString(s) => Value::Str(s.clone()),
        ast::Value::Number(n, _) => match (n.parse::<i64>(), n.parse::<u64>()) {
            (Ok(i), _) => Value::Int(i),
            (_, Ok(u)) => Value::UInt(u),
            _ => return Err(SqlError::unsupported(format!("the number {n}"))),
        },
        ast::Value::Placeholder(p) => {
            let name = p.trim_start_matches(['$', ':', '@']);
            ctx.params.get(name).cloned().ok_or_else(|| {
                SqlError::bad(format!(
                    "Error during planning: No value found for placeholder with name {p}"
                ))
            })?
        }
        other => return Err(SqlError::unsupported(format!("the literal {other}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLS: [&str; 4] = ["token_id", "name", "expiry", "permissions"];

    fn rows() -> Vec<Vec<Value>> {
        let r = |id: u64, name: &str, exp: Option<i64>, p: &str| {
            vec![
                Value::UInt(id),
                Value::Str(name.into()),
                exp.map_or(Value::Null, Value::Ts),
                Value::Str(p.into()),
            ]
        };
        vec![
            r(0, "_admin", None, "*:*:*"),
            r(2, "short", Some(1_000), "*:*:*"),
            r(3, "grafana-reader", Some(5_000), "db:metrics:read"),
            r(4, "ci-bot", None, "*:*:*"),
        ]
    }

    fn q(sql: &str, params: &[(&str, Value)]) -> Result<QueryOutput, SqlError> {
        let params = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let cols = |t: &str| (t == TOKENS_TABLE).then(|| COLS.to_vec());
        run(sql, &params, cols, |_| rows())
    }

    fn names(out: QueryOutput) -> Vec<String> {
        let i = out.columns.iter().position(|c| c == "name").unwrap();
        out.rows
            .into_iter()
            .map(|r| match &r[i] {
                Value::Str(s) => s.clone(),
                _ => panic!(),
            })
            .collect()
    }

    #[test]
    fn projection_filter_order_limit() {
        let out = q(
            "SELECT token_id, name FROM system.tokens WHERE name LIKE $pat ORDER BY name LIMIT 10",
            &[("pat", Value::Str("%i%".into()))],
        )
        .unwrap();
        assert_eq!(out.columns, vec!["token_id", "name"]);
        assert_eq!(names(out), vec!["_admin", "ci-bot"]);
        let out = q(
            "select name from system.tokens order by token_id desc limit 2 offset 1",
            &[],
        )
        .unwrap();
        assert_eq!(names(out), vec!["grafana-reader", "short"]);
    }

    #[test]
    fn nulls_and_timestamps() {
        let out = q("SELECT name FROM system.tokens WHERE expiry IS NOT NULL AND expiry <= CAST($now AS TIMESTAMP)", &[("now", Value::Str("1970-01-01T00:00:02".into()))]).unwrap();
        assert_eq!(names(out), vec!["short"]);
        let out = q(
            "SELECT name FROM system.tokens WHERE expiry IS NULL OR expiry > '1970-01-01T00:00:02'",
            &[],
        )
        .unwrap();
        assert_eq!(names(out), vec!["_admin", "grafana-reader", "ci-bot"]);
        let out = q(
            "SELECT name FROM system.tokens WHERE NOT expiry > '1970-01-01T00:00:02'",
            &[],
        )
        .unwrap();
        assert_eq!(names(out), vec!["short"], "NOT NULL stays unknown");
        let out = q(
            "SELECT name, expiry FROM system.tokens ORDER BY expiry DESC",
            &[],
        )
        .unwrap();
        assert_eq!(
            names(out),
            vec!["_admin", "ci-bot", "grafana-reader", "short"],
            "NULLS FIRST when descending"
        );
    }

    #[test]
    fn in_lists_and_not_equal() {
        let out = q(
            "SELECT name FROM system.tokens WHERE token_id IN (2, 4) AND permissions <> '*:*:x'",
            &[],
        )
        .unwrap();
        assert_eq!(names(out), vec!["short", "ci-bot"]);
    }

    #[test]
    fn errors_match_the_real_server() {
        let e = q("SELEC name FROM system.tokens", &[]).unwrap_err();
        assert_eq!(e, SqlError { status: 400, message: "SQL error: ParserError(\"Expected: an SQL statement, found: SELEC at Line: 1, Column: 1\")".into() });
        let e = q("SELECT nope FROM system.tokens", &[]).unwrap_err();
        assert_eq!(e.status, 500);
        assert!(e.message.starts_with("Schema error: No field named nope. Valid fields are system.tokens.token_id, system.tokens.name"), "{}", e.message);
        let e = q("SELECT name FROM system.tokens WHERE name = $missing", &[]).unwrap_err();
        assert_eq!(
            e.message,
            "Error during planning: No value found for placeholder with name $missing"
        );
    }

    #[test]
    fn unsupported_sql_is_a_clear_400() {
        for sql in [
            "SELECT count(*) FROM system.tokens",
            "SELECT name FROM system.tokens GROUP BY name",
            "SELECT name FROM system.tokens; SELECT 1",
            "DELETE FROM system.tokens",
            "SELECT name FROM system.tokens WHERE name LIKE 'a' ESCAPE '!'",
            "SELECT a.name FROM system.tokens a JOIN system.tokens b ON a.name = b.name",
        ] {
            let e = q(sql, &[]).unwrap_err();
            assert_eq!(e.status, 400, "{sql}");
            assert!(
                e.message.contains("does not support"),
                "{sql}: {}",
                e.message
            );
        }
        assert_eq!(
            q("SELECT * FROM system.queries", &[]).unwrap_err().message,
            "Error during planning: table 'system.queries' not found"
        );
    }

    #[test]
    fn hostile_parameters_are_values_not_sql() {
        for evil in ["'; DROP TABLE tokens; --", "%", "_admin' OR '1'='1", "\\"] {
            let out = q(
                "SELECT name FROM system.tokens WHERE name = $n",
                &[("n", Value::Str(evil.into()))],
            )
            .unwrap();
            assert!(out.rows.is_empty(), "{evil}");
        }
    }
}
