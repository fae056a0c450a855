//! Voicemail on disk: `<data_dir>/voicemail/<E.164>/<id>.wav` (16-bit PCM,
//! 8 kHz mono) with `<id>.json` beside it. A message being recorded is
//! `<id>.wav.part` (a valid WAV after every packet) with `<id>.json.part`;
//! when it ends it is trimmed, synced and renamed into place, or removed
//! when it holds less than a second of sound. `.part` files left by a
//! crash are finished the same way at the next start.

use std::io;
use std::path::{Path, PathBuf};

use engine::media::VoicemailMeta;
use media::wav::Recording;
use serde::{Deserialize, Serialize};

/// A message needs this much sound (not silence) to be kept.
pub const MIN_SOUND_SAMPLES: usize = 8000;

/// What `<id>.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageMeta {
    pub id: String,
    pub caller: String,
    pub number: String,
    /// RFC 3339.
    pub started: String,
    pub duration_seconds: f64,
    pub call_id: String,
}

pub fn mailbox_dir(data_dir: &Path, number: &str) -> PathBuf {
    data_dir.join("voicemail").join(number)
}

/// Messages kept in a mailbox (recordings in progress not counted).
pub fn count(data_dir: &Path, number: &str) -> usize {
    std::fs::read_dir(mailbox_dir(data_dir, number))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "wav"))
                .count()
        })
        .unwrap_or(0)
}

/// A message being recorded.
pub struct InProgress {
    recording: Recording,
    wav_part: PathBuf,
    json_part: PathBuf,
    wav: PathBuf,
    json: PathBuf,
    meta: MessageMeta,
}

impl InProgress {
    pub fn start(data_dir: &Path, id: &str, meta: &VoicemailMeta) -> io::Result<InProgress> {
        let dir = mailbox_dir(data_dir, &meta.number);
        std::fs::create_dir_all(&dir)?;
        let meta = MessageMeta {
            id: id.to_string(),
            caller: meta.caller.clone(),
            number: meta.number.clone(),
            started: meta.started.to_string(),
            duration_seconds: 0.0,
            call_id: meta.call_id.clone(),
        };
        let json_part = dir.join(format!("{id}.json.part"));
        std::fs::write(&json_part, serde_json::to_vec_pretty(&meta)?)?;
        let wav_part = dir.join(format!("{id}.wav.part"));
        Ok(InProgress {
            recording: Recording::create(&wav_part)?,
            wav: dir.join(format!("{id}.wav")),
            json: dir.join(format!("{id}.json")),
            wav_part,
            json_part,
            meta,
        })
    }

    pub fn append(&mut self, samples: &[i16]) -> io::Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        self.recording.append(samples)
    }

    /// Ends it: `trailing_quiet` samples trimmed; kept when `sound` samples
    /// of sound were heard. Returns whether it was kept and its length.
    pub fn finish(mut self, sound: usize, trailing_quiet: usize) -> io::Result<(bool, f64)> {
        if sound < MIN_SOUND_SAMPLES {
            drop(self.recording);
            let _ = std::fs::remove_file(&self.wav_part);
            let _ = std::fs::remove_file(&self.json_part);
            return Ok((false, 0.0));
        }
        self.recording.truncate(trailing_quiet)?;
        let samples = self.recording.finish()?;
        let seconds = f64::from(samples) / f64::from(media::SAMPLE_RATE);
        self.meta.duration_seconds = (seconds * 100.0).round() / 100.0;
        write_json(&self.json, &self.meta)?;
        std::fs::rename(&self.wav_part, &self.wav)?;
        let _ = std::fs::remove_file(&self.json_part);
        sync_dir(self.wav.parent());
        Ok((true, seconds))
    }
}

fn write_json(path: &Path, meta: &MessageMeta) -> io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        io::Write::write_all(&mut f, &serde_json::to_vec_pretty(meta)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

fn sync_dir(dir: Option<&Path>) {
    if let Some(dir) = dir {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Finishes recordings a crash left behind; returns how many were kept.
pub fn recover(data_dir: &Path) -> usize {
    let Ok(mailboxes) = std::fs::read_dir(data_dir.join("voicemail")) else {
        return 0;
    };
    let mut kept = 0;
    for mailbox in mailboxes.filter_map(Result::ok) {
        let Ok(files) = std::fs::read_dir(mailbox.path()) else {
            continue;
        };
        for file in files.filter_map(Result::ok) {
            let path = file.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(id) = name.strip_suffix(".wav.part") else {
                continue;
            };
            let dir = mailbox.path();
            let json_part = dir.join(format!("{id}.json.part"));
            let audio = media::wav::read_file(&path).unwrap_or_default();
            let (sound, trailing) = sound_of(&audio);
            let meta: Option<MessageMeta> = std::fs::read(&json_part)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            match meta {
                // The same rules as a message that ended normally.
                Some(mut meta) if sound >= MIN_SOUND_SAMPLES => {
                    let said = &audio[..audio.len() - trailing];
                    meta.duration_seconds = said.len() as f64 / f64::from(media::SAMPLE_RATE);
                    let wav = dir.join(format!("{id}.wav"));
                    let ok = write_synced(&path, &media::wav::encode(said)).is_ok()
                        && write_json(&dir.join(format!("{id}.json")), &meta).is_ok()
                        && std::fs::rename(&path, &wav).is_ok();
                    sync_dir(Some(&dir));
                    if ok {
                        kept += 1;
                        let _ = std::fs::remove_file(&json_part);
                        tracing::info!(id, number = %meta.number, "voicemail recovered after a crash");
                    }
                }
                _ => {
                    let _ = std::fs::remove_file(&path);
                    let _ = std::fs::remove_file(&json_part);
                }
            }
        }
    }
    kept
}

/// Samples of sound in a recording and the quiet ones at its end, by the
/// same 20 ms level rule as while recording.
fn sound_of(audio: &[i16]) -> (usize, usize) {
    let mut sound = 0;
    let mut trailing = 0;
    for packet in audio.chunks(media::SAMPLES_PER_PACKET) {
        let level = packet
            .iter()
            .map(|s| u32::from(s.unsigned_abs()))
            .sum::<u32>()
            / packet.len().max(1) as u32;
        if level < media::session::QUIET_LEVEL {
            trailing += packet.len();
        } else {
            sound += packet.len();
            trailing = 0;
        }
    }
    (sound, trailing)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    io::Write::write_all(&mut f, bytes)?;
    f.sync_all()
}

/// Every kept message of one mailbox, or of all, oldest first.
pub fn list(data_dir: &Path, number: Option<&str>) -> Vec<MessageMeta> {
    let root = data_dir.join("voicemail");
    let mailboxes: Vec<PathBuf> = match number {
        Some(n) => vec![root.join(n)],
        None => std::fs::read_dir(&root)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default(),
    };
    let mut out = Vec::new();
    for dir in mailboxes {
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for file in files.filter_map(Result::ok) {
            let path = file.path();
            if path.extension().is_some_and(|x| x == "json") {
                if let Some(meta) = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<MessageMeta>(&b).ok())
                {
                    out.push(meta);
                }
            }
        }
    }
    out.sort_by(|a, b| {
        (a.started.as_str(), a.id.as_str()).cmp(&(b.started.as_str(), b.id.as_str()))
    });
    out
}

/// The WAV of a message.
pub fn wav_path(data_dir: &Path, meta: &MessageMeta) -> PathBuf {
    mailbox_dir(data_dir, &meta.number).join(format!("{}.wav", meta.id))
}

/// Removes a message (both files).
pub fn delete(data_dir: &Path, meta: &MessageMeta) -> io::Result<()> {
    let dir = mailbox_dir(data_dir, &meta.number);
    std::fs::remove_file(dir.join(format!("{}.wav", meta.id)))?;
    std::fs::remove_file(dir.join(format!("{}.json", meta.id)))
}
