//! Every schema change of both backends, in order, in one list each. Adding a
//! column: write the SQL files and add a line to each list here (and the field
//! to its record in `models.rs`).
//!
//! PostgreSQL's files live in `migrations/` in golang-migrate's format (applied
//! by `postgres::migrate`); SQLite's next to its backend, applied when the file
//! is opened (`PRAGMA user_version` holds the version reached).

/// One PostgreSQL migration: `migrations/NNNNNN_name.{up,down}.sql`.
pub struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub up: &'static str,
    pub down: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            up: include_str!(concat!("../../migrations/", $name, ".up.sql")),
            down: include_str!(concat!("../../migrations/", $name, ".down.sql")),
        }
    };
}

/// Every PostgreSQL migration, in order.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "000001_create_users_table"),
    migration!(2, "000002_hash_tokens_and_sessions"),
    migration!(3, "000003_mail_outbox"),
    migration!(4, "000004_two_factor"),
    migration!(5, "000005_gdpr"),
    migration!(7, "000007_second_factor_limits"),
    migration!(8, "000008_rate_windows"),
    migration!(9, "000009_audit_chain"),
    migration!(10, "000010_devices"),
    migration!(11, "000011_user_change_notices"),
    migration!(12, "000012_refresh_rotation_hot_updates"),
    migration!(13, "000013_drop_unused_refresh_device_index"),
    migration!(14, "000014_key_checks"),
    migration!(15, "000015_drop_unread_audit_indexes"),
    migration!(16, "000016_request_deadline"),
    migration!(17, "000017_drop_unread_users_indexes"),
];

/// The embedded database's first schema (version 1).
pub const SQLITE_SCHEMA: &str = include_str!("sqlite/schema.sql");

/// The embedded database's steps after its first schema: (version reached, SQL),
/// in increasing order. From version 5 on, a step's version is the number of
/// the PostgreSQL migration it mirrors, so that schema changes made on
/// different branches never claim the same version.
pub const SQLITE_UPGRADES: &[(i64, &str)] = &[
    (2, include_str!("sqlite/002_mail_outbox.sql")),
    (3, include_str!("sqlite/003_two_factor.sql")),
    (5, include_str!("sqlite/005_gdpr.sql")),
    (7, include_str!("sqlite/007_second_factor_limits.sql")),
    (9, include_str!("sqlite/009_audit_chain.sql")),
    (10, include_str!("sqlite/010_devices.sql")),
    (14, include_str!("sqlite/014_key_checks.sql")),
    (15, include_str!("sqlite/015_drop_unread_audit_indexes.sql")),
];

/// The embedded schema version this binary writes.
pub const SQLITE_VERSION: i64 = SQLITE_UPGRADES[SQLITE_UPGRADES.len() - 1].0;

#[cfg(test)]
mod tests {
    use super::*;

    /// A file at version v skips every step up to v: the steps must increase.
    #[test]
    fn versions_increase() {
        assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
        assert!(SQLITE_UPGRADES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(SQLITE_UPGRADES.iter().all(|(v, _)| *v > 1));
    }
}
