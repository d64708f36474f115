//! Who holds a claim on unfinished work: a process, named by host, pid and a random nonce. A
//! claim ends when its lease lapses, or at once when its holder is a process on this host that
//! no longer exists.

use std::fmt;

use rand::Rng;

/// A process that can hold claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    host: String,
    pid: u32,
    nonce: String,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Self {
        let mut bytes = [0u8; 6];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            host: host_name(),
            pid: std::process::id(),
            nonce: hex::encode(bytes),
        }
    }

    /// A process on this host with `pid` (tests: a process known to be dead).
    pub fn local(pid: u32) -> Self {
        Self {
            pid,
            ..Self::this_process()
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.rsplitn(3, ':');
        let nonce = parts.next()?.to_owned();
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_owned();
        Some(Self { host, pid, nonce })
    }

    /// Whether this owner is certainly gone: a process on this host whose pid does not exist.
    /// Anything else (another host, a live pid) may still be working.
    pub fn is_certainly_dead(&self) -> bool {
        self.host == host_name() && self.pid != std::process::id() && !pid_exists(self.pid)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.nonce)
    }
}

#[cfg(unix)]
fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 sends nothing; it only asks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(not(unix))]
fn pid_exists(_pid: u32) -> bool {
    true
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_round_trip_and_dead_pids_are_recognised() {
        let me = Owner::this_process();
        assert_eq!(Owner::parse(&me.to_string()), Some(me.clone()));
        assert!(!me.is_certainly_dead(), "this process is alive");
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let mut child = child;
        child.wait().unwrap();
        assert!(Owner::local(pid).is_certainly_dead());
        let elsewhere = Owner::parse(&format!("other-host:{pid}:abc")).unwrap();
        assert!(
            !elsewhere.is_certainly_dead(),
            "another host's process may live"
        );
    }
}
