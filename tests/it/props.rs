//! Property tests for every parser that reads outside input: token names, permissions,
//! expiries, durations and dates (from people and from InfluxDB), the config file, and redaction.

use std::path::Path;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use tokenwarden::config::Config;
use tokenwarden::tokens::{Expiry, Permission, TokenName, redact};

fn now() -> DateTime<Utc> {
    "2026-11-28T00:00:00Z".parse().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_as_a_name_or_fails_cleanly(s in any::<String>()) {
        // An existing name is kept exactly as InfluxDB holds it; showing it escapes every control.
        match TokenName::parse(&s) {
            Ok(n) => {
                prop_assert_eq!(n.as_str(), s.as_str());
                let shown = tokenwarden::shown::shown(n.as_str());
                prop_assert!(!shown.chars().any(char::is_control), "{:?}", shown);
            }
            Err(_) => prop_assert!(s.is_empty() || s.len() > TokenName::MAX_LEN),
        }
        if let Ok(n) = TokenName::parse_new(&s) {
            prop_assert!(TokenName::parse(n.as_str()).is_ok());
            prop_assert!(n.as_str().chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
            prop_assert!(n.as_str().starts_with(|c: char| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn plain_names_are_always_accepted(s in "[a-zA-Z0-9][a-zA-Z0-9._-]{0,100}") {
        let name = TokenName::parse_new(&s).unwrap();
        prop_assert_eq!(name.as_str(), s.as_str());
    }

    #[test]
    fn any_text_parses_as_a_permission_or_fails_with_a_hint(s in any::<String>()) {
        match Permission::parse(&s) {
            Ok(p) => prop_assert_eq!(Permission::parse(&p.to_string()).unwrap(), p),
            Err(e) => prop_assert!(!e.0.is_empty()),
        }
    }

    #[test]
    fn valid_permissions_round_trip(
        dbs in proptest::collection::vec("[a-z0-9][a-z0-9_-]{0,20}", 1..4),
        all in any::<bool>(),
        actions in proptest::sample::subsequence(vec!["read", "write", "create", "describe", "delete"], 1..5),
    ) {
        let names = if all { "*".to_owned() } else { dbs.join(",") };
        let text = format!("db:{names}:{}", actions.join(","));
        let p = Permission::parse(&text).unwrap();
        prop_assert_eq!(Permission::parse(&p.to_string()).unwrap(), p.clone());
        let wire = p.to_wire();
        prop_assert!(!wire.resource_names.is_empty() && !wire.actions.is_empty());
        for db in &dbs {
            prop_assert!(p.grants_database(db));
        }
    }

    #[test]
    fn any_text_parses_as_an_expiry_or_fails_cleanly(s in any::<String>()) {
        if let Ok(Expiry::At(at)) = Expiry::parse_any(&s, now()) {
            prop_assert!(at > now(), "an accepted expiry lies in the future");
        }
    }

    #[test]
    fn durations_become_future_times(n in 1u64..30_000, unit in prop::sample::select(vec!["s", "m", "h", "d"])) {
        let e = Expiry::after(&format!("{n}{unit}"), now()).unwrap();
        let secs = e.expiry_secs(now()).unwrap().unwrap();
        let scale = match unit { "s" => 1, "m" => 60, "h" => 3600, _ => 86_400 };
        prop_assert_eq!(secs, n * scale);
    }

    #[test]
    fn past_times_are_refused(secs in 0i64..3_000_000_000) {
        let past = DateTime::from_timestamp(now().timestamp() - secs, 0).unwrap();
        prop_assert!(Expiry::at(&past.to_rfc3339(), now()).is_err());
    }

    #[test]
    fn any_text_is_a_config_or_an_error_naming_the_file(s in any::<String>()) {
        if let Err(e) = Config::parse(&s, Path::new("/etc/tw/tokenwarden.toml")) {
            prop_assert!(e.to_string().contains("/etc/tw/tokenwarden.toml"), "{}", e);
        }
    }

    #[test]
    fn generated_configs_are_accepted_or_explained(
        name in "[a-z][a-z0-9-]{0,12}",
        port in 1u16..65535,
        timeout in prop::sample::select(vec!["5s", "10s", "0s", "1m", "soon"]),
        edition in prop::sample::select(vec!["auto", "core", "enterprise", "cloud"]),
        protected in proptest::collection::vec("[a-z*?\\[\\]-]{1,8}", 0..3),
    ) {
        let text = format!(
            "[[instances]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\ntoken_env = \"T\"\ntimeout = \"{timeout}\"\nedition = \"{edition}\"\nprotected = {protected:?}\n"
        );
        match Config::parse(&text, Path::new("c.toml")) {
            Ok(c) => {
                prop_assert_eq!(&c.instances[0].name, &name);
                prop_assert!(c.instances[0].protected.protecting("_admin").is_some());
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(e.starts_with("config file c.toml: "), "{}", e);
                let why = ["timeout", "edition", "glob", "variant"].iter().any(|k| e.contains(k));
                prop_assert!(why, "{}", e);
            }
        }
    }

    #[test]
    fn redaction_leaves_no_token(prefix in ".{0,40}", secret in "[A-Za-z0-9_-]{1,90}", suffix in ".{0,40}") {
        let text = format!("{prefix}apiv3_{secret}{suffix}");
        let clean = redact(&text);
        let raw = format!("apiv3_{}", secret);
        prop_assert!(!clean.contains(&raw));
        prop_assert!(clean.contains("apiv3_<redacted>"));
    }
}

/// Discord message builders against odd input: every text fits Discord's limits, whatever the
/// names, reasons and errors hold.
mod discord_texts {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use tokenwarden::actor::Actor;
    use tokenwarden::discord::{self, text};
    use tokenwarden::gate::{Approval, GateMode, Pending, PendingState};
    use tokenwarden::service::{ExpiredToken, Operation};
    use tokenwarden::tokens::{Token, TokenKind, TokenName};

    use crate::discord_fake::limits;

    fn now() -> DateTime<Utc> {
        "2026-11-28T00:00:00Z".parse().unwrap()
    }

    /// Long and odd text: unicode, backticks, markdown, mentions, control characters, up to
    /// 6,000 characters.
    fn odd() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[`*_~|>#@<:\\\\ a-z\\-\u{0}-\u{1f}\u{202e}é漢🦀]{0,300}",
            ("[`@a-z\u{7}🦀]{1,8}", 0usize..6000)
                .prop_map(|(s, n)| s.repeat(n / s.chars().count().max(1) + 1)),
            Just("@everyone <@&1> ```".repeat(400)),
        ]
    }

    fn name(s: &str) -> TokenName {
        TokenName::parse(s).unwrap_or_else(|_| TokenName::parse("fallback").unwrap())
    }

    fn token(name: &str, id: u64, permissions: &str) -> Token {
        Token {
            id,
            name: name.to_owned(),
            kind: TokenKind::Resource,
            permissions: vec![permissions.to_owned(); 3],
            created_at: now(),
            expiry: Some(now()),
            updated_at: None,
            created_by: None,
            description: None,
        }
    }

    /// A message body as Discord receives it.
    fn fits(body: &Value) -> Result<(), TestCaseError> {
        limits(body).map_err(|why| TestCaseError::fail(format!("{why}: {body}")))
    }

    fn embed_fits(embed: serenity::builder::CreateEmbed) -> Result<(), TestCaseError> {
        fits(&json!({ "embeds": [serde_json::to_value(embed).unwrap()] }))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

        #[test]
        fn cards_fit_in_every_state(
            a in odd(), b in odd(), reason in odd(), instance in odd(), state in 0usize..7,
            approvers in 0usize..40, expired in 0usize..300,
        ) {
            let requester = Actor::mcp_http(&b, &a);
            let action = if expired > 0 {
                Operation::PruneExpired {
                    instance: instance.clone(),
                    tokens: (0..expired as u64)
                        .map(|i| ExpiredToken { name: name(&a), id: i, expired_at: now() })
                        .collect(),
                }
            } else {
                Operation::DeleteToken { instance: instance.clone(), name: name(&a), id: u64::MAX }
            };
            let mut p = Pending::new(
                action,
                requester.clone(),
                GateMode::Approvals { required: 3, allow_self: false, approve_from: None },
                Duration::from_secs(900),
                now(),
            );
            p.reason = Some(reason.clone());
            p.approvals = (0..approvers).map(|i| Approval { by: Actor::mcp_http(&i.to_string(), &b), at: now() }).collect();
            p.state = match state {
                0 => PendingState::Open,
                1 => PendingState::Executing,
                2 => PendingState::Succeeded,
                3 => PendingState::Failed { reason: reason.clone() },
                4 => PendingState::Unknown { reason: b.clone() },
                5 => PendingState::Rejected { by: requester, reason: Some(reason.clone()) },
                _ => PendingState::Expired,
            };
            let line = discord::text::plain(&b, 6000);
            embed_fits(discord::card_embed(&p, Some(&line)))?;
            let dm = discord::closed_text(&p);
            fits(&serde_json::to_value(text::message(&dm)).unwrap())?;
        }

        #[test]
        fn list_pages_fit(names in proptest::collection::vec(odd(), 0..16), instance in odd(), perms in odd(), page in prop_oneof![0usize..1000, any::<usize>()]) {
            let tokens: Vec<Token> = names.iter().enumerate().map(|(i, n)| token(n, i as u64, &perms)).collect();
            let embed = discord::list_embed(&instance, &tokens, page, now());
            let v = serde_json::to_value(&embed).unwrap();
            fits(&json!({ "embeds": [v.clone()] }))?;
            let description = v["description"].as_str().unwrap_or_default();
            prop_assert!(
                description == "No tokens match." || description.matches("```").count() == 2,
                "no name breaks out of the table: {}", description
            );
        }

        #[test]
        fn replies_dms_and_choices_fit(s in odd(), name in odd(), instance in odd(), id in any::<u64>()) {
            let said = text::plain(&s, 6000);
            let mut escaped = false;
            for c in said.chars() {
                prop_assert!(escaped || !"@<`*_~|".contains(c), "an unescaped {:?}", c);
                escaped = !escaped && c == '\\';
            }
            let code = text::code(&name, 300);
            prop_assert_eq!(code.matches('`').count(), 2, "one code span: {}", code);
            for body in [
                serde_json::to_value(text::reply(&said)).unwrap()["data"].clone(),
                serde_json::to_value(text::edit(&said)).unwrap(),
                serde_json::to_value(text::followup(&said)).unwrap(),
                serde_json::to_value(text::message(&format!("{said} {code} {said}"))).unwrap(),
            ] {
                fits(&body)?;
                prop_assert_eq!(&body["allowed_mentions"]["parse"], &json!([]));
            }
            let secret = format!("apiv3_{}", "A".repeat(88));
            let dm = discord::secret_text(&token(&name, id, "*:*:*"), &instance, &secret).unwrap();
            prop_assert!(dm.contains(&secret), "the secret is never cut");
            fits(&json!({ "content": dm }))?;
            let (label, value) = discord::name_choice(&token(&name, id, "*:*:*"));
            fits(&json!({ "choices": [{ "name": text::label(&label, text::CHOICE), "value": value }] }))?;
            let by_id = format!("id:{}", id);
            prop_assert!(value == name || value == by_id, "{}", value);
        }
    }
}

/// Dates and durations from anywhere (a person, the config, InfluxDB's answers) at any time
/// chrono can hold: parsing, arithmetic and every rendering of them answer or refuse, never panic.
mod dates {
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use tokenwarden::influx::decode;
    use tokenwarden::mcp::args::TokenView;
    use tokenwarden::tokens::{Expiry, ListFilter, MAX_DURATION, later, parse_duration};

    /// Any instant chrono can represent, the ends included.
    fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
        let (min, max) = (
            DateTime::<Utc>::MIN_UTC.timestamp(),
            DateTime::<Utc>::MAX_UTC.timestamp(),
        );
        prop_oneof![
            (min..=max, 0u32..1_000_000_000)
                .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap_or_default()),
            Just(DateTime::<Utc>::MIN_UTC),
            Just(DateTime::<Utc>::MAX_UTC),
            (0i64..4_000_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default()),
        ]
    }

    /// Durations as people write them, with numbers of any size.
    fn human_duration() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            (
                any::<u64>(),
                prop::sample::select(vec!["ns", "us", "ms", "s", "m", "h", "d", "w", "M", "y"])
            )
                .prop_map(|(n, unit)| format!("{n}{unit}")),
            (0u64..400, 0u64..400).prop_map(|(y, d)| format!("{y}y {d}d")),
        ]
    }

    /// What InfluxDB might put where a date belongs: any JSON scalar, timestamps of any year.
    fn date_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            any::<String>().prop_map(Value::from),
            "[+-]?[0-9]{1,7}-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,12})?(Z|[+-][0-9]{2}:[0-9]{2})?"
                .prop_map(Value::from),
            prop::sample::select(vec![
                "+262143-12-31T23:59:59.999999999Z",
                "-262143-01-01T00:00:00Z",
                "9999-12-31T23:59:59.999",
                "0000-01-01 00:00:00",
            ])
            .prop_map(Value::from),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn any_duration_text_is_at_most_100_years_or_an_error(s in human_duration()) {
            if let Ok(d) = parse_duration(&s) {
                prop_assert!(d <= MAX_DURATION, "{:?} from {:?}", d, s);
            }
        }

        #[test]
        fn adding_any_duration_to_any_time_saturates(at in any_time(), secs in any::<u64>(), nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            let sum = later(at, d);
            prop_assert!(sum >= at);
            if let Some(exact) = chrono::Duration::from_std(d).ok().and_then(|d| at.checked_add_signed(d)) {
                prop_assert_eq!(sum, exact);
            } else {
                prop_assert_eq!(sum, DateTime::<Utc>::MAX_UTC);
            }
        }

        #[test]
        fn any_expiry_text_at_any_time_is_a_later_time_or_an_error(
            s in prop_oneof![human_duration(), any::<String>(), Just("never".to_owned())],
            now in any_time(),
        ) {
            for parsed in [Expiry::parse_any(&s, now), Expiry::from_options(Some(&s), None, now), Expiry::from_options(None, Some(&s), now)] {
                if let Ok(Expiry::At(at)) = parsed {
                    prop_assert!(at > now, "{} is not after {}", at, now);
                    let _ = Expiry::At(at).expiry_secs(now);
                }
            }
        }

        #[test]
        fn influxdb_answers_with_any_dates_decode_and_render_or_fail_cleanly(
            created_at in date_value(),
            expiry in date_value(),
            updated_at in date_value(),
            now in any_time(),
            within in 0u64..=MAX_DURATION.as_secs(),
        ) {
            let secret = format!("apiv3_{}", "Z".repeat(86));
            let body = json!({"id": 1, "name": "t", "token": secret, "created_at": created_at, "expiry": expiry});
            let mut tokens = Vec::new();
            match decode::created("http://influx", body.to_string().as_bytes(), "t", vec!["*:*:*".into()], now) {
                Ok((c, _)) => tokens.push(c.token),
                Err(e) => prop_assert!(!e.to_string().contains(&secret), "{}", e),
            }
            let row = json!([{"token_id": 2, "name": "r", "created_at": created_at, "expiry": expiry, "updated_at": updated_at, "permissions": "db:metrics:read"}]);
            if let Ok(rows) = decode::token_rows("http://influx", row.to_string().as_bytes()) {
                tokens.extend(rows);
            }
            let filter = ListFilter {
                expiring_within: Some(Duration::from_secs(within)),
                ..ListFilter::default()
            };
            for t in &tokens {
                let _ = t.status(now);
                let _ = filter.matches(t, now);
                let _ = tokenwarden::cli::token_json(t, now);
                let _ = serde_json::to_string(&TokenView::new(t, now)).unwrap();
            }
            let _ = tokenwarden::cli::tokens_table(&tokens, now);
            let _ = tokenwarden::discord::list_embed("local", &tokens, 0, now);
        }
    }
}
