//! File secrets, removed on every exit path that runs destructors: a normal exit, the
//! command crashing or being killed, a forwarded signal, or stepsecret's own error. A SIGKILL
//! to stepsecret itself runs nothing: then the guardian removes them (see
//! [`super::guardian`]).
//!
//! Two places: a private directory ([`SecretDir`]: 0700, on /dev/shm when writable so nothing
//! reaches a disk) holding one 0600 file per secret; and paths the user chose
//! ([`Placed`]: `path = "..."`), where the tools expect their config. stepsecret never
//! overwrites or deletes a file it did not create there: a file that exists is refused before
//! anything is fetched ([`refuse_existing`]), files are created with `O_EXCL`, and removal
//! checks that the path is still the file (device and inode) that was created.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
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
        let mut file = create_private(&path)
            .and_then(|mut f| f.write_all(value).map(|()| f))
            .map_err(|e| Error::os(format!("cannot write the file for {name}"), e))?;
        file.flush()
            .map_err(|e| Error::os(format!("cannot write the file for {name}"), e))?;
        Ok(path)
    }
}

/// A new file, 0600 (before the umask), failing if anything exists at `path`: `O_EXCL`, which
/// also refuses a symlink there.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Fails, naming the first, if a path the run would write exists (a dangling symlink
/// included): checked before anything is fetched.
pub(crate) fn refuse_existing<'a>(
    mut paths: impl Iterator<Item = (&'a str, &'a Path)>,
) -> Result<(), Error> {
    match paths.find(|(_, path)| path.symlink_metadata().is_ok()) {
        Some((name, path)) => Err(Error::Exists {
            name: name.to_string(),
            path: path.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// A file or folder stepsecret created at a chosen path, identified by device and inode so
/// that what replaced it is never removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Created {
    pub(crate) path: PathBuf,
    dev: u64,
    ino: u64,
    dir: bool,
}

impl Created {
    fn of(path: &Path, dir: bool) -> std::io::Result<Created> {
        let meta = path.symlink_metadata()?;
        Ok(Created {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            dir,
        })
    }

    /// Removes it if it is still what was created: a folder only when empty (the command may
    /// have left its own files there). Returns whether it was removed.
    pub(crate) fn remove(&self) -> bool {
        let same = self
            .path
            .symlink_metadata()
            .is_ok_and(|m| m.dev() == self.dev && m.ino() == self.ino);
        if !same {
            return false;
        }
        let removed = if self.dir {
            std::fs::remove_dir(&self.path)
        } else {
            std::fs::remove_file(&self.path)
        };
        removed.is_ok()
    }
}

/// The files (and missing parent folders) written at chosen paths; removed, newest first,
/// when dropped.
#[derive(Default)]
pub(crate) struct Placed {
    created: Vec<Created>,
}

impl Placed {
    /// Writes `value` to a new 0600 file at `path`, creating missing parents 0700. Each file
    /// and folder is reported to `watch` (the guardian) as soon as it exists and before the
    /// value is written: a SIGKILL in between leaves at most an empty file, never a secret.
    pub(crate) fn write(
        &mut self,
        name: &str,
        path: &Path,
        value: &[u8],
        watch: &mut dyn FnMut(&Created),
    ) -> Result<(), Error> {
        let failed = |e| Error::io(format!("cannot write {name} to {}", path.display()), e);
        if let Some(parent) = path.parent() {
            let missing: Vec<&Path> = parent.ancestors().take_while(|p| !p.exists()).collect();
            for dir in missing.into_iter().rev() {
                DirBuilder::new().mode(0o700).create(dir).map_err(failed)?;
                let created = Created::of(dir, true).map_err(failed)?;
                // The mode above is masked by the umask: 0700 whatever it is.
                std::fs::set_permissions(dir, Permissions::from_mode(0o700)).map_err(failed)?;
                watch(&created);
                self.created.push(created);
            }
        }
        let mut file = create_private(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Exists {
                name: name.to_string(),
                path: path.to_path_buf(),
            },
            _ => failed(e),
        })?;
        let created = Created::of(path, false).map_err(failed)?;
        watch(&created);
        self.created.push(created);
        file.set_permissions(Permissions::from_mode(0o600))
            .map_err(failed)?;
        file.write_all(value)
            .and_then(|()| file.flush())
            .map_err(failed)
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        for created in self.created.iter().rev() {
            created.remove();
        }
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

    #[test]
    fn placed_files_and_the_folders_made_for_them_are_removed() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/b/config.json");
        let mut watched = Vec::new();
        let mut placed = Placed::default();
        placed
            .write("C", &path, b"{}", &mut |c| watched.push(c.path.clone()))
            .unwrap();
        assert_eq!(
            watched,
            [root.path().join("a"), root.path().join("a/b"), path.clone()]
        );
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(root.path().join("a")).unwrap().mode() & 0o777,
            0o700
        );
        // The command left a file of its own in `a`: `a/b` goes, `a` stays.
        std::fs::write(root.path().join("a/own"), b"x").unwrap();
        drop(placed);
        assert!(!path.exists() && !root.path().join("a/b").exists());
        assert!(root.path().join("a/own").exists());
    }

    #[test]
    fn a_file_that_replaced_ours_is_not_removed() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("npmrc");
        let mut placed = Placed::default();
        placed.write("N", &path, b"x", &mut |_| {}).unwrap();
        // Replaced while ours still exists, so the new file cannot reuse our inode.
        std::fs::write(root.path().join("theirs"), b"theirs").unwrap();
        std::fs::rename(root.path().join("theirs"), &path).unwrap();
        drop(placed);
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
        let e = Placed::default()
            .write("N", &path, b"x", &mut |_| {})
            .unwrap_err();
        assert_eq!(e.exit_code(), 73);
        assert!(refuse_existing([("N", path.as_path())].into_iter()).is_err());
    }
}
