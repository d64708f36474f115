//! Named leases: one process at a time holds a lease (the Discord gateway connection), timed by
//! the database's clock, not the hosts'. A lease is free when nobody holds it, when its time ran
//! out unrenewed, or at once when its holder is a process on this host that no longer exists.

use super::sql::args;
use super::{Owner, Store, StoreError};

/// Who holds a lease, as the store says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseHolder {
    /// This process: it holds the lease until `ttl` from now.
    Me,
    /// Another process (`host:pid:nonce`), for this many more milliseconds.
    Other { holder: String, left_ms: i64 },
}

impl Store {
    /// Takes lease `name` for this process for `ttl_ms` if it is free, or renews it if this
    /// process holds it already; says who holds it now.
    pub fn take_lease(&self, name: &str, ttl_ms: i64) -> Result<LeaseHolder, StoreError> {
        let me = self.owner.to_string();
        self.write(|c| {
            let now = c.now_ms()?;
            let held = c.query_opt(
                "SELECT holder, until_ms FROM leases WHERE name = ?1",
                args![name],
            )?;
            if let Some(row) = held {
                let holder: String = row.get(0)?;
                let until: i64 = row.get(1)?;
                let free = holder == me
                    || until <= now
                    || Owner::parse(&holder).is_some_and(|o| o.is_certainly_dead());
                if !free {
                    return Ok(LeaseHolder::Other {
                        holder,
                        left_ms: until - now,
                    });
                }
            }
            c.execute(
                "INSERT INTO leases (name, holder, until_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms",
                args![name, &me, now.saturating_add(ttl_ms)],
            )?;
            Ok(LeaseHolder::Me)
        })
    }

    /// Gives lease `name` up, if this process holds it, so another can take it at once.
    pub fn release_lease(&self, name: &str) -> Result<(), StoreError> {
        self.write(|c| {
            c.execute(
                "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
                args![name, self.owner.to_string()],
            )
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::store::testing::contract! {
    fn one_holder_at_a_time_until_it_lapses_or_lets_go(db) {
        let a = db.open();
        let b = db.open();
        assert_eq!(a.take_lease("gw", 60_000).unwrap(), LeaseHolder::Me);
        assert_eq!(
            a.take_lease("gw", 60_000).unwrap(),
            LeaseHolder::Me,
            "renewed"
        );
        match b.take_lease("gw", 60_000).unwrap() {
            LeaseHolder::Other { holder, left_ms } => {
                assert_eq!(holder, a.owner().to_string());
                assert!(left_ms > 0 && left_ms <= 60_000, "{left_ms}");
            }
            LeaseHolder::Me => panic!("two holders"),
        }
        assert_eq!(
            b.take_lease("other", 60_000).unwrap(),
            LeaseHolder::Me,
            "leases are named"
        );
        b.release_lease("gw").unwrap();
        assert!(
            matches!(
                b.take_lease("gw", 60_000).unwrap(),
                LeaseHolder::Other { .. }
            ),
            "only the holder lets go"
        );
        a.release_lease("gw").unwrap();
        assert_eq!(
            b.take_lease("gw", 0).unwrap(),
            LeaseHolder::Me,
            "free once let go"
        );
        assert_eq!(
            a.take_lease("gw", 60_000).unwrap(),
            LeaseHolder::Me,
            "a lease of 0 ms lapses at once"
        );
    }
    fn a_dead_holder_on_this_host_loses_its_lease_at_once(db) {
        let store = db.open();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = store.as_owner(Owner::local(pid));
        assert_eq!(dead.take_lease("gw", 60_000).unwrap(), LeaseHolder::Me);
        assert_eq!(store.take_lease("gw", 60_000).unwrap(), LeaseHolder::Me);
        let live = Owner::parse("elsewhere:1:abc").unwrap();
        let other_host = store.as_owner(live);
        assert!(matches!(
            other_host.take_lease("gw", 60_000).unwrap(),
            LeaseHolder::Other { .. }
        ));
    }
    }
}
