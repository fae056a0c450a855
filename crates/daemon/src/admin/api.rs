//! The admin HTTP API: JSON under `/api/v1`, Prometheus text at
//! `/metrics`, the OpenAPI description (generated from these handlers by
//! utoipa) at `/api/v1/openapi.json`.
//!
//! Handlers only translate: a change is an edit of the file's document
//! given to [`Control::change`], which checks, saves and applies it; a read
//! comes from the running workspace and presence. Refusals carry a stable
//! code (`{"error": ..., "message": ...}`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use directory::{Directory, UserStatus};
use serde::Deserialize;
use serde_json::{json, Value};
use toml_edit::{value, Array, DocumentMut, Item, Table};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::config_file::{self as file, item_from_json};
use super::{ApiError, Control, Reloaded};
use crate::clock;
use crate::settings::Secret;

type Shared = State<Arc<Api>>;
type ApiResult = Result<Json<Value>, ApiError>;

/// The API's state: the daemon's control and the bearer token.
pub struct Api {
    pub control: Arc<Control>,
    token: Option<Secret>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard admin API",
        description = "Change the workspace of a running daemon (every change is checked like the config file, saved to it, then applied to the next call), see who is signed in and which calls are up, ask why someone does not ring, read call records."
    ),
    paths(
        list_users, invite_user, get_user, patch_user, remove_user, activate_user,
        deactivate_user, set_password, explain_user,
        list_numbers, create_number, get_number, patch_number, delete_number,
        assign_member, unassign_member, set_routing, set_section, clear_section, explain_number,
        list_trunks, put_trunk, get_trunk, delete_trunk,
        get_plan, put_plan,
        registrations, calls, call_history, reload, bans, lift_ban,
    ),
    components(schemas(
        super::ErrorBody, Reloaded, InviteUser, UserPatch, Password, NewNumber, NumberPatch,
        RoutingBody, TrunkBody, PlanBody, crate::records::Row
    )),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// The routes, behind the bearer token when one is set.
pub fn router(control: Arc<Control>, token: Option<Secret>) -> Router {
    let api = Arc::new(Api { control, token });
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/users", get(list_users).post(invite_user))
        .route(
            "/api/v1/users/{id}",
            get(get_user).patch(patch_user).delete(remove_user),
        )
        .route("/api/v1/users/{id}/activate", post(activate_user))
        .route("/api/v1/users/{id}/deactivate", post(deactivate_user))
        .route("/api/v1/users/{id}/password", put(set_password))
        .route("/api/v1/users/{id}/explain", get(explain_user))
        .route("/api/v1/numbers", get(list_numbers).post(create_number))
        .route(
            "/api/v1/numbers/{number}",
            get(get_number).patch(patch_number).delete(delete_number),
        )
        .route(
            "/api/v1/numbers/{number}/members/{user}",
            put(assign_member).delete(unassign_member),
        )
        .route("/api/v1/numbers/{number}/routing", put(set_routing))
        .route(
            "/api/v1/numbers/{number}/{section}",
            put(set_section).delete(clear_section),
        )
        .route("/api/v1/numbers/{number}/explain", get(explain_number))
        .route("/api/v1/trunks", get(list_trunks))
        .route(
            "/api/v1/trunks/{name}",
            get(get_trunk).put(put_trunk).delete(delete_trunk),
        )
        .route("/api/v1/plan", get(get_plan).put(put_plan))
        .route("/api/v1/registrations", get(registrations))
        .route("/api/v1/calls", get(calls))
        .route("/api/v1/calls/history", get(call_history))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/bans", get(bans))
        .route("/api/v1/bans/{source}", axum::routing::delete(lift_ban))
        .route("/metrics", get(metrics_page))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&api),
            authenticate,
        ))
        .with_state(api)
}

/// Serves the API on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "admin HTTP server");
    }
}

/// Without a token the API must stay on loopback: anyone who reaches it
/// can change the workspace.
pub fn check_listen(addr: SocketAddr, token: Option<&Secret>) -> anyhow::Result<()> {
    if token.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "server.admin_http = {addr} is not a loopback address and no admin token is set: \
             set server.admin_token or SWITCHBOARD_ADMIN_TOKEN, or listen on 127.0.0.1"
        );
    }
    Ok(())
}

/// Without a token, anything that can reach loopback can use the API; a
/// web page the administrator opens could too (a cross-site POST, or DNS
/// rebinding to read). Requests from a browser on another site, or naming
/// a host that is not this machine's address, are refused.
fn from_elsewhere(request: &Request) -> Option<&'static str> {
    let headers = request.headers();
    let value = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Some("a cross-site browser request");
        }
    }
    if let Some(origin) = value("origin") {
        let host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or(origin);
        if !local_host(host) {
            return Some("a request from a web page of another site");
        }
    }
    match value("host") {
        Some(host) if !local_host(host) => Some("a Host that is not this machine's address"),
        _ => None,
    }
}

/// `127.0.0.1:8080`, `[::1]:8080`, `localhost:8080` (port optional).
fn local_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn authenticate(State(api): Shared, request: Request, next: Next) -> Response {
    if api.token.is_none() {
        if let Some(why) = from_elsewhere(&request) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden_origin",
                format!("refused: {why}; without an admin token the API answers only local clients (set server.admin_token to use it from elsewhere)"),
            )
            .into_response();
        }
    }
    if let Some(expected) = &api.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, token)| token.trim());
        // Constant time: how much of a guess was right must not show.
        let same = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.0.as_bytes());
        if !bool::from(same) {
            let mut response = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "a bearer token is required (Authorization: Bearer TOKEN)",
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    next.run(request).await
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such path")
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

async fn metrics_page(State(api): Shared) -> Response {
    let stats = api.control.stats().await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.control.metrics.render(stats.as_ref()),
    )
        .into_response()
}

/// A JSON body, with serde's complaint as a 422 in our error shape.
pub struct Body<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::new(e.status(), "invalid_request", e.body_text()))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            ApiError::invalid_request(format!("the body is not what was expected: {e}"))
        })
    }
}

/// A query string, with serde's complaint as a 400 in our error shape.
pub struct Q<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Q(q))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))
    }
}

#[derive(Deserialize, IntoParams)]
pub struct Force {
    /// Also take the user out of every routing and number they are on.
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, IntoParams)]
pub struct At {
    /// An RFC 3339 instant; default now.
    at: Option<String>,
}

fn at(query: &At) -> Result<jiff::Timestamp, ApiError> {
    match &query.at {
        None => Ok(clock::wall()),
        Some(text) => crate::explain::parse_at(text).map_err(ApiError::invalid_request),
    }
}

// ---------------------------------------------------------------------------
// Users

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteUser {
    /// SIP username: letters, digits, '.', '_', '-'.
    id: String,
    name: String,
    /// The digest secret; one is made up (and returned once) when absent.
    password: Option<String>,
    max_calls: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    name: Option<String>,
    max_calls: Option<u32>,
    do_not_disturb: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Password {
    password: String,
}

fn user_view(control: &Control, directory: &Directory, idx: directory::UserIdx) -> Value {
    let user = directory.user(idx);
    let now_ms = clock::unix_ms();
    let presence = control.presence.user(&user.id);
    let assigned: Vec<&str> = directory
        .numbers()
        .iter()
        .filter(|n| n.is_member(idx))
        .map(|n| n.e164.as_str())
        .collect();
    let routed: Vec<&str> = directory
        .numbers()
        .iter()
        .filter(|n| n.routing.ring.contains(&idx))
        .map(|n| n.e164.as_str())
        .collect();
    let active_calls = presence.active_calls();
    json!({
        "id": user.id,
        "name": user.name,
        "status": user.status.as_str(),
        "max_calls": user.max_calls,
        "do_not_disturb": user.do_not_disturb,
        "numbers": assigned,
        "routed_on": routed,
        "devices": presence.bindings(now_ms).len(),
        "active_calls": active_calls,
        "busy": active_calls >= user.max_calls,
    })
}

fn find_user(directory: &Directory, id: &str) -> Result<directory::UserIdx, ApiError> {
    directory
        .user_index(id)
        .ok_or_else(|| ApiError::unknown_user(id))
}

/// Edits one user's entry (`edit` gets the document, the running
/// directory and the id), then answers with the user as they are now.
async fn change_user(
    api: &Api,
    id: &str,
    edit: impl FnOnce(&mut DocumentMut, &Directory, &str) -> Result<(), ApiError> + Send + 'static,
) -> ApiResult {
    let key = id.to_owned();
    api.control.change(move |doc, d| edit(doc, d, &key)).await?;
    user_now(&api.control, id)
}

/// The same for one number, in E.164.
async fn change_number(
    api: &Api,
    e164: String,
    edit: impl FnOnce(&mut DocumentMut, &Directory, &str) -> Result<(), ApiError> + Send + 'static,
) -> ApiResult {
    let key = e164.clone();
    api.control.change(move |doc, d| edit(doc, d, &key)).await?;
    number_now(&api.control, &e164).await
}

/// The view of user `id` in the running workspace.
fn user_now(control: &Control, id: &str) -> ApiResult {
    let workspace = control.directory();
    let idx = find_user(&workspace.directory, id)?;
    Ok(Json(user_view(control, &workspace.directory, idx)))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    responses((status = 200, description = "Every user, with the numbers they are assigned to and routed on, devices signed in and calls up", body = Vec<Object>)))]
async fn list_users(State(api): Shared) -> Json<Value> {
    let workspace = api.control.directory();
    let d = &workspace.directory;
    Json(Value::Array(
        (0..d.users().len())
            .map(|i| user_view(&api.control, d, directory::UserIdx(i as u32)))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = InviteUser,
    responses(
        (status = 201, description = "Invited (status `invited`); `password` is returned when it was made up", body = Object),
        (status = 409, description = "`user_exists`, `seats_exhausted`", body = super::ErrorBody),
        (status = 422, description = "`invalid_config` (such as a bad id), `invalid_request`", body = super::ErrorBody)))]
async fn invite_user(
    State(api): Shared,
    Body(body): Body<InviteUser>,
) -> Result<Response, ApiError> {
    let made_up = body.password.is_none();
    let password = match body.password.clone() {
        Some(p) => p,
        None => new_password()?,
    };
    let id = body.id.clone();
    let password_edit = password.to_owned();
    api.control
        .change(move |doc, directory| {
            if directory.user_index(&body.id).is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "user_exists",
                    format!("there is already a user `{}`", body.id),
                ));
            }
            if directory.users().len() as u64 >= u64::from(directory.seats()) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "seats_exhausted",
                    format!(
                        "all {} seats of the plan are taken: remove a user or raise plan.seats",
                        directory.seats()
                    ),
                ));
            }
            let mut table = Table::new();
            table.insert("id", value(&body.id));
            table.insert("name", value(&body.name));
            table.insert("status", value("invited"));
            table.insert("password", value(&password_edit));
            if let Some(max) = body.max_calls {
                table.insert("max_calls", value(i64::from(max)));
            }
            file::array(doc, "users")?.push(table);
            Ok(())
        })
        .await?;
    let Json(mut view) = user_now(&api.control, &id)?;
    if made_up {
        view["password"] = json!(password);
    }
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// A digest secret for an invited user who was given none: 24 characters
/// drawn from the operating system's random source over a 64-letter
/// alphabet (144 bits).
fn new_password() -> Result<String, ApiError> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("no_randomness", e.to_string()))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 63)]))
        .collect())
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "The user", body = Object), (status = 404, description = "`unknown_user`", body = super::ErrorBody)))]
async fn get_user(State(api): Shared, Path(id): Path<String>) -> ApiResult {
    user_now(&api.control, &id)
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "Changed", body = Object), (status = 404, description = "`unknown_user`", body = super::ErrorBody), (status = 422, description = "`invalid_config` (max_calls 0...)", body = super::ErrorBody)))]
async fn patch_user(
    State(api): Shared,
    Path(id): Path<String>,
    Body(body): Body<UserPatch>,
) -> ApiResult {
    change_user(&api, &id, move |doc, _, id| {
        let user = file::user_mut(doc, id)?;
        if let Some(name) = &body.name {
            user.insert("name", value(name));
        }
        if let Some(max) = body.max_calls {
            user.insert("max_calls", value(i64::from(max)));
        }
        match body.do_not_disturb {
            Some(true) => {
                user.insert("do_not_disturb", value(true));
            }
            Some(false) => {
                user.remove("do_not_disturb");
            }
            None => {}
        }
        Ok(())
    })
    .await
}

async fn set_status(api: &Api, id: &str, status: UserStatus) -> ApiResult {
    change_user(api, id, move |doc, _, id| {
        file::user_mut(doc, id)?.insert("status", value(status.as_str()));
        Ok(())
    })
    .await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/activate", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "Active: can sign in and take calls", body = Object), (status = 404, description = "`unknown_user`", body = super::ErrorBody)))]
async fn activate_user(State(api): Shared, Path(id): Path<String>) -> ApiResult {
    set_status(&api, &id, UserStatus::Active).await
}

#[utoipa::path(post, path = "/api/v1/users/{id}/deactivate", tag = "users",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, description = "Deactivated: signed out at once, rings for nothing, REGISTER refused with 403; a call up continues to its end", body = Object), (status = 404, description = "`unknown_user`", body = super::ErrorBody)))]
async fn deactivate_user(State(api): Shared, Path(id): Path<String>) -> ApiResult {
    set_status(&api, &id, UserStatus::Deactivated).await
}

#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "users", request_body = Password,
    params(("id" = String, Path, description = "user id")),
    responses((status = 204, description = "Set"), (status = 404, description = "`unknown_user`", body = super::ErrorBody), (status = 422, description = "`invalid_config` (empty)", body = super::ErrorBody)))]
async fn set_password(
    State(api): Shared,
    Path(id): Path<String>,
    Body(body): Body<Password>,
) -> Result<StatusCode, ApiError> {
    api.control
        .change(move |doc, _| {
            let user = file::user_mut(doc, &id)?;
            user.insert("password", value(&body.password));
            // Stored HA1 values would win over the new password.
            user.remove("ha1_md5");
            user.remove("ha1_sha256");
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "user id"), Force),
    responses((status = 204, description = "Removed: the seat is free, the devices signed out"), (status = 404, description = "`unknown_user`", body = super::ErrorBody), (status = 409, description = "`user_still_routed`: on a number's routing (use ?force=true)", body = super::ErrorBody)))]
async fn remove_user(
    State(api): Shared,
    Path(id): Path<String>,
    Q(force): Q<Force>,
) -> Result<StatusCode, ApiError> {
    api.control
        .change(move |doc, _| {
            let position =
                file::user_position(doc, &id).ok_or_else(|| ApiError::unknown_user(&id))?;
            let routed = routed_numbers(doc, &id, force.force)?;
            if !routed.is_empty() && !force.force {
                return Err(still_routed(&id, &routed));
            }
            // Assignments go with the user (they alone ring nobody).
            for number in file::array(doc, "numbers")?.iter_mut() {
                file::remove_string(number, "members", &id);
            }
            file::array(doc, "users")?.remove(position);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The numbers (and menus) on which `user` is routed; `remove` takes them
/// out of every one.
fn routed_numbers(
    doc: &mut DocumentMut,
    user: &str,
    remove: bool,
) -> Result<Vec<String>, ApiError> {
    let mut found = Vec::new();
    for number in file::array(doc, "numbers")?.iter_mut() {
        if file::routed_on(number, user, remove) {
            found.push(
                number
                    .get("number")
                    .and_then(Item::as_str)
                    .unwrap_or("?")
                    .to_owned(),
            );
        }
    }
    if file::routed_in_menus(doc, user, remove) {
        found.push("a shared menu".to_owned());
    }
    Ok(found)
}

fn still_routed(user: &str, on: &[String]) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "user_still_routed",
        format!(
            "`{user}` is still routed on {}: take them out of the routing first, or add ?force=true",
            on.join(", ")
        ),
    )
}

#[utoipa::path(get, path = "/api/v1/users/{id}/explain", tag = "explain",
    params(("id" = String, Path, description = "user id"), At),
    responses((status = 200, description = "Every number and whether the user would ring on it; if not, the gate: `not_assigned`, `not_active`, `not_signed_in`, `not_in_routing`, `busy`, `do_not_disturb`, `outside_user_hours`, `number_closed`", body = Object), (status = 404, description = "`unknown_user`", body = super::ErrorBody)))]
async fn explain_user(State(api): Shared, Path(id): Path<String>, Q(q): Q<At>) -> ApiResult {
    let at = at(&q)?;
    let workspace = api.control.directory();
    let idx = find_user(&workspace.directory, &id)?;
    Ok(Json(crate::explain::user_live(&workspace, idx, at)))
}

// ---------------------------------------------------------------------------
// Numbers

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    /// E.164 (separators and a leading 00 are accepted).
    number: String,
    name: String,
    /// IANA time zone of its business hours.
    timezone: String,
    #[serde(default)]
    members: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberPatch {
    name: Option<String>,
    timezone: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingBody {
    /// `simultaneous` or `cascade`.
    strategy: String,
    /// Who rings, in order; each must be a member.
    ring: Vec<String>,
    /// Cascade: seconds each user rings.
    step_timeout: Option<u32>,
    /// Seconds the whole attempt rings before `no_answer`.
    ring_timeout: Option<u32>,
    /// Where calls go when nobody answers (a destination table, as in the file).
    #[schema(value_type = Option<Object>)]
    no_answer: Option<Value>,
    /// Where calls go outside business hours.
    #[schema(value_type = Option<Object>)]
    outside: Option<Value>,
}

fn e164(raw: &str) -> Result<String, ApiError> {
    directory::normalize_e164(raw)
        .map(|n| n.as_str().to_owned())
        .ok_or_else(|| ApiError::unknown_number(raw))
}

fn number_view(
    control: &Control,
    file_json: &Value,
    directory: &Directory,
    idx: directory::NumberIdx,
) -> Value {
    let number = directory.number(idx);
    let user = |u: &directory::UserIdx| directory.user(*u).id.clone();
    // The number's entry as the administrator wrote it (hours, menu,
    // voicemail, destinations), when there is a file.
    let written = file_json["numbers"]
        .as_array()
        .and_then(|all| {
            all.iter().find(|n| {
                n["number"]
                    .as_str()
                    .and_then(directory::normalize_e164)
                    .is_some_and(|e| e.as_str() == number.e164)
            })
        })
        .cloned()
        .unwrap_or(Value::Null);
    let _ = control;
    json!({
        "number": number.e164,
        "name": number.name,
        "timezone": number.timezone_name,
        "members": number.members.iter().map(user).collect::<Vec<_>>(),
        "routing": {
            "strategy": number.routing.strategy.as_str(),
            "ring": number.routing.ring.iter().map(user).collect::<Vec<_>>(),
            "step_timeout": number.routing.step_timeout.as_secs(),
            "ring_timeout": number.ring_timeout.as_secs(),
        },
        "hours": written.get("hours"),
        "outside": written.get("outside"),
        "no_answer": written.get("no_answer"),
        "ivr": written.get("ivr"),
        "voicemail": written.get("voicemail"),
    })
}

async fn number_now(control: &Control, e164: &str) -> ApiResult {
    let workspace = control.directory();
    let idx = workspace
        .directory
        .number_index(e164)
        .ok_or_else(|| ApiError::unknown_number(e164))?;
    let json = file_json(control).await;
    Ok(Json(number_view(control, &json, &workspace.directory, idx)))
}

#[utoipa::path(get, path = "/api/v1/numbers", tag = "numbers",
    responses((status = 200, description = "Every number with its members, routing, hours, menu and voicemail", body = Vec<Object>)))]
async fn list_numbers(State(api): Shared) -> Json<Value> {
    let workspace = api.control.directory();
    let json = file_json(&api.control).await;
    let d = &workspace.directory;
    Json(Value::Array(
        (0..d.numbers().len())
            .map(|i| number_view(&api.control, &json, d, directory::NumberIdx(i as u32)))
            .collect(),
    ))
}

#[utoipa::path(post, path = "/api/v1/numbers", tag = "numbers", request_body = NewNumber,
    responses((status = 201, description = "Created, routing nobody yet", body = Object), (status = 409, description = "`number_exists`", body = super::ErrorBody), (status = 422, description = "`invalid_config` (bad number, time zone, member)", body = super::ErrorBody)))]
async fn create_number(
    State(api): Shared,
    Body(body): Body<NewNumber>,
) -> Result<Response, ApiError> {
    let e164 = directory::normalize_e164(&body.number)
        .map(|n| n.as_str().to_owned())
        .ok_or_else(|| {
            ApiError::invalid_request(format!("`{}` is not an E.164 number", body.number))
        })?;
    let key = e164.clone();
    api.control
        .change(move |doc, directory| {
            let e164 = key.as_str();
            if directory.number_index(e164).is_some() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "number_exists",
                    format!("{e164} is already one of the workspace's numbers"),
                ));
            }
            for member in &body.members {
                find_user(directory, member)?;
            }
            let mut table = Table::new();
            table.insert("number", value(e164));
            table.insert("name", value(&body.name));
            table.insert("timezone", value(&body.timezone));
            let mut members = Array::new();
            for m in &body.members {
                members.push(m.as_str());
            }
            table.insert("members", value(members));
            let mut routing = Table::new();
            routing.insert("strategy", value("simultaneous"));
            routing.insert("ring", value(Array::new()));
            table.insert("routing", Item::Table(routing));
            file::array(doc, "numbers")?.push(table);
            Ok(())
        })
        .await?;
    let Json(view) = number_now(&api.control, &e164).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[utoipa::path(get, path = "/api/v1/numbers/{number}", tag = "numbers",
    params(("number" = String, Path, description = "E.164, such as +15550100")),
    responses((status = 200, description = "The number", body = Object), (status = 404, description = "`unknown_number`", body = super::ErrorBody)))]
async fn get_number(State(api): Shared, Path(number): Path<String>) -> ApiResult {
    number_now(&api.control, &e164(&number)?).await
}

#[utoipa::path(patch, path = "/api/v1/numbers/{number}", tag = "numbers", request_body = NumberPatch,
    params(("number" = String, Path, description = "E.164")),
    responses((status = 200, description = "Renamed (or its time zone changed)", body = Object), (status = 404, description = "`unknown_number`", body = super::ErrorBody), (status = 422, description = "`invalid_config`", body = super::ErrorBody)))]
async fn patch_number(
    State(api): Shared,
    Path(number): Path<String>,
    Body(body): Body<NumberPatch>,
) -> ApiResult {
    let e164 = e164(&number)?;
    change_number(&api, e164, move |doc, _, e164| {
        let table = file::number_mut(doc, e164)?;
        if let Some(name) = &body.name {
            table.insert("name", value(name));
        }
        if let Some(tz) = &body.timezone {
            table.insert("timezone", value(tz));
        }
        Ok(())
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/numbers/{number}", tag = "numbers",
    params(("number" = String, Path, description = "E.164")),
    responses((status = 204, description = "Deleted; calls up on it continue"), (status = 404, description = "`unknown_number`", body = super::ErrorBody), (status = 422, description = "`invalid_config`: another number's destination still names it", body = super::ErrorBody)))]
async fn delete_number(
    State(api): Shared,
    Path(number): Path<String>,
) -> Result<StatusCode, ApiError> {
    let e164 = e164(&number)?;
    api.control
        .change(move |doc, _| {
            let position =
                file::number_position(doc, &e164).ok_or_else(|| ApiError::unknown_number(&e164))?;
            file::array(doc, "numbers")?.remove(position);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/api/v1/numbers/{number}/members/{user}", tag = "numbers",
    params(("number" = String, Path, description = "E.164"), ("user" = String, Path, description = "user id")),
    responses((status = 200, description = "Assigned (not routed yet: see PUT .../routing)", body = Object), (status = 404, description = "`unknown_number`, `unknown_user`", body = super::ErrorBody)))]
async fn assign_member(
    State(api): Shared,
    Path((number, user)): Path<(String, String)>,
) -> ApiResult {
    let e164 = e164(&number)?;
    change_number(&api, e164, move |doc, directory, e164| {
        find_user(directory, &user)?;
        file::push_string(file::number_mut(doc, e164)?, "members", &user);
        Ok(())
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/numbers/{number}/members/{user}", tag = "numbers",
    params(("number" = String, Path, description = "E.164"), ("user" = String, Path, description = "user id"), Force),
    responses((status = 200, description = "Unassigned", body = Object), (status = 404, description = "`unknown_number`, `not_a_member`", body = super::ErrorBody), (status = 409, description = "`user_still_routed` (use ?force=true)", body = super::ErrorBody)))]
async fn unassign_member(
    State(api): Shared,
    Path((number, user)): Path<(String, String)>,
    Q(force): Q<Force>,
) -> ApiResult {
    let e164 = e164(&number)?;
    change_number(&api, e164, move |doc, _, e164| {
        let table = file::number_mut(doc, e164)?;
        if !file::strings(table, "members").contains(&user) {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_a_member",
                format!("`{user}` is not a member of {e164}"),
            ));
        }
        // Only the ring list needs membership; destinations may name anyone.
        if file::in_ring(table, &user, force.force) && !force.force {
            return Err(still_routed(&user, &[e164.to_string()]));
        }
        file::remove_string(table, "members", &user);
        Ok(())
    })
    .await
}

#[utoipa::path(put, path = "/api/v1/numbers/{number}/routing", tag = "numbers", request_body = RoutingBody,
    params(("number" = String, Path, description = "E.164")),
    responses((status = 200, description = "Routing set", body = Object), (status = 404, description = "`unknown_number`", body = super::ErrorBody), (status = 422, description = "`not_a_member`, `invalid_config`", body = super::ErrorBody)))]
async fn set_routing(
    State(api): Shared,
    Path(number): Path<String>,
    Body(body): Body<RoutingBody>,
) -> ApiResult {
    let e164 = e164(&number)?;
    change_number(&api, e164, move |doc, directory, e164| {
        let idx = directory.number_index(e164).ok_or_else(|| ApiError::unknown_number(e164))?;
        let members = &directory.number(idx).members;
        for user in &body.ring {
            let member = directory.user_index(user).is_some_and(|u| members.contains(&u));
            if !member {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "not_a_member",
                    format!("`{user}` is not a member of {e164}: assign them first (PUT /api/v1/numbers/{e164}/members/{user})"),
                ));
            }
        }
        let table = file::number_mut(doc, e164)?;
        let routing = file::routing_mut(table)?;
        routing.insert("strategy", value(&body.strategy));
        let mut ring = Array::new();
        for user in &body.ring {
            ring.push(user.as_str());
        }
        routing.insert("ring", value(ring));
        match body.step_timeout {
            Some(s) => {
                routing.insert("step_timeout", value(i64::from(s)));
            }
            None => {
                routing.remove("step_timeout");
            }
        }
        if let Some(t) = body.ring_timeout {
            table.insert("ring_timeout", value(i64::from(t)));
        }
        for (key, destination) in [("no_answer", &body.no_answer), ("outside", &body.outside)] {
            if let Some(d) = destination {
                table.insert(key, item_from_json(d, key)?);
            }
        }
        Ok(())
    })
    .await
}

/// The tables of a number that are set whole: hours, menu, voicemail and
/// the two destinations.
const SECTIONS: [&str; 5] = ["hours", "ivr", "voicemail", "outside", "no_answer"];

fn section(name: &str) -> Result<&'static str, ApiError> {
    SECTIONS
        .iter()
        .find(|s| **s == name)
        .copied()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such setting `{name}`; one of {}", SECTIONS.join(", ")),
            )
        })
}

#[utoipa::path(put, path = "/api/v1/numbers/{number}/{section}", tag = "numbers",
    request_body(content = Object, description = "The table as in the file, in JSON: `hours` (`mon`...`sun`, `closed`, `special`), `ivr` (`greeting`, `timeout`, `retries`, `invalid`, `fallback`, `options`), `voicemail` (`greeting`, `max_length`, `max_messages`), `outside` and `no_answer` (`action` and its keys)"),
    params(("number" = String, Path, description = "E.164"), ("section" = String, Path, description = "hours, ivr, voicemail, outside or no_answer")),
    responses((status = 200, description = "Set", body = Object), (status = 404, description = "`unknown_number`", body = super::ErrorBody), (status = 422, description = "`invalid_config` with every error, by key", body = super::ErrorBody)))]
async fn set_section(
    State(api): Shared,
    Path((number, name)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    let e164 = e164(&number)?;
    let key = section(&name)?;
    if !body.is_object() {
        return Err(ApiError::invalid_request(format!(
            "{key} takes a JSON object"
        )));
    }
    change_number(&api, e164, move |doc, _, e164| {
        let item = item_from_json(&body, key)?;
        // Destinations read best inline (`outside = { action = ... }`)
        // only when short; a table keeps them readable either way.
        file::number_mut(doc, e164)?.insert(key, item);
        Ok(())
    })
    .await
}

#[utoipa::path(delete, path = "/api/v1/numbers/{number}/{section}", tag = "numbers",
    params(("number" = String, Path, description = "E.164"), ("section" = String, Path, description = "hours, ivr, voicemail, outside or no_answer")),
    responses((status = 200, description = "Back to the default (always open, no menu, default mailbox, hang up)", body = Object), (status = 404, description = "`unknown_number`", body = super::ErrorBody), (status = 422, description = "`invalid_config` (such as a destination still pointing at the menu)", body = super::ErrorBody)))]
async fn clear_section(
    State(api): Shared,
    Path((number, name)): Path<(String, String)>,
) -> ApiResult {
    let e164 = e164(&number)?;
    let key = section(&name)?;
    change_number(&api, e164, move |doc, _, e164| {
        file::number_mut(doc, e164)?.remove(key);
        Ok(())
    })
    .await
}

#[utoipa::path(get, path = "/api/v1/numbers/{number}/explain", tag = "explain",
    params(("number" = String, Path, description = "E.164"), At),
    responses((status = 200, description = "Whether the number is open and why, the plan a call would follow, and every member with `rings` and the `gate` that stops them", body = Object), (status = 404, description = "`unknown_number`", body = super::ErrorBody)))]
async fn explain_number(State(api): Shared, Path(number): Path<String>, Q(q): Q<At>) -> ApiResult {
    let e164 = e164(&number)?;
    let at = at(&q)?;
    let workspace = api.control.directory();
    let idx = workspace
        .directory
        .number_index(&e164)
        .ok_or_else(|| ApiError::unknown_number(&e164))?;
    Ok(Json(crate::explain::number_live(&workspace, idx, at)))
}

// ---------------------------------------------------------------------------
// Trunks and plan

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkBody {
    /// Source IPs or CIDRs the trunk's calls come from.
    sources: Vec<String>,
    /// `{ "address": "host:port", "username": ..., "password": ... }`.
    #[schema(value_type = Option<Object>)]
    outbound: Option<Value>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    seats: u32,
}

/// The file as the administrator wrote it, as JSON (parsed off the
/// engine's runtime: a large workspace takes a while).
async fn file_json(control: &Control) -> Value {
    let text = control.file_text().await.unwrap_or_default();
    tokio::task::spawn_blocking(move || file::as_json(&text))
        .await
        .unwrap_or(Value::Null)
}

fn trunk_views(json: &Value) -> Vec<Value> {
    json["trunks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut t| {
            // Secrets never leave the file.
            if let Some(outbound) = t.get_mut("outbound").and_then(Value::as_object_mut) {
                let set = outbound.remove("password").is_some();
                outbound.insert("password_set".into(), json!(set));
            }
            t
        })
        .collect()
}

#[utoipa::path(get, path = "/api/v1/trunks", tag = "trunks",
    responses((status = 200, description = "Every trunk (passwords never shown)", body = Vec<Object>)))]
async fn list_trunks(State(api): Shared) -> Json<Value> {
    Json(Value::Array(trunk_views(&file_json(&api.control).await)))
}

#[utoipa::path(get, path = "/api/v1/trunks/{name}", tag = "trunks",
    params(("name" = String, Path, description = "trunk name")),
    responses((status = 200, description = "The trunk", body = Object), (status = 404, description = "`unknown_trunk`", body = super::ErrorBody)))]
async fn get_trunk(State(api): Shared, Path(name): Path<String>) -> ApiResult {
    trunk_views(&file_json(&api.control).await)
        .into_iter()
        .find(|t| t["name"] == json!(name))
        .map(Json)
        .ok_or_else(|| unknown_trunk(&name))
}

fn stored_trunk_password(doc: &DocumentMut, name: &str) -> Option<String> {
    let i = file::trunk_position(doc, name)?;
    let trunk = doc.get("trunks")?.as_array_of_tables()?.get(i)?;
    trunk
        .get("outbound")?
        .as_table_like()?
        .get("password")?
        .as_str()
        .map(str::to_owned)
}

fn unknown_trunk(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "unknown_trunk",
        format!("there is no trunk `{name}`"),
    )
}

#[utoipa::path(put, path = "/api/v1/trunks/{name}", tag = "trunks", request_body = TrunkBody,
    params(("name" = String, Path, description = "trunk name")),
    responses((status = 200, description = "Created or replaced", body = Object), (status = 422, description = "`invalid_config` (bad source, address)", body = super::ErrorBody)))]
async fn put_trunk(
    State(api): Shared,
    Path(name): Path<String>,
    Body(body): Body<TrunkBody>,
) -> ApiResult {
    let name_edit = name.to_owned();
    api.control
        .change(move |doc, _| {
            let mut table = Table::new();
            table.insert("name", value(&name_edit));
            let mut sources = Array::new();
            for s in &body.sources {
                sources.push(s.as_str());
            }
            table.insert("sources", value(sources));
            if let Some(outbound) = &body.outbound {
                let mut outbound = outbound.clone();
                if let Some(o) = outbound.as_object_mut() {
                    // What GET shows, sent back: not a key of the file.
                    o.remove("password_set");
                    if !o.contains_key("password") {
                        // A PUT without the password keeps the stored one.
                        if let Some(kept) = stored_trunk_password(doc, &name_edit) {
                            o.insert("password".into(), json!(kept));
                        }
                    }
                }
                match item_from_json(&outbound, "outbound")? {
                    Item::Table(t) => {
                        table.insert("outbound", value(t.into_inline_table()));
                    }
                    other => {
                        table.insert("outbound", other);
                    }
                }
            }
            match file::trunk_position(doc, &name_edit) {
                Some(i) => {
                    if let Some(existing) = file::array(doc, "trunks")?.get_mut(i) {
                        *existing = table;
                    }
                }
                None => file::array(doc, "trunks")?.push(table),
            }
            Ok(())
        })
        .await?;
    get_trunk(State(api), Path(name)).await
}

#[utoipa::path(delete, path = "/api/v1/trunks/{name}", tag = "trunks",
    params(("name" = String, Path, description = "trunk name")),
    responses((status = 204, description = "Deleted: its calls are refused from now on"), (status = 404, description = "`unknown_trunk`", body = super::ErrorBody)))]
async fn delete_trunk(
    State(api): Shared,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    api.control
        .change(move |doc, _| {
            let i = file::trunk_position(doc, &name).ok_or_else(|| unknown_trunk(&name))?;
            file::array(doc, "trunks")?.remove(i);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/plan", tag = "plan",
    responses((status = 200, description = "Seats bought and used", body = Object)))]
async fn get_plan(State(api): Shared) -> Json<Value> {
    let workspace = api.control.directory();
    let d = &workspace.directory;
    Json(json!({"seats": d.seats(), "used": d.users().len()}))
}

#[utoipa::path(put, path = "/api/v1/plan", tag = "plan", request_body = PlanBody,
    responses((status = 200, description = "Seats set", body = Object), (status = 409, description = "`seats_below_users`", body = super::ErrorBody)))]
async fn put_plan(State(api): Shared, Body(body): Body<PlanBody>) -> Result<Json<Value>, ApiError> {
    api.control
        .change(move |doc, directory| {
            if (body.seats as usize) < directory.users().len() {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "seats_below_users",
                    format!(
                        "{} users hold a seat: remove some before going down to {} seats",
                        directory.users().len(),
                        body.seats
                    ),
                ));
            }
            if doc.get("plan").and_then(Item::as_table).is_none() {
                doc.insert("plan", Item::Table(Table::new()));
            }
            if let Some(plan) = doc.get_mut("plan").and_then(Item::as_table_mut) {
                plan.insert("seats", value(i64::from(body.seats)));
            }
            Ok(())
        })
        .await?;
    Ok(get_plan(State(api)).await)
}

// ---------------------------------------------------------------------------
// Live state

#[utoipa::path(get, path = "/api/v1/registrations", tag = "live",
    responses((status = 200, description = "Per user: devices with contact, transport, source and expiry", body = Vec<Object>)))]
async fn registrations(State(api): Shared) -> Json<Value> {
    let workspace = api.control.directory();
    let now_ms = clock::unix_ms();
    let users: Vec<Value> = workspace
        .directory
        .users()
        .iter()
        .map(|u| {
            let devices: Vec<Value> = api
                .control
                .presence
                .user(&u.id)
                .bindings(now_ms)
                .iter()
                .map(|b| {
                    let expires = jiff::Timestamp::from_millisecond(b.expires_at_ms as i64)
                        .map(|t| t.to_string())
                        .unwrap_or_default();
                    json!({
                        "contact": b.contact,
                        "transport": match b.transport {
                            presence::BindingTransport::Udp => "udp",
                            presence::BindingTransport::Tcp { .. } => "tcp",
                            presence::BindingTransport::Tls { .. } => "tls",
                        },
                        "source": b.source.to_string(),
                        "expires": expires,
                        "expires_in_s": b.expires_at_ms.saturating_sub(now_ms) / 1000,
                        "instance": b.instance,
                    })
                })
                .collect();
            json!({"user": u.id, "status": u.status.as_str(), "devices": devices})
        })
        .collect();
    Json(Value::Array(users))
}

#[utoipa::path(get, path = "/api/v1/calls", tag = "live",
    responses((status = 200, description = "Calls in progress: number, caller, state, who is ringing, who answered, since", body = Vec<Object>)))]
async fn calls(State(api): Shared) -> ApiResult {
    let calls = match api.control.command(engine::Command::Calls).await? {
        engine::CommandReply::Calls(calls) => calls,
        _ => Vec::new(),
    };
    let party = |(user, device): &(String, String)| json!({"user": user, "device": device});
    Ok(Json(Value::Array(
        calls
            .iter()
            .map(|c| {
                json!({
                    "call_id": c.call_id,
                    "number": c.number,
                    "direction": c.direction.as_str(),
                    "dialled": c.dialled,
                    "caller": c.caller,
                    "state": c.state,
                    "ringing": c.ringing.iter().map(party).collect::<Vec<_>>(),
                    "answered_by": c.answered_by.as_ref().map(party),
                    "since": c.started.to_string(),
                    "answered": c.answered.map(|t| t.to_string()),
                })
            })
            .collect(),
    )))
}

#[derive(Deserialize, IntoParams)]
pub struct HistoryQuery {
    /// RFC 3339: calls that ended at or after it.
    since: Option<String>,
    /// E.164.
    number: Option<String>,
    /// Calls the user answered, was rung for, or was skipped on.
    user: Option<String>,
    /// At most this many, newest first (default 100, at most 10000).
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/v1/calls/history", tag = "live", params(HistoryQuery),
    responses((status = 200, description = "Call records, newest first", body = Vec<crate::records::Row>)))]
async fn call_history(State(api): Shared, Q(q): Q<HistoryQuery>) -> ApiResult {
    let since = match &q.since {
        Some(s) => Some(crate::explain::parse_at(s).map_err(ApiError::invalid_request)?),
        None => None,
    };
    let number = match &q.number {
        Some(n) => Some(e164(n)?),
        None => None,
    };
    let query = crate::records::Query {
        since,
        number,
        user: q.user.clone(),
        limit: q.limit.unwrap_or(100).min(10_000),
    };
    let dir = api.control.data_dir.clone();
    let rows = tokio::task::spawn_blocking(move || crate::records::history(&dir, &query))
        .await
        .map_err(|e| ApiError::internal("records", e.to_string()))?
        .map_err(|e| ApiError::internal("records", e.to_string()))?;
    Ok(Json(serde_json::to_value(rows).unwrap_or_default()))
}

#[utoipa::path(get, path = "/api/v1/bans", tag = "security",
    responses((status = 200, description = "Sources banned now: `source`, `remaining_s`, `count` (bans of this source so far)", body = Vec<Object>)))]
async fn bans(State(api): Shared) -> ApiResult {
    let bans = match api.control.command(engine::Command::Bans).await? {
        engine::CommandReply::Bans(bans) => bans,
        _ => Vec::new(),
    };
    Ok(Json(Value::Array(
        bans.iter()
            .map(|b| {
                json!({
                    "source": b.source.to_string(),
                    "remaining_s": b.remaining.as_secs(),
                    "count": b.count,
                })
            })
            .collect(),
    )))
}

#[utoipa::path(delete, path = "/api/v1/bans/{source}", tag = "security",
    params(("source" = String, Path, description = "the banned IP address")),
    responses((status = 204, description = "Lifted (and the source's count reset)"), (status = 404, description = "`not_banned`", body = super::ErrorBody), (status = 422, description = "`invalid_request`: not an IP address", body = super::ErrorBody)))]
async fn lift_ban(State(api): Shared, Path(source): Path<String>) -> Result<StatusCode, ApiError> {
    let ip = source
        .parse::<std::net::IpAddr>()
        .map_err(|_| ApiError::invalid_request(format!("`{source}` is not an IP address")))?;
    match api.control.command(engine::Command::Unban(ip)).await? {
        engine::CommandReply::Unbanned(true) => Ok(StatusCode::NO_CONTENT),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_banned",
            format!("{ip} is not banned"),
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/reload", tag = "config",
    responses((status = 200, description = "The file was read again and applied", body = Reloaded), (status = 422, description = "`invalid_config` with every error; the running workspace is kept", body = super::ErrorBody)))]
async fn reload(State(api): Shared) -> Result<Json<Reloaded>, ApiError> {
    api.control.reload().await.map(Json)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().uri("/api/v1/users");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn without_a_token_only_local_clients_are_served() {
        assert_eq!(
            from_elsewhere(&request(&[("host", "127.0.0.1:8080")])),
            None
        );
        assert_eq!(from_elsewhere(&request(&[("host", "[::1]:8080")])), None);
        assert_eq!(from_elsewhere(&request(&[("host", "localhost")])), None);
        let same = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(from_elsewhere(&request(&same)), None);
        // A page elsewhere posting to the API, and DNS rebinding.
        assert!(from_elsewhere(&request(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.test")
        ]))
        .is_some());
        assert!(from_elsewhere(&request(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site")
        ]))
        .is_some());
        assert!(from_elsewhere(&request(&[("host", "rebound.evil.test:8080")])).is_some());
    }
}
