//! Restoring a profile from a backup. The backup feature rebuilds the vault; then the
//! sharing feature asks again for what backups do not hold, the records other people
//! share with the person. The flow spans both features, so it sits above them.

use std::path::Path;
use std::sync::Arc;

use crate::error::Result;
use crate::keys::KeyStore;
use crate::profile::Profile;

/// Restore the backup in `file` into the empty folder `dir` with the recovery `code`,
/// wrapping the new vault's key with `key_store`, and ask every grantor of a grant in
/// force to send their record again. A wrong code is
/// [`Error::WrongRecoveryCode`](crate::Error::WrongRecoveryCode) and leaves nothing
/// behind; so does any other failure: the profile is built in a folder beside `dir`
/// and moved into place only when whole.
pub fn from_file(dir: &Path, file: &Path, code: &str, key_store: &dyn KeyStore) -> Result<Profile> {
    let profile = crate::backup::restore_from_file(dir, file, code, key_store)?;
    crate::share::resync_received(&profile)?;
    Ok(profile)
}

/// Restore from the endpoint with nothing but the recovery code: the code derives
/// where the backup is and the secret that fetches it; the latest backup and the chain
/// it builds on are fetched and applied in order. Then, as [`from_file`], every
/// grantor is asked for their record again. A code with no backup there is
/// [`Error::NotFound`](crate::Error::NotFound); repeated wrong tries are slowed down by
/// the endpoint.
pub async fn from_endpoint(
    dir: &Path,
    endpoint: &str,
    code: &str,
    key_store: Arc<dyn KeyStore>,
) -> Result<Profile> {
    let profile = crate::backup::restore_from_endpoint(dir, endpoint, code, key_store).await?;
    crate::share::resync_received(&profile)?;
    Ok(profile)
}
