//! Devices seen at sign-in: every sign-in that opens a session (password,
//! second-factor step, consent acceptance) records its device; a device new
//! to an account that already had one, or that had signed in before, is
//! announced to the owner by mail (queued with the record), in the audit log
//! (`new_device`) and by a metric. The owner lists and forgets devices under
//! `/me/devices`; a forgotten device is new again at its next sign-in.
//!
//! A device is identified by a fingerprint: the keyed tag
//! ([`Sealer::tag`](crate::auth::seal::Sealer::tag), under the key derived
//! from `DATA_ENCRYPTION_KEY`) of the client's `device_id` and its
//! user-agent family ([`crate::domain::device`]). Without the key, a stored
//! fingerprint says nothing of the device id it was made from.
//!
//! With `NEW_DEVICE_STEP_UP`, a sign-in that would be announced, on an
//! account without a second factor, first passes an emailed code (the login
//! challenge with the `email_otp` method); the device is recorded when the
//! code is accepted.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::principal::Principal;
use super::second_factor;
use super::{Audit, AuthError, Parts};
use crate::clock::Clock;
use crate::domain::device::{fingerprint_input, user_agent_family};
use crate::domain::ClientContext;
use crate::mail::templates;
use crate::mail::Mailer;
use crate::storage::DynStore;
use crate::storage::{DeviceSeen, DeviceSighting, UserRecord};
use crate::telemetry::metrics::Metrics;

/// The purpose the fingerprint tag is made under.
const FINGERPRINT_PURPOSE: &str = "device-fingerprint";

/// The devices of accounts: recorded at sign-in, listed and forgotten by
/// their owner. Cheap to clone.
#[derive(Clone)]
pub struct Devices {
    store: DynStore,
    mailer: Mailer,
    metrics: Metrics,
    clock: Clock,
    audit: Audit,
    new_device_step_up: bool,
}

impl Devices {
    pub fn new(parts: &Parts) -> Self {
        Self {
            store: parts.store.clone(),
            mailer: parts.mailer.clone(),
            metrics: parts.metrics.clone(),
            clock: parts.clock.clone(),
            audit: parts.audit(),
            new_device_step_up: parts.config.second_factor.new_device_step_up,
        }
    }
}

/// The fingerprint of a device and its user-agent family.
fn fingerprint(
    svc: &Devices,
    device_id: Option<&str>,
    user_agent: Option<&str>,
) -> (String, String) {
    let family = user_agent_family(user_agent);
    let tag = svc
        .mailer
        .sealer()
        .tag(FINGERPRINT_PURPOSE, &fingerprint_input(device_id, &family));
    (tag, family)
}

/// The fingerprint of the device of a sign-in from `client`.
pub fn fingerprint_of(svc: &Devices, device_id: Option<&str>, client: &ClientContext) -> String {
    fingerprint(svc, device_id, client.user_agent.as_deref()).0
}

/// Whether this sign-in must pass an emailed code first: `NEW_DEVICE_STEP_UP`
/// is on, the account has no second factor, and the device would be announced.
pub async fn step_up_required(
    svc: &Devices,
    user: &UserRecord,
    device_id: Option<&str>,
    client: &ClientContext,
) -> Result<bool, AuthError> {
    if !svc.new_device_step_up || second_factor::required(user) {
        return Ok(false);
    }
    let (fingerprint, _) = fingerprint(svc, device_id, client.user_agent.as_deref());
    Ok(svc
        .store
        .device_would_be_new(crate::storage::DeviceProbe {
            user_id: user.id,
            fingerprint,
            signed_in_before: user.last_login_at.is_some(),
        })
        .await?)
}

/// Records the device of a sign-in that opened `session_id`; announces it
/// when it is new to the account (see the module doc). `user` is the record
/// read before this sign-in was recorded.
pub async fn record_sign_in(
    svc: &Devices,
    user: &UserRecord,
    device_id: Option<&str>,
    client: &ClientContext,
    session_id: Uuid,
) -> Result<(), AuthError> {
    let (fingerprint, family) = fingerprint(svc, device_id, client.user_agent.as_deref());
    let now = svc.clock.now();
    let ip = client
        .ip
        .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    let mail = templates::new_device(
        user.email.as_str(),
        &now.format("%Y-%m-%d %H:%M UTC").to_string(),
        &ip,
        &family,
    );
    let queued = svc
        .mailer
        .prepare(&mail)
        .map_err(|e| AuthError::Internal(e.into()))?;
    let seen = svc
        .store
        .record_device(DeviceSighting {
            id: Uuid::new_v4(),
            user_id: user.id,
            fingerprint,
            client: client.clone(),
            signed_in_before: user.last_login_at.is_some(),
            now,
            mail: Some(queued),
        })
        .await?;
    if seen == DeviceSeen::New {
        svc.mailer.queued(mail.template);
        svc.metrics.new_device();
        let detail = serde_json::json!({"session_id": session_id, "device": family});
        svc.audit
            .record("new_device", true, Some(user.id), client, detail)
            .await;
    }
    Ok(())
}

/// One device of `GET /me/devices`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    pub id: Uuid,
    /// The user agent of the latest sign-in from the device.
    pub user_agent: Option<String>,
    /// The IP address of the latest sign-in from the device.
    pub ip_address: Option<String>,
    pub first_seen_at: Option<DateTime<Utc>>,
    pub last_seen_at: Option<DateTime<Utc>>,
    /// The device of the caller's session.
    pub current: bool,
}

/// `GET /me/devices`: the caller's devices, first seen first.
pub async fn list(svc: &Devices, principal: &Principal) -> Result<Vec<DeviceView>, AuthError> {
    let current = svc
        .store
        .find_session(principal.session_id)
        .await?
        .map(|s| fingerprint(svc, s.device_id.as_deref(), s.user_agent.as_deref()).0);
    let devices = svc.store.list_devices(principal.user_id, current).await?;
    Ok(devices
        .into_iter()
        .map(|d| DeviceView {
            id: d.device.id,
            user_agent: d.device.user_agent,
            ip_address: d.device.ip_address.map(|ip| ip.to_string()),
            first_seen_at: d.device.first_seen_at,
            last_seen_at: d.device.last_seen_at,
            current: d.current,
        })
        .collect())
}

/// `DELETE /me/devices/{id}`: forgets one of the caller's devices; `false`
/// when the caller has no such device.
pub async fn forget(
    svc: &Devices,
    principal: &Principal,
    device_id: Uuid,
    client: &ClientContext,
) -> Result<bool, AuthError> {
    let forgotten = svc
        .store
        .forget_device(principal.user_id, device_id)
        .await?;
    if forgotten {
        let detail = serde_json::json!({"device_id": device_id});
        svc.audit
            .record(
                "device_forgotten",
                true,
                Some(principal.user_id),
                client,
                detail,
            )
            .await;
    }
    Ok(forgotten)
}
