//! The audio the daemon plays: its own prompts (under `prompts/builtin`,
//! built into the binary), the embedded demo's (`prompts/demo`), and the
//! workspace's, read and checked when the configuration is loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use directory::{ConfigError, ConfigErrors, Directory};
use engine::media::{Builtin, Sound};

type Audio = Arc<[i16]>;

/// Prompts shipped with the daemon, by the path the demo config uses.
const EMBEDDED: &[(&str, &[u8])] = &[
    (
        "prompts/demo/support-menu.wav",
        include_bytes!("../../../../prompts/demo/support-menu.wav"),
    ),
    (
        "prompts/demo/closed.wav",
        include_bytes!("../../../../prompts/demo/closed.wav"),
    ),
    (
        "prompts/demo/hours.wav",
        include_bytes!("../../../../prompts/demo/hours.wav"),
    ),
    (
        "prompts/demo/voicemail-greeting.wav",
        include_bytes!("../../../../prompts/demo/voicemail-greeting.wav"),
    ),
];

/// The demo's prompts, by the path its config names them with (relative
/// to the repository root), for the copy of the demo in the data directory.
pub fn demo_prompts() -> &'static [(&'static str, &'static [u8])] {
    EMBEDDED
}

const BUILTIN: &[(Builtin, &[u8])] = &[
    (
        Builtin::YouHaveReached,
        include_bytes!("../../../../prompts/builtin/you-have-reached.wav"),
    ),
    (
        Builtin::LeaveMessage,
        include_bytes!("../../../../prompts/builtin/leave-message.wav"),
    ),
    (
        Builtin::Beep,
        include_bytes!("../../../../prompts/builtin/beep.wav"),
    ),
    (
        Builtin::Goodbye,
        include_bytes!("../../../../prompts/builtin/goodbye.wav"),
    ),
    (
        Builtin::MailboxFull,
        include_bytes!("../../../../prompts/builtin/mailbox-full.wav"),
    ),
    (
        Builtin::InvalidOption,
        include_bytes!("../../../../prompts/builtin/invalid-option.wav"),
    ),
];

const DIGITS: [&[u8]; 10] = [
    include_bytes!("../../../../prompts/builtin/digits/0.wav"),
    include_bytes!("../../../../prompts/builtin/digits/1.wav"),
    include_bytes!("../../../../prompts/builtin/digits/2.wav"),
    include_bytes!("../../../../prompts/builtin/digits/3.wav"),
    include_bytes!("../../../../prompts/builtin/digits/4.wav"),
    include_bytes!("../../../../prompts/builtin/digits/5.wav"),
    include_bytes!("../../../../prompts/builtin/digits/6.wav"),
    include_bytes!("../../../../prompts/builtin/digits/7.wav"),
    include_bytes!("../../../../prompts/builtin/digits/8.wav"),
    include_bytes!("../../../../prompts/builtin/digits/9.wav"),
];

/// Every prompt, decoded once. Workspace prompts are kept by path: a
/// reload adds the new ones, and a call routed before it still finds its own.
pub struct PromptStore {
    workspace: RwLock<HashMap<PathBuf, Audio>>,
    builtin: Vec<(Builtin, Audio)>,
    digits: Vec<Audio>,
    ringback: Audio,
}

/// A minute of North American ringback: 440 + 480 Hz, 2 s on, 4 s off.
fn ringback() -> Audio {
    let cycle = 6 * media::SAMPLE_RATE as usize;
    let on = 2 * media::SAMPLE_RATE as usize;
    let rate = media::SAMPLE_RATE as f32;
    (0..10 * cycle)
        .map(|i| {
            if i % cycle >= on {
                return 0;
            }
            let t = i as f32 / rate;
            let w = |f: f32| (2.0 * std::f32::consts::PI * f * t).sin();
            (3000.0 * (w(440.0) + w(480.0))) as i16
        })
        .collect::<Vec<_>>()
        .into()
}

fn decode_embedded(bytes: &[u8]) -> Audio {
    // Checked by this module's test: a built-in prompt always decodes.
    media::wav::parse(bytes).unwrap_or_default().into()
}

impl PromptStore {
    /// Reads every prompt the directory names; a missing or unreadable one
    /// is refused with its file, its key and the reason.
    pub fn load(directory: &Directory, config_file: &Path) -> Result<PromptStore, ConfigErrors> {
        let workspace = read_prompts(directory, config_file)?;
        Ok(PromptStore {
            workspace: RwLock::new(workspace),
            builtin: BUILTIN
                .iter()
                .map(|(b, bytes)| (*b, decode_embedded(bytes)))
                .collect(),
            digits: DIGITS.iter().map(|bytes| decode_embedded(bytes)).collect(),
            ringback: ringback(),
        })
    }

    /// Reads the prompts of a new directory (a reload, an admin change)
    /// and adds them; nothing is added when one cannot be read.
    pub fn add(&self, directory: &Directory, config_file: &Path) -> Result<(), ConfigErrors> {
        let new = read_prompts(directory, config_file)?;
        if let Ok(mut prompts) = self.workspace.write() {
            prompts.extend(new);
        }
        Ok(())
    }

    /// The audio of a sound, as a list of pieces to play in order.
    pub fn resolve(&self, sound: &Sound) -> Vec<Audio> {
        match sound {
            Sound::Prompt(path) => self
                .workspace
                .read()
                .ok()
                .and_then(|w| w.get(path).cloned())
                .into_iter()
                .collect(),
            Sound::Builtin(Builtin::Ringback) => vec![self.ringback.clone()],
            Sound::Builtin(b) => self
                .builtin
                .iter()
                .find(|(k, _)| k == b)
                .map(|(_, a)| a.clone())
                .into_iter()
                .collect(),
            Sound::Digits(digits) => digits
                .chars()
                .filter_map(|c| c.to_digit(10))
                .filter_map(|d| self.digits.get(d as usize).cloned())
                .collect(),
        }
    }
}

/// Reads and checks every prompt a directory names, by path.
fn read_prompts(
    directory: &Directory,
    config_file: &Path,
) -> Result<HashMap<PathBuf, Audio>, ConfigErrors> {
    let mut errors = Vec::new();
    let mut workspace = HashMap::with_capacity(directory.prompts().len());
    for prompt in directory.prompts() {
        // The embedded demo's prompts come with the binary; any other
        // configuration's must be on disk.
        let embedded = EMBEDDED
            .iter()
            .filter(|_| config_file == Path::new(crate::EMBEDDED_DEMO_ORIGIN))
            .find(|(name, _)| prompt.path.ends_with(name))
            .map(|(_, bytes)| *bytes);
        let audio = match std::fs::read(&prompt.path) {
            Ok(bytes) => media::wav::parse(&bytes),
            Err(_) if embedded.is_some() => media::wav::parse(embedded.unwrap_or_default()),
            Err(e) => Err(media::wav::WavError::Io(e)),
        };
        match audio {
            Ok(samples) if samples.is_empty() => errors.push(ConfigError::new(
                config_file,
                &prompt.key,
                format!("{}: the prompt holds no audio", prompt.path.display()),
            )),
            Ok(samples) => {
                workspace.insert(prompt.path.clone(), Audio::from(samples));
            }
            Err(e) => errors.push(ConfigError::new(
                config_file,
                &prompt.key,
                format!("{}: {e}", prompt.path.display()),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    Ok(workspace)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_shipped_prompt_is_8khz_audio_of_some_length() {
        for (name, bytes) in EMBEDDED {
            let samples = media::wav::parse(bytes).unwrap();
            assert!(samples.len() > 4000, "{name}");
        }
        for (b, bytes) in BUILTIN {
            assert!(media::wav::parse(bytes).unwrap().len() > 1000, "{b:?}");
        }
        for bytes in DIGITS {
            assert!(media::wav::parse(bytes).unwrap().len() > 1000);
        }
    }
}
