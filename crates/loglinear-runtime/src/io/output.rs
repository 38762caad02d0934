//! Where outputs may go, and how they get there without harming anything.
//!
//! Rules, checked by [`OutputFile::prepare`] before any work is done:
//! * the destination's directory exists;
//! * an existing destination is a regular file (a device node, FIFO, socket or directory is refused, never
//!   replaced); a symbolic link is followed and its target is written, the link stays;
//! * the destination is not the same file as any input (same device and inode: hard links, `./x` and `x` are
//!   caught).
//!
//! [`OutputFile::write`] then writes the bytes to `.<name>.loglinear-partial` in the destination's directory,
//! syncs it and renames it over the destination. The partial file is removed on every error path, and
//! [`remove_partial_files`] removes any still in flight (the CLI calls it on SIGINT/SIGTERM). A leftover
//! `*.loglinear-partial` file (after a SIGKILL or a power cut) is an incomplete output: delete it; the next write
//! to the same destination replaces it.

use std::fs::{File, Metadata, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::RuntimeError;

/// The suffix of a partial output file, named `.<destination file name>.loglinear-partial`.
pub const PARTIAL_SUFFIX: &str = ".loglinear-partial";

/// Partial files being written now, for [`remove_partial_files`].
static PARTIALS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes every partial output file this process is writing. For signal handlers: after it, no
/// `*.loglinear-partial` file of this process remains.
pub fn remove_partial_files() {
    let list = PARTIALS.lock().unwrap_or_else(|p| p.into_inner());
    for p in list.iter() {
        let _ = std::fs::remove_file(p);
    }
}

/// What kind of file system object `m` is, in words.
pub fn file_kind(m: &Metadata) -> &'static str {
    let t = m.file_type();
    if t.is_file() {
        return "a regular file";
    }
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if t.is_symlink() {
        return "a symbolic link";
    }
    "not a regular file"
}

/// Whether two metadata describe the same file (device and inode on Unix).
pub fn same_file(a: &Metadata, b: &Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// A checked output destination (see the module doc for the rules).
#[derive(Clone, Debug)]
pub struct OutputFile {
    /// The path as the caller gave it (for messages).
    given: PathBuf,
    /// Where the bytes go: `given`, or the target of the symbolic link `given` is.
    dest: PathBuf,
}

impl OutputFile {
    /// Checks that `path` may receive an output, given the files the run reads (`inputs`).
    ///
    /// # Errors
    /// [`RuntimeError::Write`] naming the path and what it is (a directory, a device, a FIFO, a socket, a
    /// dangling link, in a missing directory), or that it is the same file as an input.
    pub fn prepare(path: impl AsRef<Path>, inputs: &[&Path]) -> Result<OutputFile, RuntimeError> {
        let given = path.as_ref().to_path_buf();
        let err = |reason: String| RuntimeError::Write { path: given.clone(), reason };
        let mut dest = given.clone();
        if let Ok(m) = std::fs::symlink_metadata(&given) {
            if m.file_type().is_symlink() {
                dest = std::fs::canonicalize(&given)
                    .map_err(|_| err("it is a symbolic link to a missing file; expected a file path".into()))?;
            }
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if dest.file_name().is_none() {
            return Err(err("it names no file; expected a file path".into()));
        }
        if !dir.is_dir() {
            return Err(err(format!("directory `{}` does not exist", dir.display())));
        }
        if let Ok(m) = std::fs::metadata(&dest) {
            if !m.file_type().is_file() {
                return Err(err(format!(
                    "it is {}; refusing to replace it (expected a regular file path)",
                    file_kind(&m)
                )));
            }
            for input in inputs {
                if std::fs::metadata(input).is_ok_and(|i| same_file(&m, &i)) {
                    return Err(err(format!(
                        "it is the same file as the input `{}`; writing it would destroy the input",
                        input.display()
                    )));
                }
            }
        }
        Ok(OutputFile { given, dest })
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.given
    }

    /// The partial file's path: `.<name>.loglinear-partial` beside the destination.
    pub fn partial_path(&self) -> PathBuf {
        let name = self.dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        self.dest.with_file_name(format!(".{name}{PARTIAL_SUFFIX}"))
    }

    /// Writes `bytes` to the destination atomically: to the partial file, synced, then renamed over it. On
    /// failure the destination is untouched and the partial file removed.
    ///
    /// # Errors
    /// [`RuntimeError::Write`] for any I/O failure, or when the destination stopped being a regular file.
    pub fn write(&self, bytes: &[u8]) -> Result<(), RuntimeError> {
        self.write_parts(&[bytes])
    }

    /// [`OutputFile::write`] of the concatenation of `parts`, without concatenating them in memory.
    ///
    /// # Errors
    /// As [`OutputFile::write`].
    pub fn write_parts(&self, parts: &[&[u8]]) -> Result<(), RuntimeError> {
        let err = |reason: String| RuntimeError::Write { path: self.given.clone(), reason };
        let partial = Partial::create(self.partial_path()).map_err(|e| err(e.to_string()))?;
        for bytes in parts {
            partial.file.as_ref().expect("open").write_all(bytes).map_err(|e| err(e.to_string()))?;
        }
        partial.file.as_ref().expect("open").sync_all().map_err(|e| err(e.to_string()))?;
        // Looked at again just before the rename: the destination may have changed since `prepare`.
        if let Ok(m) = std::fs::metadata(&self.dest) {
            if !m.file_type().is_file() {
                return Err(err(format!("it is {}; refusing to replace it", file_kind(&m))));
            }
        }
        partial.persist(&self.dest).map_err(|e| err(e.to_string()))
    }
}

/// A partial output file: registered for [`remove_partial_files`], removed on drop unless persisted.
struct Partial {
    path: PathBuf,
    file: Option<File>,
}

impl Partial {
    fn create(path: PathBuf) -> std::io::Result<Partial> {
        // A leftover of an earlier, killed run for the same destination is ours to replace.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
            std::fs::remove_file(&path)?;
        }
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o644);
        }
        PARTIALS.lock().unwrap_or_else(|p| p.into_inner()).push(path.clone());
        match opts.open(&path) {
            Ok(file) => Ok(Partial { path, file: Some(file) }),
            Err(e) => {
                Self::unregister(&path);
                Err(e)
            }
        }
    }

    fn unregister(path: &Path) {
        PARTIALS.lock().unwrap_or_else(|p| p.into_inner()).retain(|p| p != path);
    }

    fn persist(mut self, dest: &Path) -> std::io::Result<()> {
        drop(self.file.take());
        std::fs::rename(&self.path, dest)?;
        Self::unregister(&self.path);
        self.path = PathBuf::new();
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.path.as_os_str().is_empty() {
            drop(self.file.take());
            let _ = std::fs::remove_file(&self.path);
            Self::unregister(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_regular_and_same_file_destinations() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.safetensors");
        std::fs::write(&input, b"x").unwrap();
        let e = OutputFile::prepare(dir.path(), &[]).unwrap_err().to_string();
        assert!(e.contains("is a directory"), "{e}");
        let e = OutputFile::prepare(&input, &[&input]).unwrap_err().to_string();
        assert!(e.contains("same file as the input"), "{e}");
        let dotted = dir.path().join(".").join("in.safetensors");
        assert!(OutputFile::prepare(&dotted, &[&input]).is_err());
        let hard = dir.path().join("hard.safetensors");
        std::fs::hard_link(&input, &hard).unwrap();
        assert!(OutputFile::prepare(&hard, &[&input]).unwrap_err().to_string().contains("same file"));
        #[cfg(unix)]
        {
            let link = dir.path().join("link.safetensors");
            std::os::unix::fs::symlink(&input, &link).unwrap();
            assert!(OutputFile::prepare(&link, &[&input]).unwrap_err().to_string().contains("same file"));
            let dangling = dir.path().join("dangling.safetensors");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
            assert!(OutputFile::prepare(&dangling, &[]).unwrap_err().to_string().contains("missing file"));
        }
        assert_eq!(std::fs::read(&input).unwrap(), b"x", "the input is untouched");
    }

    #[test]
    fn writes_through_a_symlink_and_leaves_no_partial() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.bin");
        std::fs::write(&target, b"old").unwrap();
        #[cfg(unix)]
        {
            let link = dir.path().join("link.bin");
            std::os::unix::fs::symlink(&target, &link).unwrap();
            OutputFile::prepare(&link, &[]).unwrap().write(b"new").unwrap();
            assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays");
            assert_eq!(std::fs::read(&target).unwrap(), b"new");
        }
        let out = OutputFile::prepare(dir.path().join("o.bin"), &[]).unwrap();
        std::fs::write(out.partial_path(), b"leftover of a killed run").unwrap();
        out.write(b"fresh").unwrap();
        assert_eq!(std::fs::read(dir.path().join("o.bin")).unwrap(), b"fresh");
        let partials = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(PARTIAL_SUFFIX))
            .count();
        assert_eq!(partials, 0);
        assert!(!PARTIALS.lock().unwrap().iter().any(|p| p.starts_with(dir.path())), "unregistered");
    }
}
