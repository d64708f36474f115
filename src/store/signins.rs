//! Sign-in attempts on the private reveal page, per person, in the store: a guesser who spreads
//! wrong passphrases over several replicas is counted once, and a lockout holds on every
//! replica (timed by the database's clock).

use super::sql::args;
use super::{Store, StoreError};

impl Store {
    /// Counts an attempt of `person` before their passphrase is checked (so concurrent guesses
    /// count too). `Some(ms)`: their sign-in is locked for that much longer, and this attempt
    /// is refused uncounted; `max` attempts without a success lock it for `lockout_ms`.
    pub fn signin_begin(
        &self,
        person: &str,
        max: u32,
        lockout_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|c| {
            let now = c.now_ms()?;
            let row = c.query_opt(
                "SELECT tried, locked_until_ms FROM signin_attempts WHERE person = ?1",
                args![person],
            )?;
            let (mut tried, mut locked): (i64, Option<i64>) = match &row {
                Some(r) => (r.get(0)?, r.get(1)?),
                None => (0, None),
            };
            match locked {
                Some(until) if until > now => return Ok(Some(until - now)),
                Some(_) => (tried, locked) = (0, None),
                None => {}
            }
            if tried >= i64::from(max) {
                let until = now.saturating_add(lockout_ms);
                c.execute(
                    "UPDATE signin_attempts SET locked_until_ms = ?2 WHERE person = ?1",
                    args![person, until],
                )?;
                return Ok(Some(lockout_ms));
            }
            c.execute(
                "INSERT INTO signin_attempts (person, tried, locked_until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (person) DO UPDATE SET tried = excluded.tried, locked_until_ms = excluded.locked_until_ms",
                args![person, tried + 1, locked],
            )?;
            Ok(None)
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
    crate::store::testing::contract! {
        fn wrong_passphrases_lock_a_person_on_every_process_until_the_lockout_ends(db) {
            let (a, b) = (db.open(), db.open());
            for store in [&a, &b, &a] {
                assert_eq!(store.signin_begin("ann", 3, 60_000).unwrap(), None);
            }
            assert!(!a.signin_failed("ann", 4, 60_000).unwrap(), "not at the limit");
            assert!(b.signin_failed("ann", 3, 60_000).unwrap(), "the third wrong one locks");
            assert!(!a.signin_failed("ann", 3, 60_000).unwrap(), "locked once");
            let left = a.signin_begin("ann", 3, 60_000).unwrap().unwrap();
            assert!(left > 0 && left <= 60_000, "{left}");
            assert!(b.signin_begin("ann", 3, 60_000).unwrap().is_some(), "on every process");
            assert_eq!(a.signin_begin("bob", 3, 60_000).unwrap(), None, "per person");

            a.signin_succeeded("bob").unwrap();
            assert_eq!(a.signin_begin("bob", 1, 0).unwrap(), None);
            assert_eq!(
                a.signin_begin("bob", 1, 0).unwrap(),
                Some(0),
                "at the limit, even a lockout of 0 refuses this attempt"
            );
            assert_eq!(
                a.signin_begin("bob", 1, 0).unwrap(),
                None,
                "and then it is over: counting starts again"
            );
        }
    }
}
