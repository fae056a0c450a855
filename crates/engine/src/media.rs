//! What the engine asks of the media runtime, and what it hears back.
//!
//! The engine decides (answer, play this, record there, stop); the daemon
//! owns the RTP sockets, the audio and the files. A session is named by a
//! [`MediaId`] the engine chose, and its port is one of `[media]
//! rtp_ports` the engine handed out, so the SDP can be written before the
//! socket exists.

use std::net::SocketAddr;
use std::time::Duration;

use jiff::Timestamp;
use media::g711::Law;
use std::path::PathBuf;

pub type MediaId = u64;

/// Something to play.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sound {
    /// A prompt of the workspace, by its file (`Directory::prompt`): the
    /// path, not the index, so that a call routed before a reload plays
    /// what its own snapshot named.
    Prompt(PathBuf),
    /// One of the daemon's own recordings.
    Builtin(Builtin),
    /// Digits read out one by one (a number in the default greeting).
    Digits(String),
}

/// The daemon's own prompts (shipped with it, under `prompts/`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// "You have reached" (before the line's number).
    YouHaveReached,
    /// "Please leave a message after the tone."
    LeaveMessage,
    /// The tone before recording.
    Beep,
    /// "Your message has been recorded. Goodbye."
    Goodbye,
    /// "The mailbox is full. Goodbye."
    MailboxFull,
    /// "Sorry, that is not a valid option."
    InvalidOption,
    /// A minute of ringback tone, while a menu's choice rings someone.
    Ringback,
}

/// The metadata stored beside a voicemail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoicemailMeta {
    pub caller: String,
    /// The mailbox: the number called, E.164.
    pub number: String,
    pub started: Timestamp,
    pub call_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaCommand {
    /// Bind `port` and send RTP to `remote` (`None` until the peer's
    /// answer says where, or its first packet shows it).
    Open {
        session: MediaId,
        port: u16,
        remote: Option<SocketAddr>,
        law: Law,
        telephone_event: Option<u8>,
    },
    /// Whether the mailbox of `number` holds `max_messages` already:
    /// [`MediaEvent::Mailbox`].
    CheckMailbox {
        session: MediaId,
        number: String,
        max_messages: u32,
    },
    /// The peer's address and codec, from an answer that came later.
    Remote {
        session: MediaId,
        remote: SocketAddr,
        law: Law,
        telephone_event: Option<u8>,
    },
    /// Queue sounds; [`MediaEvent::PromptsDone`] with the same `play`
    /// number when all have played (a late report of an earlier play is
    /// told apart by it).
    Play {
        session: MediaId,
        sounds: Vec<Sound>,
        play: u32,
    },
    /// Stop at once (barge-in).
    StopPlaying { session: MediaId },
    /// Record into the mailbox of `meta.number`, as message `id`.
    /// [`MediaEvent::Silence`] after `silence` of quiet following sound.
    Record {
        session: MediaId,
        id: String,
        meta: VoicemailMeta,
        silence: Duration,
    },
    /// Finish the recording: kept if it holds a second of sound or more
    /// (trailing silence trimmed), else removed; [`MediaEvent::Recorded`].
    StopRecording { session: MediaId },
    /// Bind a second port, `port`, for the leg the caller will be bridged
    /// to (its SDP offer names it).
    PrepareBridge { session: MediaId, port: u16 },
    /// Relay the caller's RTP to the leg's and back (transcoding between
    /// laws, DTMF carried across) from now on; prompts stop.
    Bridge {
        session: MediaId,
        remote: Option<SocketAddr>,
        law: Law,
        telephone_event: Option<u8>,
    },
    /// Stop everything and free the port (a recording is finished first).
    Close { session: MediaId },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MediaEvent {
    /// The answer to [`MediaCommand::CheckMailbox`].
    Mailbox {
        session: MediaId,
        full: bool,
    },
    /// The session could not start (its port was taken...).
    Failed {
        session: MediaId,
        reason: String,
    },
    Digit {
        session: MediaId,
        digit: char,
    },
    PromptsDone {
        session: MediaId,
        /// The number of the last `Play` queued when they ended.
        play: u32,
    },
    Silence {
        session: MediaId,
    },
    /// A recording ended: kept (with its length) or dropped.
    Recorded {
        session: MediaId,
        kept: bool,
        /// Tenths of a second kept.
        tenths: u32,
    },
    /// No RTP came for the session's inactivity timeout from the caller
    /// (`leg` false) or from the leg it is bridged to: that side is gone.
    Inactive {
        session: MediaId,
        leg: bool,
    },
}

impl MediaEvent {
    pub fn session(&self) -> MediaId {
        match self {
            MediaEvent::Mailbox { session, .. }
            | MediaEvent::Failed { session, .. }
            | MediaEvent::Digit { session, .. }
            | MediaEvent::PromptsDone { session, .. }
            | MediaEvent::Silence { session }
            | MediaEvent::Recorded { session, .. }
            | MediaEvent::Inactive { session, .. } => *session,
        }
    }
}

/// Hands out RTP ports from `[media] rtp_ports`, each to one session at a
/// time, the least recently freed first (so a late packet of an ended
/// session does not reach the next one).
#[derive(Debug, Default)]
pub(crate) struct Ports {
    free: std::collections::VecDeque<u16>,
    in_use: std::collections::HashSet<u16>,
    range: Option<std::ops::RangeInclusive<u16>>,
}

impl Ports {
    /// Takes a port of `range` (re-read from each snapshot: a reload may move it).
    pub(crate) fn take(&mut self, range: &std::ops::RangeInclusive<u16>) -> Option<u16> {
        if self.range.as_ref() != Some(range) {
            // Even ports only: RTCP, when a peer sends it, goes one up. A
            // port still held by a call (from the range before a reload)
            // is not handed out again.
            let in_use = &self.in_use;
            self.free = range
                .clone()
                .filter(|p| p % 2 == 0 && !in_use.contains(p))
                .collect();
            self.range = Some(range.clone());
        }
        let port = self.free.pop_front()?;
        self.in_use.insert(port);
        Some(port)
    }

    pub(crate) fn give_back(&mut self, port: u16) {
        if self.in_use.remove(&port) && self.range.as_ref().is_some_and(|r| r.contains(&port)) {
            self.free.push_back(port);
        }
    }
}
