//! Devices seen at sign-in (the [`DeviceStore`](super::DeviceStore)
//! aggregate): what a sign-in records and what the owner lists. Rows are
//! read with [`device_from`](super::device_from).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::models::{ClientContext, OutboxMail};
use super::DeviceRecord;

/// A successful sign-in from a device, to record.
#[derive(Debug, Clone)]
pub struct DeviceSighting {
    /// The id a new row gets.
    pub id: Uuid,
    pub user_id: Uuid,
    /// The keyed hash that identifies the device (see `domain::device`).
    pub fingerprint: String,
    /// Where the sign-in came from (user agent and IP address, kept as the latest).
    pub client: ClientContext,
    /// Whether the account had signed in before this sign-in: a device new
    /// to an account that has no device yet is announced only then.
    pub signed_in_before: bool,
    pub now: DateTime<Utc>,
    /// The "new sign-in" mail, queued in the same transaction when the
    /// device is announced ([`DeviceSeen::New`]), dropped otherwise.
    pub mail: Option<OutboxMail>,
}

/// Would a sign-in of `user_id` from `fingerprint` be announced? The
/// account signed in before when `signed_in_before`.
#[derive(Debug, Clone)]
pub struct DeviceProbe {
    pub user_id: Uuid,
    pub fingerprint: String,
    pub signed_in_before: bool,
}

/// What recording a sign-in found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceSeen {
    /// The device was known: its last sighting was updated.
    Known,
    /// The account's first device at its first sign-in: recorded, not announced.
    First,
    /// A device the account did not know: recorded and announced (the mail queued).
    New,
}

/// A device as listed to its owner; `current` when its fingerprint is the
/// one asked about (the caller's own device).
#[derive(Debug, Clone)]
pub struct ListedDevice {
    pub device: DeviceRecord,
    pub current: bool,
}
