//! A PostgreSQL server for tests: the one `TOKENWARDEN_TEST_DATABASE_URL` names, or else a
//! throwaway cluster this test process starts from the PostgreSQL server binaries (as an
//! unprivileged user, on a free port, in a temporary folder; it stops when the process ends).
//! Every test gets a database of its own. Without either, PostgreSQL tests say loudly that they
//! are skipped, and fail when `CI` is set. Shared by the library's store tests and `tests/it`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The variable naming a server to use instead of a throwaway cluster: a URL of a role that may
/// create databases, e.g. `postgres://tw@127.0.0.1:5432/postgres`.
pub const URL_VAR: &str = "TOKENWARDEN_TEST_DATABASE_URL";

/// A URL for a new, empty database, or `None` when no server can be had here (said on stderr;
/// a panic under CI, where a skip would hide the PostgreSQL half of the suite).
pub fn fresh_database() -> Option<String> {
    Some(database_on(&server()?))
}

/// A URL for a new, empty database on the server at `server` (an admin URL).
pub fn database_on(server: &str) -> String {
    let server = server.to_owned();
    let name = format!("tw_{}", uuid::Uuid::new_v4().simple());
    let admin = server.clone();
    let create = name.clone();
    // The synchronous client runs its own runtime: keep it off any test's runtime thread.
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test PostgreSQL at {admin}: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE {create}"))
            .unwrap_or_else(|e| panic!("cannot create a test database: {e}"));
    })
    .join()
    .expect("creating a test database");
    with_database(&server, &name)
}

/// `url` with its path (the database) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    format!("{}/{name}{query}", &base[..authority_end])
}

/// The server's admin URL, once per process.
fn server() -> Option<String> {
    static SERVER: OnceLock<Option<String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            if let Ok(url) = std::env::var(URL_VAR) {
                return Some(url);
            }
            match binaries() {
                Some(bin) => Some(start_cluster(bin, None)),
                None => {
                    skipped(&format!("{URL_VAR} is not set and"));
                    None
                }
            }
        })
        .clone()
}

/// Says loudly that PostgreSQL tests are skipped here; fails under CI.
fn skipped(why: &str) {
    let why = format!(
        "PostgreSQL tests SKIPPED: {why} no PostgreSQL server binaries (initdb, postgres) were \
         found under /usr/lib/postgresql/*/bin or PG_BIN"
    );
    assert!(std::env::var_os("CI").is_none(), "{why}; CI must run them");
    eprintln!("\n*** {why} ***\n");
}

/// How a cluster of its own is guarded: TLS with a certificate and its key, and a password
/// (SCRAM) for every TCP connection.
pub struct Guard {
    pub cert_pem: String,
    pub key_pem: String,
    pub password: String,
}

/// A cluster of its own guarded by `guard` (plain connections still accepted, with the
/// password): its admin URL, password included, for tests of the store's TLS and passwords.
pub fn guarded_cluster(guard: Guard) -> Option<String> {
    let Some(bin) = binaries() else {
        skipped("");
        return None;
    };
    Some(start_cluster(bin, Some(guard)))
}

fn binaries() -> Option<PathBuf> {
    let has = |dir: &Path| dir.join("initdb").exists() && dir.join("postgres").exists();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        return has(&dir).then_some(dir);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| has(d))
        .collect();
    found.sort();
    found.pop()
}

/// Starts a cluster on a thread that lives as long as the process: the server is started with
/// a parent-death signal, so it shuts down when this process ends, however it ends.
fn start_cluster(bin: PathBuf, guard: Option<Guard>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let url = run_cluster(&bin, guard.as_ref());
        tx.send(url).expect("the test waits for its cluster");
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("the cluster thread answers")
}

fn run_cluster(bin: &Path, guard: Option<&Guard>) -> String {
    remove_stale_clusters();
    static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tokenwarden-pg-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder for the test cluster");
    let unprivileged = nix::unistd::geteuid().is_root();
    if unprivileged {
        // initdb refuses to run as root: the cluster belongs to `nobody`.
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).expect("chown the cluster folder");
    }
    let as_user = |cmd: &mut Command| {
        if unprivileged {
            use std::os::unix::process::CommandExt;
            cmd.uid(65534).gid(65534);
        }
    };
    let private = |name: &str, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        if unprivileged {
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        }
        path
    };
    let data = dir.join("data");
    let mut initdb = Command::new(bin.join("initdb"));
    initdb
        .args(["-D"])
        .arg(&data)
        .args(["-U", "tw", "-E", "UTF8", "--locale=C", "--no-sync"]);
    match guard {
        None => {
            initdb.arg("--auth=trust");
        }
        Some(g) => {
            let pwfile = private("password", &g.password);
            initdb
                .args([
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--pwfile",
                ])
                .arg(pwfile);
        }
    }
    initdb.stdout(Stdio::null()).stderr(Stdio::piped());
    as_user(&mut initdb);
    let out = initdb.output().expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut settings = vec![
        "listen_addresses=127.0.0.1".to_owned(),
        "fsync=off".into(),
        "synchronous_commit=off".into(),
        "full_page_writes=off".into(),
        "max_connections=300".into(),
        "logging_collector=off".into(),
    ];
    if let Some(g) = guard {
        let cert = private("server.crt", &g.cert_pem);
        let key = private("server.key", &g.key_pem);
        settings.push("ssl=on".into());
        settings.push(format!("ssl_cert_file={}", cert.display()));
        settings.push(format!("ssl_key_file={}", key.display()));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = Command::new(bin.join("postgres"));
    server
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_user(&mut server);
    // SAFETY: prctl only sets this process's own parent-death signal between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        server.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = server.spawn().expect("start postgres");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("ready to accept connections") => break,
            Some(Ok(line)) => seen.push(line),
            _ => panic!("postgres did not start:\n{}", seen.join("\n")),
        }
    }
    // Keep reading what the server says, so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    std::mem::forget(child);
    match guard {
        None => format!("postgres://tw@127.0.0.1:{port}/postgres"),
        Some(g) => format!("postgres://tw:{}@127.0.0.1:{port}/postgres", g.password),
    }
}

/// Folders of clusters whose test process has ended.
fn remove_stale_clusters() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("tokenwarden-pg-")
            .and_then(|p| p.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if !alive && !entry.path().join("data/postmaster.pid").exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
