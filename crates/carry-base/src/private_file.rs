//! Files written for the person outside the vault (a backup, an export, a QR code
//! holding a secret) are readable and writable by their owner only, whatever the
//! umask.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// Create `path`, or empty it if it exists, with mode 0600 on unix. A regular file
/// that was already there is set to 0600 too, before anything is written to it; a
/// device such as `/dev/stdout` is left as it is.
pub fn create(path: &Path) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let file = o.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = file.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
            file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(file)
}

/// Write `bytes` to `path` as [`create`] does.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    create(path)?.write_all(bytes)
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &std::path::Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_and_existing_files_end_up_owner_only() {
        let d = tempfile::tempdir().unwrap();
        let new = d.path().join("new");
        super::write(&new, b"secret").unwrap();
        assert_eq!(mode(&new), 0o600);
        let old = d.path().join("old");
        std::fs::write(&old, b"a longer text than the new one").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write(&old, b"secret").unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read(&old).unwrap(), b"secret");
    }
}
