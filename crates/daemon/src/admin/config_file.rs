//! The configuration file as the administrator wrote it: a `toml_edit`
//! document that admin changes edit in place (comments, order and
//! formatting kept), checked by the same parser as at start, and written
//! back atomically (temporary file, fsync, rename, fsync of the folder).
//!
//! It owns the text and the edits of it; it must not apply anything to the
//! running engine (that is [`super::Control`]'s job, once the file is safe).

use std::io::Write;
use std::path::{Path, PathBuf};

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

use super::ApiError;
use crate::settings::Config;

/// The file a running daemon's workspace came from. Only its text is
/// kept: a `toml_edit` document costs tens of times the text's size, and
/// is parsed again for each change.
pub struct ConfigFile {
    pub path: PathBuf,
    /// The text last read or written: a file edited by hand since then is
    /// not overwritten (the change is refused until a reload).
    pub text: String,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<ConfigFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read the file: {e}", path.display()))?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            text,
        })
    }
}

/// `text` as a document to edit. The error never quotes the file: a line
/// may hold a secret.
pub fn document(path: &Path, text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| format!("{}: not a TOML document: {}", path.display(), e.message()))
}

/// Parses `text` as the file at `path`, with every check the daemon makes
/// at start (relative paths from the file's folder).
pub fn check(path: &Path, text: &str) -> Result<Config, directory::ConfigErrors> {
    let base = path.parent().unwrap_or_else(|| Path::new(""));
    Config::parse(text, path, base)
}

/// Writes `text` to `path` so that a crash leaves either the old file or
/// the new one, never a mix: temporary file beside it, fsync, rename, then
/// fsync of the folder so that the rename itself is durable.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    // A symlinked config stays a symlink: the file it points at is replaced.
    let resolved = std::fs::canonicalize(path).ok();
    let path = resolved.as_deref().unwrap_or(path);
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    let folder = folder.unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config".into());
    let temporary = folder.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        // Private from the first byte (the file holds secrets); the
        // administrator's permissions are put back before the rename.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary)?;
        // Keep the administrator's permissions (the file holds secrets).
        if let Ok(meta) = std::fs::metadata(path) {
            file.set_permissions(meta.permissions())?;
        }
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
        return written;
    }
    // The new text is in place; only the rename's durability is at stake.
    if let Err(e) = std::fs::File::open(folder).and_then(|f| f.sync_all()) {
        tracing::warn!(folder = %folder.display(), error = %e, "fsync of the config folder");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Finding entries. Numbers are matched in E.164, however the file writes them.

/// The array of tables `key` (`[[users]]`, `[[numbers]]`, `[[trunks]]`),
/// created when absent. A file that writes it another way (an inline
/// array) is refused rather than rewritten.
pub fn array<'d>(doc: &'d mut DocumentMut, key: &str) -> Result<&'d mut ArrayOfTables, ApiError> {
    if doc.get(key).is_none() {
        doc.insert(key, Item::ArrayOfTables(ArrayOfTables::new()));
    }
    doc.get_mut(key)
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| unsupported(key))
}

fn unsupported(key: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::CONFLICT,
        "unsupported_layout",
        format!(
            "the file writes `{key}` as an inline value; the API edits `[[{key}]]` tables and \
             `[{key}]`-style tables only: rewrite it in that form, or edit the file and reload"
        ),
    )
}

fn str_of<'t>(table: &'t Table, key: &str) -> Option<&'t str> {
    table.get(key).and_then(Item::as_str)
}

pub fn user_position(doc: &DocumentMut, id: &str) -> Option<usize> {
    doc.get("users")?
        .as_array_of_tables()?
        .iter()
        .position(|t| str_of(t, "id") == Some(id))
}

pub fn user_mut<'d>(doc: &'d mut DocumentMut, id: &str) -> Result<&'d mut Table, ApiError> {
    let i = user_position(doc, id).ok_or_else(|| ApiError::unknown_user(id))?;
    array(doc, "users")?
        .get_mut(i)
        .ok_or_else(|| ApiError::unknown_user(id))
}

pub fn number_position(doc: &DocumentMut, e164: &str) -> Option<usize> {
    doc.get("numbers")?
        .as_array_of_tables()?
        .iter()
        .position(|t| {
            str_of(t, "number")
                .and_then(directory::normalize_e164)
                .is_some_and(|n| n.as_str() == e164)
        })
}

pub fn number_mut<'d>(doc: &'d mut DocumentMut, e164: &str) -> Result<&'d mut Table, ApiError> {
    let i = number_position(doc, e164).ok_or_else(|| ApiError::unknown_number(e164))?;
    array(doc, "numbers")?
        .get_mut(i)
        .ok_or_else(|| ApiError::unknown_number(e164))
}

pub fn trunk_position(doc: &DocumentMut, name: &str) -> Option<usize> {
    doc.get("trunks")?
        .as_array_of_tables()?
        .iter()
        .position(|t| str_of(t, "name") == Some(name))
}

/// The strings of an array value, such as `members` or `ring`.
pub fn strings(table: &dyn TableLike, key: &str) -> Vec<String> {
    table
        .get(key)
        .and_then(Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The `[numbers.routing]` table of a number, inline or not (created
/// when missing).
pub fn routing_mut(number: &mut Table) -> Result<&mut dyn TableLike, ApiError> {
    if number.get("routing").is_none() {
        let mut routing = Table::new();
        routing.insert("strategy", value("simultaneous"));
        routing.insert("ring", value(Array::new()));
        number.insert("routing", Item::Table(routing));
    }
    number
        .get_mut("routing")
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| unsupported("numbers.routing"))
}

/// Appends `item` to the string array `key` of `table` unless it is there.
pub fn push_string(table: &mut dyn TableLike, key: &str, item: &str) {
    if table.get(key).and_then(Item::as_array).is_none() {
        table.insert(key, value(Array::new()));
    }
    if let Some(array) = table.get_mut(key).and_then(Item::as_array_mut) {
        if !array.iter().any(|v| v.as_str() == Some(item)) {
            array.push(item);
        }
    }
}

/// Removes `item` from the string array `key`; whether it was there.
pub fn remove_string(table: &mut dyn TableLike, key: &str, item: &str) -> bool {
    let Some(array) = table.get_mut(key).and_then(Item::as_array_mut) else {
        return false;
    };
    let before = array.len();
    array.retain(|v| v.as_str() != Some(item));
    before != array.len()
}

/// Whether `user` is in the number's ring list; `remove` takes them out.
pub fn in_ring(number: &mut Table, user: &str, remove: bool) -> bool {
    let Some(routing) = number.get_mut("routing").and_then(Item::as_table_like_mut) else {
        return false;
    };
    if remove {
        remove_string(routing, "ring", user)
    } else {
        strings(routing, "ring").iter().any(|u| u == user)
    }
}

/// Every place a user can be routed on a number: its ring list and the
/// `users` of every `ring` destination in it (outside, no_answer, menu
/// options, fallbacks). `remove` takes them out; a destination left with
/// nobody to ring is dropped (an option key goes, `outside` or `no_answer`
/// goes back to its default), since a ring of nobody is not valid. The
/// answer says whether any was found.
pub fn routed_on(number: &mut Table, user: &str, remove: bool) -> bool {
    let found = in_ring(number, user, remove);
    let strip = strip_ring_users(number, user, remove, true);
    found | strip
}

/// Same, for the shared menus (`[menus.NAME]`).
pub fn routed_in_menus(doc: &mut DocumentMut, user: &str, remove: bool) -> bool {
    match doc.get_mut("menus").and_then(Item::as_table_like_mut) {
        Some(menus) => strip_ring_users(menus, user, remove, false),
        None => false,
    }
}

/// Walks the tables under `table` (inline or not) for `ring` destinations
/// naming `user`. With `remove`, takes the user out and drops children
/// that end up ringing nobody. `skip_routing` leaves a number's own
/// `routing` table alone (its `ring` list is not a destination).
fn strip_ring_users(
    table: &mut dyn TableLike,
    user: &str,
    remove: bool,
    skip_routing: bool,
) -> bool {
    let mut found = false;
    let mut emptied: Vec<String> = Vec::new();
    for (key, child) in table.iter_mut() {
        if skip_routing && key.get() == "routing" {
            continue;
        }
        let Some(inner) = child.as_table_like_mut() else {
            continue;
        };
        if inner.get("action").and_then(Item::as_str) == Some("ring") {
            if let Some(users) = inner.get_mut("users").and_then(Item::as_array_mut) {
                if users.iter().any(|v| v.as_str() == Some(user)) {
                    found = true;
                    if remove {
                        users.retain(|v| v.as_str() != Some(user));
                        if users.is_empty() {
                            emptied.push(key.get().to_owned());
                        }
                    }
                }
            }
        } else {
            found |= strip_ring_users(inner, user, remove, false);
        }
    }
    for key in emptied {
        table.remove(&key);
    }
    found
}

/// A JSON value as a TOML item, for bodies that carry a table of the file
/// (hours, a menu, a destination). Objects become tables (inline when
/// nested in an array), `null` is refused.
pub fn item_from_json(json: &serde_json::Value, key: &str) -> Result<Item, ApiError> {
    match json {
        serde_json::Value::Object(map) => {
            let mut table = Table::new();
            for (k, v) in map {
                if v.is_null() {
                    continue;
                }
                table.insert(k, item_from_json(v, &format!("{key}.{k}"))?);
            }
            Ok(Item::Table(table))
        }
        other => Ok(Item::Value(value_from_json(other, key)?)),
    }
}

fn value_from_json(json: &serde_json::Value, key: &str) -> Result<Value, ApiError> {
    Ok(match json {
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::from(i),
            None => Value::from(n.as_f64().unwrap_or_default()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => {
            let mut array = Array::new();
            for (i, item) in items.iter().enumerate() {
                array.push(value_from_json(item, &format!("{key}[{i}]"))?);
            }
            Value::Array(array)
        }
        serde_json::Value::Object(map) => {
            let mut table = toml_edit::InlineTable::new();
            for (k, v) in map {
                if !v.is_null() {
                    table.insert(k, value_from_json(v, &format!("{key}.{k}"))?);
                }
            }
            Value::InlineTable(table)
        }
        serde_json::Value::Null => {
            return Err(ApiError::invalid_request(format!(
                "{key}: null is not a value"
            )))
        }
    })
}

/// The file as JSON (for the GET views: what the administrator wrote).
pub fn as_json(text: &str) -> serde_json::Value {
    toml::from_str::<serde_json::Value>(text).unwrap_or(serde_json::Value::Null)
}
