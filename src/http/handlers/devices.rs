//! `/api/v1/auth/me/devices`: the devices the signed-in user signed in from.

use actix_web::{web, HttpResponse};

use crate::http::client::Client;
use crate::http::errors::{ApiError, Problem};
use crate::http::extract::Authenticated;
use crate::services::devices::{self, DeviceView};
use crate::services::Services;

#[utoipa::path(
    get, path = "/api/v1/auth/me/devices", tag = "me",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Devices seen at sign-in, first seen first (user agent and IP address of the latest sign-in from each); `current` marks the device of this session", body = [DeviceView]),
        (status = 401, description = "Missing or invalid access token", body = Problem),
    )
)]
pub async fn list_devices(
    svc: web::Data<Services>,
    Authenticated(principal): Authenticated,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(devices::list(svc.account.devices(), &principal).await?))
}

#[utoipa::path(
    delete, path = "/api/v1/auth/me/devices/{id}", tag = "me",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "The device to forget")),
    responses(
        (status = 204, description = "The device is forgotten: the next sign-in from it is announced as new"),
        (status = 404, description = "No such device of this user", body = Problem),
        (status = 401, description = "Missing or invalid access token", body = Problem),
    )
)]
pub async fn delete_device(
    svc: web::Data<Services>,
    Client(client): Client,
    Authenticated(principal): Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = super::own_id(path.into_inner())?;
    super::removed(devices::forget(svc.account.devices(), &principal, id, &client).await?)
}
