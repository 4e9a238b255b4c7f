//! File secrets: a private directory (0700, on /dev/shm when writable so nothing reaches a
//! disk) holding one 0600 file per secret, removed on every exit path that runs destructors:
//! a normal exit, the command crashing or being killed, a forwarded signal, or stepsecret's
//! own error. A SIGKILL to stepsecret itself runs nothing: then the guardian removes it
//! (see [`super::guardian`]).

use std::fs::{OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::error::Error;

/// Where file secrets go first: memory-backed, so their contents never touch a disk.
const SHM: &str = "/dev/shm";

/// The private directory; removed with everything in it when dropped.
pub(crate) struct SecretDir {
    dir: TempDir,
}

impl SecretDir {
    /// Creates the directory on /dev/shm when possible, else in `fallback` (TMPDIR).
    pub(crate) fn create(fallback: &Path) -> Result<SecretDir, Error> {
        let mut builder = tempfile::Builder::new();
        builder
            .prefix("stepsecret-")
            .permissions(Permissions::from_mode(0o700));
        let dir = builder
            .tempdir_in(SHM)
            .or_else(|_| builder.tempdir_in(fallback))
            .map_err(|e| Error::os("cannot create a private directory for file secrets", e))?;
        Ok(SecretDir { dir })
    }

    /// Where the directory is.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes one secret to a new 0600 file named after its variable; returns the path.
    pub(crate) fn write(&self, name: &str, value: &[u8]) -> Result<PathBuf, Error> {
        let path = self.dir.path().join(name);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(value).map(|()| f))
            .map_err(|e| Error::os(format!("cannot write the file for {name}"), e))?;
        file.flush()
            .map_err(|e| Error::os(format!("cannot write the file for {name}"), e))?;
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn private_directory_and_files_are_removed_on_drop() {
        let dir = SecretDir::create(Path::new("/tmp")).unwrap();
        let root = dir.path().to_path_buf();
        let file = dir.write("KUBECONFIG", b"apiVersion: v1").unwrap();
        assert_eq!(std::fs::metadata(&root).unwrap().mode() & 0o777, 0o700);
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&file).unwrap(), b"apiVersion: v1");
        drop(dir);
        assert!(!root.exists());
    }
}
