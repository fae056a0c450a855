//! Switchboard's media, without IO: what the daemon needs to answer a call
//! itself (IVR, voicemail, announcements) and to relay audio between two
//! legs.
//!
//! What it owns: SDP offer/answer for audio ([`sdp`]), G.711 ([`g711`]),
//! RTP packets and a reordering receiver ([`rtp`]), DTMF in its three forms
//! ([`dtmf`]), WAV prompts and durable recordings ([`wav`]), and the media
//! session a call drives ([`session`]): play, collect digits, record,
//! relay, one 20 ms tick at a time.
//!
//! What it must not do: open sockets, read a clock or decide call policy.
//! Time comes in as an argument; the daemon owns the sockets and the
//! engine decides what a session does.

pub mod dtmf;
pub mod g711;
pub mod relay;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod wav;

/// Samples per second of every codec we speak (G.711, RFC 4733 events).
pub const SAMPLE_RATE: u32 = 8000;

/// Samples in one 20 ms packet.
pub const SAMPLES_PER_PACKET: usize = 160;
