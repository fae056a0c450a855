//! Operating a running daemon: changes to the workspace that persist (the
//! config file is the single source of truth), reloads, and the admin HTTP
//! API (`/api/v1`, `/metrics`) over them.
//!
//! - [`Control`]: what the API, `SIGHUP` and the tests act through. A
//!   change edits the file's document, is checked by the same parser as at
//!   start, is written atomically, and only then replaces the engine's
//!   workspace; nothing is half-applied.
//! - [`config_file`]: the `toml_edit` document and the atomic write.
//! - [`api`]: the axum routes, their OpenAPI description and error codes.
//!
//! It holds no call logic and never touches the engine but by commands.

pub mod api;
pub mod config_file;

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use directory::Directory;
use engine::{Command, CommandReply, WorkspaceReader};
use presence::Presence;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Mutex};
use toml_edit::DocumentMut;

use crate::media_runtime::PromptStore;
use crate::metrics::Metrics;
use crate::server::EngineInput;
use crate::settings::Config;
use config_file::ConfigFile;

/// A refused request: the HTTP status, a stable code for scripts and a
/// message for a person. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable, for scripts: `unknown_user`, `seats_exhausted`, ...
    pub error: String,
    /// For a person.
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unknown_user(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_user",
            format!("there is no user `{id}`"),
        )
    }
    pub fn unknown_number(number: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_number",
            format!("`{number}` is not one of the workspace's numbers"),
        )
    }
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }
    pub(crate) fn internal(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, message)
    }
    fn stopped() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_stopped",
            "the daemon is stopping",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_string(),
            message: self.message,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// What a reload did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    pub users: usize,
    pub numbers: usize,
    /// Calls up at the swap; they keep the workspace they were routed with.
    pub calls_up: usize,
    /// `[server]` settings differ from the running ones: they apply at the
    /// next start (listeners, data directory, limits).
    pub restart_needed: bool,
}

/// The handle on a running daemon that admin changes go through.
pub struct Control {
    pub(crate) inputs: mpsc::Sender<EngineInput>,
    pub(crate) prompts: Arc<PromptStore>,
    pub presence: Arc<Presence>,
    pub workspace: WorkspaceReader,
    pub data_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    /// The file changes are written to; `None` when the workspace came
    /// from no file (then it cannot be changed).
    file: Mutex<Option<ConfigFile>>,
    /// The text of the file as applied, for the GET views: read without
    /// waiting for a change in progress, and never ahead of the workspace.
    published: std::sync::RwLock<Option<Arc<String>>>,
    /// The `[server]` table the daemon started with.
    server: crate::settings::ServerConfig,
}

impl Control {
    pub(crate) fn new(
        inputs: mpsc::Sender<EngineInput>,
        prompts: Arc<PromptStore>,
        presence: Arc<Presence>,
        workspace: WorkspaceReader,
        config: &crate::settings::Config,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Control> {
        let embedded = config.origin == std::path::Path::new(crate::EMBEDDED_DEMO_ORIGIN);
        // A workspace parsed from text that is in no file (the embedded demo,
        // tests) can be read but not changed.
        let file = if embedded {
            None
        } else {
            match ConfigFile::read(&config.origin) {
                Ok(file) => Some(file),
                Err(e) => {
                    tracing::warn!("{e}: admin changes will be refused");
                    None
                }
            }
        };
        Ok(Control {
            inputs,
            prompts,
            presence,
            workspace,
            data_dir: config.server.data_dir.clone(),
            metrics,
            published: std::sync::RwLock::new(file.as_ref().map(|f| Arc::new(f.text.clone()))),
            file: Mutex::new(file),
            server: config.server.clone(),
        })
    }

    /// The workspace new calls are routed with.
    pub fn directory(&self) -> Arc<engine::Workspace> {
        self.workspace.load()
    }

    /// Applies a command between two engine turns and returns its reply.
    pub async fn command(&self, command: Command) -> Result<CommandReply, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.inputs
            .send(EngineInput::Command {
                command: Box::new(command),
                reply,
            })
            .await
            .map_err(|_| ApiError::stopped())?;
        answer
            .await
            .map_err(|_| ApiError::stopped())?
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, "refused_by_engine", e.to_string()))
    }

    /// Routes new calls with `directory` from now on; calls up keep theirs.
    /// Users who can no longer sign in (removed, deactivated, invited) lose
    /// their devices at once: their next REGISTER is refused, and nothing
    /// rings them.
    pub async fn replace_workspace(&self, directory: Directory) -> Result<usize, ApiError> {
        // Its prompts first: a workspace whose prompts cannot be read is refused.
        let prompts = Arc::clone(&self.prompts);
        let (directory, added) = tokio::task::spawn_blocking(move || {
            let added = prompts.add(&directory, std::path::Path::new("<replaced workspace>"));
            (directory, added)
        })
        .await
        .map_err(|e| ApiError::internal("prompts", e.to_string()))?;
        added.map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
                e.to_string(),
            )
        })?;
        self.apply(directory).await
    }

    /// Swaps `directory` in (its prompts already loaded) and signs out the
    /// users it no longer lets sign in.
    async fn apply(&self, directory: Directory) -> Result<usize, ApiError> {
        let signed_out = self.signed_out_by(&directory);
        let calls_up = match self.command(Command::ReplaceWorkspace(directory)).await? {
            CommandReply::WorkspaceReplaced { calls_up } => calls_up,
            other => {
                return Err(ApiError::internal(
                    "unexpected_reply",
                    format!("unexpected reply {other:?}"),
                ))
            }
        };
        let now_ms = crate::clock::unix_ms();
        for user in signed_out {
            let presence = self.presence.user(&user);
            let had = presence.update(now_ms, |bindings| {
                let had = bindings.len();
                bindings.clear();
                had
            });
            if had > 0 {
                self.presence.mark_changed(&user);
                tracing::info!(%user, devices = had, "signed out: the user can no longer sign in");
            }
        }
        Ok(calls_up)
    }

    /// Users of the running workspace who are not active in `next`.
    fn signed_out_by(&self, next: &Directory) -> Vec<String> {
        let current = self.directory();
        current
            .directory
            .users()
            .iter()
            .filter(|u| {
                next.user_index(&u.id)
                    .is_none_or(|i| next.user(i).status != directory::UserStatus::Active)
            })
            .map(|u| u.id.clone())
            .collect()
    }

    /// Edits the file with `edit`, checks the result as at start, writes it
    /// atomically, then applies it. The edit sees the running directory.
    /// It all runs in a task of its own (a client that goes away cannot
    /// leave a change saved but not applied), and the parsing, the edit,
    /// the prompt reads and the fsyncs run off the runtime the engine turns
    /// on (a workspace of thousands of numbers takes a while to parse).
    pub async fn change<T: Send + 'static>(
        self: &Arc<Self>,
        edit: impl FnOnce(&mut DocumentMut, &Directory) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let this = Arc::clone(self);
        let result = tokio::spawn(async move { this.change_inner(edit).await })
            .await
            .unwrap_or_else(|e| Err(ApiError::internal("change_failed", e.to_string())));
        match &result {
            Ok(_) => self.metrics.admin_changes.increment(1),
            Err(e) => {
                self.metrics.admin_refused.increment(1);
                tracing::info!(error = e.code, message = %e.message, "admin change refused");
            }
        }
        result
    }

    async fn change_inner<T: Send + 'static>(
        &self,
        edit: impl FnOnce(&mut DocumentMut, &Directory) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let mut guard = self.file.lock().await;
        let Some(file) = guard.as_mut() else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_writable",
                "the daemon runs a workspace that is not from a file; start it with --config FILE",
            ));
        };
        let path = file.path.clone();
        let expected = file.text.clone();
        let current = self.directory();
        let prompts = Arc::clone(&self.prompts);
        let checked = tokio::task::spawn_blocking(move || -> Result<(T, Config, String), ApiError> {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(expected.as_str()) {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "file_changed",
                    format!(
                        "{} was changed since the daemon read it; reload it first (POST /api/v1/reload or SIGHUP)",
                        path.display()
                    ),
                ));
            }
            let mut doc = config_file::document(&path, &expected)
                .map_err(|e| ApiError::internal("config", e))?;
            let out = edit(&mut doc, &current.directory)?;
            let text = doc.to_string();
            let config = config_file::check(&path, &text).map_err(|errors| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", errors.to_string())
            })?;
            // The prompts are read before anything is written.
            prompts.add(&config.directory, &path).map_err(|e| {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", e.to_string())
            })?;
            config_file::write_atomically(&path, &text).map_err(|e| {
                ApiError::internal("write_failed", format!("writing {}: {e}", path.display()))
            })?;
            Ok((out, config, text))
        })
        .await
        .map_err(|e| ApiError::internal("change_failed", e.to_string()))??;
        let (out, config, text) = checked;
        let old = std::mem::replace(&mut file.text, text);
        match self.apply(config.directory).await {
            Ok(calls_up) => {
                self.publish(&file.text);
                tracing::info!(file = %file.path.display(), calls_up, "admin change applied and saved");
                Ok(out)
            }
            Err(e) => {
                // Not applied: the file goes back to what runs.
                let path = file.path.clone();
                let text = old.clone();
                let restored = tokio::task::spawn_blocking(move || {
                    config_file::write_atomically(&path, &text)
                })
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r);
                match restored {
                    Ok(()) => {
                        file.text = old;
                        Err(e)
                    }
                    Err(io) => {
                        tracing::error!(file = %file.path.display(), error = %io, "a change was saved but could not be applied, and the old file could not be put back: the file is ahead of the running workspace until a reload");
                        Err(ApiError::internal(
                            "saved_not_applied",
                            format!(
                                "{} (and the file, which holds the change, could not be put back: {io}; reload to apply it)",
                                e.message
                            ),
                        ))
                    }
                }
            }
        }
    }

    /// Reads the file again and applies it; an invalid file is refused with
    /// every error and the running workspace is kept.
    /// It runs in a task of its own: a client that goes away does not stop
    /// it half way.
    pub async fn reload(self: &Arc<Self>) -> Result<Reloaded, ApiError> {
        let this = Arc::clone(self);
        tokio::spawn(async move { this.reload_inner().await })
            .await
            .unwrap_or_else(|e| Err(ApiError::internal("reload_failed", e.to_string())))
    }

    async fn reload_inner(&self) -> Result<Reloaded, ApiError> {
        let mut guard = self.file.lock().await;
        let Some(file) = guard.as_mut() else {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_writable",
                "the daemon runs a workspace that is not from a file: there is nothing to reload",
            ));
        };
        let path = file.path.clone();
        let prompts = Arc::clone(&self.prompts);
        let loaded =
            tokio::task::spawn_blocking(move || -> Result<(ConfigFile, Config), ApiError> {
                let invalid = |m: String| {
                    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", m)
                };
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(format!("{}: cannot read the file: {e}", path.display()))
                })?;
                // The config parser first: it lists every error, by position,
                // without quoting the file (a line may hold a secret).
                let config =
                    config_file::check(&path, &text).map_err(|e| invalid(e.to_string()))?;
                prompts
                    .add(&config.directory, &path)
                    .map_err(|e| invalid(e.to_string()))?;
                // Edits need a TOML document; the config parser accepted it.
                config_file::document(&path, &text).map_err(invalid)?;
                let fresh = ConfigFile {
                    path: path.clone(),
                    text,
                };
                Ok((fresh, config))
            })
            .await
            .map_err(|e| ApiError::internal("reload_failed", e.to_string()))??;
        let (fresh, config) = loaded;
        let restart_needed = config.server != self.server;
        let users = config.directory.users().len();
        let numbers = config.directory.numbers().len();
        let calls_up = self.apply(config.directory).await?;
        self.publish(&fresh.text);
        *file = fresh;
        tracing::info!(
            users,
            numbers,
            calls_up,
            restart_needed,
            "configuration reloaded"
        );
        if restart_needed {
            tracing::warn!("[server] settings changed: they apply at the next start");
        }
        Ok(Reloaded {
            users,
            numbers,
            calls_up,
            restart_needed,
        })
    }

    /// The file's text as last read or written (for the GET views).
    pub async fn file_text(&self) -> Option<Arc<String>> {
        self.published
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn publish(&self, text: &str) {
        *self.published.write().unwrap_or_else(|e| e.into_inner()) =
            Some(Arc::new(text.to_owned()));
    }

    /// The engine's counters and gauges.
    pub async fn stats(&self) -> Option<engine::Stats> {
        match self.command(Command::Stats).await {
            Ok(CommandReply::Stats(s)) => Some(s),
            _ => None,
        }
    }
}
