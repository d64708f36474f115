//! Parsing a query within what the simulator's stack holds: the operators counted on the tokens
//! before any tree exists, then `sqlparser` with a nesting limit. A refused query is a 400 in
//! DataFusion's `SQL error: ...` form; the process never overflows its stack.

use sqlparser::ast::Statement;
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Token, Tokenizer};

/// How deep `sqlparser` may recurse (its `RecursionLimitExceeded` beyond). DataFusion allows 50,
/// but in a debug build one level of `NOT`, `CASE` or `CAST(` takes about 100 KiB of the parser's
/// stack: 25 levels overflowed a 2 MiB worker thread. At 12 the deepest accepted query still runs
/// on half that stack, and 8 levels of parentheses are far more than tokenwarden or the official
/// MCP server ever sends.
pub const MAX_NESTING: usize = 12;

/// How many operators and keywords one query may hold. `a OR b OR c ...` and `x IS NULL IS NULL
/// ...` parse without recursion into a left-deep tree whose compiling, evaluation and drop do
/// recurse, one level per operator: about 450 levels overflowed a debug build. tokenwarden's
/// longest list query (every filter) holds 40.
pub const MAX_OPERATORS: usize = 200;

/// The statements of `sql`, or the 400 text refusing it.
pub fn parse(sql: &str) -> Result<Vec<Statement>, String> {
    let dialect = GenericDialect {};
    let refused = |e: ParserError| format!("SQL error: {e:?}");
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| refused(e.into()))?;
    let operators = tokens.iter().filter(|t| is_operator(&t.token)).count();
    if operators > MAX_OPERATORS {
        return Err(format!(
            "SQL error: query too complex: it holds {operators} operators and keywords, and the \
             InfluxDB 3 simulator accepts at most {MAX_OPERATORS} (a long OR chain is better written \
             as IN (...))"
        ));
    }
    Parser::new(&dialect)
        .with_recursion_limit(MAX_NESTING)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(refused)
}

/// Whether `t` can join two parts of an expression: every SQL operator is a symbol or a keyword.
/// Names that happen to be keywords count too, which only errs on the safe side.
fn is_operator(t: &Token) -> bool {
    match t {
        Token::Word(w) => w.keyword != Keyword::NoKeyword,
        Token::EOF
        | Token::Whitespace(_)
        | Token::Comma
        | Token::LParen
        | Token::RParen
        | Token::SemiColon
        | Token::Number(..)
        | Token::Placeholder(_)
        | Token::SingleQuotedString(_)
        | Token::DoubleQuotedString(_)
        | Token::NationalStringLiteral(_)
        | Token::EscapedStringLiteral(_)
        | Token::HexStringLiteral(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_literal_lists_are_not_operators() {
        let names: Vec<String> = (0..1_000).map(|i| format!("'n{i}'")).collect();
        let sql = format!(
            "SELECT name FROM system.tokens WHERE name IN ({})",
            names.join(", ")
        );
        assert!(parse(&sql).is_ok());
    }

    #[test]
    fn chains_and_nesting_are_refused_before_a_deep_tree_exists() {
        let chain = format!(
            "SELECT name FROM system.tokens WHERE {}",
            vec!["name = 'x'"; MAX_OPERATORS].join(" OR ")
        );
        let e = parse(&chain).unwrap_err();
        assert!(e.starts_with("SQL error: query too complex"), "{e}");
        let nested = format!(
            "SELECT name FROM system.tokens WHERE {}name = 'x'{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert_eq!(
            parse(&nested).unwrap_err(),
            "SQL error: RecursionLimitExceeded"
        );
        // sqlparser retries a failed branch, so a deep NOT chain ends in another parser error.
        let nots = |n: usize| {
            format!(
                "SELECT name FROM system.tokens WHERE {}name = 'x'",
                "NOT ".repeat(n)
            )
        };
        assert!(parse(&nots(MAX_NESTING)).is_err());
        assert!(parse(&nots(MAX_NESTING / 2)).is_ok());
    }
}
