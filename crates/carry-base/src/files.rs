//! The names of the files in a profile folder.

/// The vault database's file name inside a profile folder.
pub const VAULT_FILE: &str = "vault.db";
/// The key file's name inside a profile folder.
pub const KEY_FILE: &str = "vault.key";
