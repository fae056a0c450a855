//! WAV files: prompts read (8 kHz mono, 16-bit PCM, µ-law or A-law), and
//! recordings written durably.
//!
//! Hand-written rather than `hound`: hound cannot read G.711 WAVs, which
//! prompts may be, and a recording here must keep a valid RIFF header after
//! every packet (so a `kill -9` leaves a playable file of what was said),
//! which is two small positioned writes.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::g711::Law;
use crate::SAMPLE_RATE;

/// Why a WAV file cannot be used as a prompt.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read it: {0}")]
    Io(#[from] io::Error),
    #[error("not a RIFF/WAVE file")]
    NotWave,
    #[error("no fmt chunk")]
    NoFormat,
    #[error("no data chunk")]
    NoData,
    #[error("{0} (prompts must be 8 kHz mono: 16-bit PCM, µ-law or A-law)")]
    Unsupported(String),
}

/// Reads a prompt from a file.
pub fn read_file(path: &Path) -> Result<Vec<i16>, WavError> {
    let bytes = std::fs::read(path)?;
    parse(&bytes)
}

/// Decodes WAV bytes to 16-bit linear samples at 8 kHz.
pub fn parse(bytes: &[u8]) -> Result<Vec<i16>, WavError> {
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWave);
    }
    let mut format: Option<(u16, u16, u32, u16)> = None;
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body_start = at + 8;
        // A recording cut short (or a streaming header) may claim more than
        // there is: take what there is.
        let body_end = body_start.saturating_add(size).min(bytes.len());
        let body = &bytes[body_start..body_end];
        match id {
            b"fmt " => {
                if body.len() < 16 {
                    return Err(WavError::NoFormat);
                }
                let mut tag = u16::from_le_bytes([body[0], body[1]]);
                let channels = u16::from_le_bytes([body[2], body[3]]);
                let rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                let bits = u16::from_le_bytes([body[14], body[15]]);
                if tag == 0xFFFE && body.len() >= 26 {
                    // WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes.
                    tag = u16::from_le_bytes([body[24], body[25]]);
                }
                format = Some((tag, channels, rate, bits));
            }
            b"data" => {
                let (tag, channels, rate, bits) = format.ok_or(WavError::NoFormat)?;
                if channels != 1 {
                    return Err(WavError::Unsupported(format!("{channels} channels")));
                }
                if rate != SAMPLE_RATE {
                    return Err(WavError::Unsupported(format!("{rate} Hz")));
                }
                return match (tag, bits) {
                    (1, 16) => Ok(body
                        .chunks_exact(2)
                        .map(|b| i16::from_le_bytes([b[0], b[1]]))
                        .collect()),
                    (6, 8) => Ok(decode(Law::A, body)),
                    (7, 8) => Ok(decode(Law::Mu, body)),
                    (tag, bits) => Err(WavError::Unsupported(format!(
                        "format {tag} with {bits} bits per sample"
                    ))),
                };
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body_start.saturating_add(size).saturating_add(size & 1);
    }
    Err(if format.is_some() {
        WavError::NoData
    } else {
        WavError::NoFormat
    })
}

fn decode(law: Law, codes: &[u8]) -> Vec<i16> {
    let mut out = Vec::with_capacity(codes.len());
    law.decode_into(codes, &mut out);
    out
}

/// The 44-byte header of a 16-bit mono 8 kHz PCM file with `data_len` bytes.
pub fn header(data_len: u32) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&1u16.to_le_bytes());
    h[24..28].copy_from_slice(&SAMPLE_RATE.to_le_bytes());
    h[28..32].copy_from_slice(&(SAMPLE_RATE * 2).to_le_bytes());
    h[32..34].copy_from_slice(&2u16.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&data_len.to_le_bytes());
    h
}

/// Encodes samples as a whole 16-bit PCM WAV file.
pub fn encode(samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(&header(data_len));
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// A recording being written: 16-bit PCM, the header rewritten after each
/// append so the file is always a valid WAV of what it holds so far.
pub struct Recording {
    file: File,
    data_len: u32,
}

impl Recording {
    /// Creates (truncating) `path` with an empty WAV.
    pub fn create(path: &Path) -> io::Result<Recording> {
        let mut file = File::create(path)?;
        file.write_all(&header(0))?;
        Ok(Recording { file, data_len: 0 })
    }

    /// Appends samples and brings the header up to date. The bytes reach
    /// the page cache (a killed process loses nothing); `finish` syncs.
    pub fn append(&mut self, samples: &[i16]) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(samples.len() * 2);
        for s in samples {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        let Ok(len) = u32::try_from(bytes.len()) else {
            return Err(io::Error::other("append too large"));
        };
        write_at(&self.file, &bytes, 44 + u64::from(self.data_len))?;
        self.data_len = self.data_len.saturating_add(len);
        let header = header(self.data_len);
        write_at(&self.file, &header[4..8], 4)?;
        write_at(&self.file, &header[40..44], 40)?;
        Ok(())
    }

    /// Drops the last `samples` samples (trailing silence).
    pub fn truncate(&mut self, samples: usize) -> io::Result<()> {
        let cut = u32::try_from(samples * 2)
            .unwrap_or(u32::MAX)
            .min(self.data_len);
        self.data_len -= cut;
        self.file.set_len(44 + u64::from(self.data_len))?;
        let header = header(self.data_len);
        write_at(&self.file, &header[4..8], 4)?;
        write_at(&self.file, &header[40..44], 40)?;
        Ok(())
    }

    /// Samples written so far.
    pub fn samples(&self) -> usize {
        self.data_len as usize / 2
    }

    /// Flushes the file to disk.
    pub fn finish(self) -> io::Result<u32> {
        self.file.sync_all()?;
        Ok(self.data_len / 2)
    }
}

#[cfg(unix)]
fn write_at(file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(bytes, offset)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, bytes: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn g711_wav(tag: u16, codes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(4 + 26 + 8 + codes.len() as u32).to_le_bytes());
        out.extend_from_slice(b"WAVE");
        out.extend_from_slice(b"fmt ");
        out.extend_from_slice(&18u32.to_le_bytes());
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&8000u32.to_le_bytes());
        out.extend_from_slice(&8000u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&8u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(b"LIST");
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(b"abc\0");
        out.extend_from_slice(b"data");
        out.extend_from_slice(&(codes.len() as u32).to_le_bytes());
        out.extend_from_slice(codes);
        out
    }

    #[test]
    fn pcm_and_g711_prompts_decode_and_other_formats_are_refused_with_the_reason() {
        let samples = [0i16, 1000, -1000, 32767, -32768];
        assert_eq!(parse(&encode(&samples)).unwrap(), samples);
        let ulaw = parse(&g711_wav(7, &[0xFF, 0x80])).unwrap();
        assert_eq!(ulaw, [0, 32124]);
        let alaw = parse(&g711_wav(6, &[0xD5])).unwrap();
        assert_eq!(alaw, [8]);
        let mut stereo = encode(&samples);
        stereo[22] = 2;
        assert!(matches!(parse(&stereo), Err(WavError::Unsupported(why)) if why == "2 channels"));
        let mut cd = encode(&samples);
        cd[24..28].copy_from_slice(&44100u32.to_le_bytes());
        assert!(matches!(parse(&cd), Err(WavError::Unsupported(why)) if why == "44100 Hz"));
        assert!(matches!(parse(b"RIFF....WAVX"), Err(WavError::NotWave)));
        assert!(matches!(
            parse(b"RIFF\0\0\0\0WAVE"),
            Err(WavError::NoFormat)
        ));
    }

    #[test]
    fn a_recording_is_a_valid_wav_after_every_append_and_after_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.wav");
        let mut rec = Recording::create(&path).unwrap();
        assert_eq!(read_file(&path).unwrap(), Vec::<i16>::new());
        rec.append(&[1, 2, 3]).unwrap();
        assert_eq!(read_file(&path).unwrap(), [1, 2, 3]);
        rec.append(&[4, 5]).unwrap();
        // What a kill -9 would leave: the file as it is now.
        assert_eq!(read_file(&path).unwrap(), [1, 2, 3, 4, 5]);
        rec.truncate(2).unwrap();
        assert_eq!(rec.samples(), 3);
        assert_eq!(rec.finish().unwrap(), 3);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 44 + 6);
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 36 + 6);
    }
}
