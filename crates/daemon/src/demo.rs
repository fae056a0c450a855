//! The embedded demo workspace as a file of its own: `switchboard` with no
//! `--config` writes it once to `data/demo/switchboard.toml` (its prompts
//! to `data/prompts/demo/`, its data directory set to `data`) and runs
//! from that copy, so that admin changes are saved like any other file's.
//! A copy that exists already is used as it is (changes survive restarts).
//!
//! It writes only what is missing; it never overwrites the administrator's copy.

use std::path::{Path, PathBuf};

/// Writes the demo into `data_dir` unless it is there; returns the path of
/// its config file.
pub fn materialize(data_dir: &Path) -> std::io::Result<PathBuf> {
    let folder = data_dir.join("demo");
    let path = folder.join("switchboard.toml");
    // The prompts are written (when missing) every time: a copy whose
    // prompts were deleted still starts.
    for (name, bytes) in crate::media_runtime::prompts::demo_prompts() {
        let target = data_dir.join(name);
        if !target.exists() {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&target, bytes)?;
        }
    }
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&folder)?;
    let text = copy_text().map_err(std::io::Error::other)?;
    crate::admin::config_file::write_atomically(&path, &text)?;
    Ok(path)
}

/// The demo's text with its data directory pointed at the folder above
/// the copy (the demo's own comments kept).
fn copy_text() -> Result<String, String> {
    let mut doc = crate::DEMO_CONFIG
        .parse::<toml_edit::DocumentMut>()
        .map_err(|e| e.to_string())?;
    if let Some(server) = doc
        .get_mut("server")
        .and_then(toml_edit::Item::as_table_mut)
    {
        let decor = server
            .get("data_dir")
            .and_then(toml_edit::Item::as_value)
            .map(|v| v.decor().clone());
        let mut item = toml_edit::value("..");
        if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
            *v.decor_mut() = decor;
        }
        server.insert("data_dir", item);
    }
    Ok(format!(
        "# A copy of the embedded demo workspace, written by switchboard on its first\n\
         # start without --config. Admin changes are saved here; delete this file to\n\
         # start again from the demo.\n{doc}"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::settings::Config;

    #[test]
    fn the_copy_loads_with_its_prompts_and_is_kept_once_written() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = materialize(&data).unwrap();
        let config = Config::load(&path).unwrap();
        crate::media_runtime::PromptStore::load(&config.directory, &config.origin).unwrap();
        assert_eq!(
            config.server.data_dir.canonicalize().unwrap(),
            data.canonicalize().unwrap()
        );
        std::fs::write(&path, "# edited\n").unwrap();
        materialize(&data).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# edited\n");
    }
}
