//! Writing a secret to a file durably: prepared before the secret exists, written, synced and
//! renamed into place atomically, mode 0600.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::tokens::RawToken;

/// Makes `dir` (and any missing parents) a folder only this user can enter (0700): created so,
/// or tightened if it exists. Secrets are written only into such folders.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(0o700);
        b.create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    b.create(dir)
}

/// A temporary file beside the target, created (0600) before the secret exists, so a path that
/// cannot be written fails before InfluxDB is asked; `commit` writes the secret and renames the
/// file over the target in one step. Dropped unwritten, it leaves nothing behind.
pub struct SecretFile {
    path: PathBuf,
    temp: PathBuf,
    file: Option<std::fs::File>,
}

impl SecretFile {
    pub fn prepare(path: &Path) -> std::io::Result<Self> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("token");
        let temp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&temp);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(&temp)?;
        Ok(Self {
            path: path.to_owned(),
            temp,
            file: Some(file),
        })
    }

    /// Writes the secret, syncs it, and renames it over the target in one step.
    pub fn commit(mut self, secret: &RawToken) -> std::io::Result<()> {
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("the secret file was written already"))?;
        file.write_all(format!("{}\n", secret.expose()).as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&self.temp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}
