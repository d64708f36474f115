//! Sign-in attempts on the private reveal page, per person, in the store: a guesser who spreads
//! wrong passphrases over several replicas is counted once, and a lockout holds on every
//! replica (timed by the database's clock).

use super::sql::args;
use super::{Store, StoreError};

/// Whether a person may try a passphrase now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// Counted; check it.
    Try,
    /// Locked for this many more milliseconds; `now` when this very attempt set the lock (then
    /// whoever asked withdraws the person's waiting secrets: exactly one caller sees it).
    Locked { left_ms: i64, now: bool },
}

impl Store {
    /// Counts an attempt of `person` before their passphrase is checked (so concurrent guesses
    /// count too); an attempt past `max` without a success locks their sign-in for
    /// `lockout_ms`, and is refused.
    pub fn signin_begin(
        &self,
        person: &str,
        max: u32,
        lockout_ms: i64,
    ) -> Result<SignIn, StoreError> {
        self.write(|c| {
            let now = c.now_ms()?;
            let row = c.query_opt(
                "SELECT tried, locked_until_ms FROM signin_attempts WHERE person = ?1",
                args![person],
            )?;
            let (mut tried, locked): (i64, Option<i64>) = match &row {
                Some(r) => (r.get(0)?, r.get(1)?),
                None => (0, None),
            };
            match locked {
                Some(until) if until > now => {
                    return Ok(SignIn::Locked {
                        left_ms: until - now,
                        now: false,
                    });
                }
                // A lockout that ended: counting starts again.
                Some(_) => tried = 0,
                None => {}
            }
            if tried >= i64::from(max) {
                let until = now.saturating_add(lockout_ms);
                c.execute(
                    "UPDATE signin_attempts SET locked_until_ms = ?2 WHERE person = ?1",
                    args![person, until],
                )?;
                return Ok(SignIn::Locked {
                    left_ms: lockout_ms,
                    now: true,
                });
            }
            c.execute(
                "INSERT INTO signin_attempts (person, tried, locked_until_ms) VALUES (?1, ?2, NULL)
                 ON CONFLICT (person) DO UPDATE SET tried = excluded.tried, locked_until_ms = NULL",
                args![person, tried + 1],
            )?;
            Ok(SignIn::Try)
        })
    }

    /// A wrong passphrase of `person`, counted by [`Store::signin_begin`]: true when it is the
    /// one that locks their sign-in (then their waiting secrets are withdrawn).
    pub fn signin_failed(
        &self,
        person: &str,
        max: u32,
        lockout_ms: i64,
    ) -> Result<bool, StoreError> {
        self.write(|c| {
            let now = c.now_ms()?;
            let locked = c.execute(
                "UPDATE signin_attempts SET locked_until_ms = ?3
                 WHERE person = ?1 AND tried >= ?2 AND locked_until_ms IS NULL",
                args![person, i64::from(max), now.saturating_add(lockout_ms)],
            )?;
            Ok(locked == 1)
        })
    }

    /// `person` signed in: their count starts over.
    pub fn signin_succeeded(&self, person: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "DELETE FROM signin_attempts WHERE person = ?1",
                args![person],
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::SignIn;

    crate::store::testing::contract! {
        fn wrong_passphrases_lock_a_person_on_every_process_until_the_lockout_ends(db) {
            let (a, b) = (db.open(), db.open());
            for store in [&a, &b, &a] {
                assert_eq!(store.signin_begin("ann", 3, 60_000).unwrap(), SignIn::Try);
            }
            assert!(!a.signin_failed("ann", 4, 60_000).unwrap(), "not at the limit");
            assert!(b.signin_failed("ann", 3, 60_000).unwrap(), "the third wrong one locks");
            assert!(!a.signin_failed("ann", 3, 60_000).unwrap(), "locked once");
            let SignIn::Locked { left_ms, now: false } = a.signin_begin("ann", 3, 60_000).unwrap()
            else {
                panic!("locked, and not by this attempt");
            };
            assert!(left_ms > 0 && left_ms <= 60_000, "{left_ms}");
            assert!(matches!(
                b.signin_begin("ann", 3, 60_000).unwrap(),
                SignIn::Locked { now: false, .. }
            ), "on every process");
            assert_eq!(a.signin_begin("bob", 3, 60_000).unwrap(), SignIn::Try, "per person");
        }

        fn an_attempt_past_the_limit_before_the_failures_land_locks_once_and_says_so(db) {
            // Four guesses at once: the fourth is counted before any of the first three failed.
            let store = db.open();
            for _ in 0..3 {
                assert_eq!(store.signin_begin("ann", 3, 60_000).unwrap(), SignIn::Try);
            }
            assert_eq!(
                store.signin_begin("ann", 3, 60_000).unwrap(),
                SignIn::Locked { left_ms: 60_000, now: true },
                "this attempt locks: its caller withdraws"
            );
            for _ in 0..3 {
                assert!(
                    !store.signin_failed("ann", 3, 60_000).unwrap(),
                    "the late failures find it locked already"
                );
            }
        }

        fn a_success_starts_the_count_over_and_a_lapsed_lockout_ends(db) {
            let store = db.open();
            assert_eq!(store.signin_begin("bob", 1, 0).unwrap(), SignIn::Try);
            store.signin_succeeded("bob").unwrap();
            assert_eq!(store.signin_begin("bob", 1, 0).unwrap(), SignIn::Try);
            assert_eq!(
                store.signin_begin("bob", 1, 0).unwrap(),
                SignIn::Locked { left_ms: 0, now: true },
                "at the limit, even a lockout of 0 refuses this attempt"
            );
            assert_eq!(
                store.signin_begin("bob", 1, 0).unwrap(),
                SignIn::Try,
                "and then it is over: counting starts again"
            );
        }
    }
}
