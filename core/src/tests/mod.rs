//! Tests of flows that span features: what one feature leaves behind as another
//! (a backup, a restore, a device's new keys, the sync outbox) sees it.

mod backup;
mod share;
