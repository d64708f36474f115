//! Query output in the formats `/api/v3/query_sql` offers, written as InfluxDB 3's Arrow writers do:
//! JSON arrays without null keys, JSON lines, CSV, and the `pretty` ASCII table.

use serde_json::{Map, Value as Json};

use super::sql::QueryOutput;
use super::value::{Value, format_timestamp};

/// A `format` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    #[serde(alias = "json_lines")]
    Jsonl,
    Csv,
    Pretty,
    Parquet,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Jsonl => "application/jsonl",
            Self::Csv => "text/csv",
            Self::Pretty => "text/plain; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

fn json_cell(v: &Value) -> Option<Json> {
    match v {
        Value::Null => None,
        Value::UInt(u) => Some(Json::from(*u)),
        Value::Int(i) => Some(Json::from(*i)),
        Value::Str(s) => Some(Json::from(s.as_str())),
        Value::Ts(t) => Some(Json::from(format_timestamp(*t))),
        Value::Bool(b) => Some(Json::from(*b)),
    }
}

fn text_cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::UInt(u) => u.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Str(s) => s.clone(),
        Value::Ts(t) => format_timestamp(*t),
        Value::Bool(b) => b.to_string(),
    }
}

fn json_row(columns: &[String], row: &[Value]) -> Json {
    let mut obj = Map::new();
    for (c, v) in columns.iter().zip(row) {
        if let Some(j) = json_cell(v) {
            obj.insert(c.clone(), j);
        }
    }
    Json::Object(obj)
}

/// Renders `out`; `None` for formats the simulator cannot produce (parquet).
pub fn render(out: &QueryOutput, format: Format) -> Option<String> {
    Some(match format {
        Format::Json => {
            let rows: Vec<Json> = out.rows.iter().map(|r| json_row(&out.columns, r)).collect();
            Json::Array(rows).to_string()
        }
        Format::Jsonl => out
            .rows
            .iter()
            .map(|r| format!("{}\n", json_row(&out.columns, r)))
            .collect(),
        Format::Csv => {
            let mut s = csv_line(out.columns.iter().cloned());
            for row in &out.rows {
                s.push_str(&csv_line(row.iter().map(text_cell)));
            }
            s
        }
        Format::Pretty => {
            let mut table = comfy_table::Table::new();
            table.load_preset("||--+-++|    ++++++");
            table.set_header(out.columns.iter());
            for row in &out.rows {
                table.add_row(row.iter().map(text_cell));
            }
            table.to_string()
        }
        Format::Parquet => return None,
    })
}

fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells
        .map(|c| {
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c
            }
        })
        .collect();
    format!("{}\n", cells.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out() -> QueryOutput {
        QueryOutput {
            columns: vec!["token_id".into(), "name".into(), "expiry".into()],
            rows: vec![
                vec![Value::UInt(0), Value::Str("_admin".into()), Value::Null],
                vec![
                    Value::UInt(3),
                    Value::Str("a,\"b\"".into()),
                    Value::Ts(1_795_911_757_188),
                ],
            ],
        }
    }

    #[test]
    fn json_drops_null_keys_and_keeps_column_order() {
        assert_eq!(
            render(&out(), Format::Json).unwrap(),
            r#"[{"token_id":0,"name":"_admin"},{"token_id":3,"name":"a,\"b\"","expiry":"2026-11-29T00:22:37.188"}]"#
        );
        let empty = QueryOutput {
            columns: vec!["name".into()],
            rows: vec![],
        };
        assert_eq!(render(&empty, Format::Json).unwrap(), "[]");
    }

    #[test]
    fn jsonl_csv_and_pretty() {
        assert_eq!(render(&out(), Format::Jsonl).unwrap().lines().count(), 2);
        assert_eq!(
            render(&out(), Format::Csv).unwrap(),
            "token_id,name,expiry\n0,_admin,\n3,\"a,\"\"b\"\"\",2026-11-29T00:22:37.188\n"
        );
        let pretty = render(&out(), Format::Pretty).unwrap();
        assert!(pretty.starts_with("+----------+"), "{pretty}");
        assert!(
            pretty.contains("| token_id | name   | expiry                  |"),
            "{pretty}"
        );
    }
}
