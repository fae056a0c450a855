//! One media session the daemon holds for a call it answered itself: it
//! plays prompts in 20 ms packets, hears digits (RFC 4733 and in-band),
//! and records what the caller says. Driven from outside: [`Session::tick`]
//! every 20 ms, [`Session::receive`] for each datagram, and
//! [`Session::poll_event`] for what happened. No sockets, no clock.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::dtmf::{EventDetector, InbandDetector};
use crate::g711::Law;
use crate::rtp::{classify, Datagram, Reorder, RtpSender};
use crate::SAMPLES_PER_PACKET;

/// What a session reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    Digit(char),
    /// Everything queued has been played.
    PromptsDone,
    /// The caller has been quiet for the recording's silence limit.
    Silence,
}

/// How a session starts.
#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    pub law: Law,
    /// Where the SDP said to send; replaced by where the peer's packets
    /// come from once they arrive (symmetric RTP, for NAT).
    pub remote: SocketAddr,
    pub telephone_event: Option<u8>,
    pub ssrc: u32,
    pub first_seq: u16,
    pub first_timestamp: u32,
}

/// A packet's mean absolute level under which it counts as silence.
pub const QUIET_LEVEL: u32 = 400;

pub struct Session {
    law: Law,
    remote: SocketAddr,
    telephone_event: Option<u8>,
    sender: RtpSender,
    queue: VecDeque<(Arc<[i16]>, usize)>,
    playing: bool,
    events: EventDetector,
    inband: InbandDetector,
    reorder: Reorder,
    recording: Option<Recorder>,
    out: VecDeque<SessionEvent>,
    payload: Vec<u8>,
    latched: bool,
}

/// What a recording has gathered.
#[derive(Clone, Debug, Default)]
struct Recorder {
    pending: Vec<i16>,
    silence_limit: usize,
    quiet_run: usize,
    voiced: usize,
    silence_reported: bool,
}

impl Session {
    pub fn new(config: SessionConfig) -> Session {
        Session {
            law: config.law,
            remote: config.remote,
            telephone_event: config.telephone_event,
            sender: RtpSender::new(config.ssrc, config.first_seq, config.first_timestamp),
            queue: VecDeque::new(),
            playing: false,
            events: EventDetector::default(),
            inband: InbandDetector::default(),
            reorder: Reorder::new(5),
            recording: None,
            out: VecDeque::new(),
            payload: Vec::with_capacity(SAMPLES_PER_PACKET),
            latched: false,
        }
    }

    /// The peer's answer came later (a late offer): where and how to send.
    pub fn set_remote(&mut self, remote: SocketAddr, law: Law, telephone_event: Option<u8>) {
        self.remote = remote;
        self.law = law;
        self.telephone_event = telephone_event;
    }

    pub fn law(&self) -> Law {
        self.law
    }

    pub fn telephone_event(&self) -> Option<u8> {
        self.telephone_event
    }

    /// Where our packets go now.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Queues prompts to play after what is playing.
    pub fn play(&mut self, prompt: Arc<[i16]>) {
        if !prompt.is_empty() {
            self.queue.push_back((prompt, 0));
            if !self.playing {
                self.sender.talk_spurt();
            }
            self.playing = true;
        }
    }

    /// Stops playing at once (barge-in); no `PromptsDone` follows.
    pub fn stop_playing(&mut self) {
        self.queue.clear();
        self.playing = false;
    }

    pub fn is_playing(&self) -> bool {
        self.playing
    }

    /// Starts recording what the caller says; `silence_limit` samples of
    /// quiet in a row report [`SessionEvent::Silence`] once.
    pub fn record(&mut self, silence_limit: usize) {
        self.recording = Some(Recorder {
            silence_limit,
            ..Recorder::default()
        });
    }

    /// Audio recorded since the last call.
    pub fn take_recorded(&mut self) -> Vec<i16> {
        self.recording
            .as_mut()
            .map(|r| std::mem::take(&mut r.pending))
            .unwrap_or_default()
    }

    /// Samples of sound (not silence) recorded so far, and the quiet ones
    /// at the end.
    pub fn recorded_sound(&self) -> (usize, usize) {
        self.recording
            .as_ref()
            .map(|r| (r.voiced, r.quiet_run))
            .unwrap_or_default()
    }

    pub fn stop_recording(&mut self) {
        self.recording = None;
    }

    /// The packet for the next 20 ms: the prompt playing, else silence
    /// (which keeps NAT bindings open and tells the phone the stream lives).
    pub fn tick(&mut self) -> (SocketAddr, Vec<u8>) {
        self.payload.clear();
        let mut filled = 0;
        while filled < SAMPLES_PER_PACKET {
            let Some((prompt, at)) = self.queue.front_mut() else {
                break;
            };
            let take = (SAMPLES_PER_PACKET - filled).min(prompt.len() - *at);
            for &s in &prompt[*at..*at + take] {
                self.payload.push(self.law.encode(s));
            }
            *at += take;
            filled += take;
            if *at >= prompt.len() {
                self.queue.pop_front();
            }
        }
        let silence = self.law.encode(0);
        self.payload.resize(SAMPLES_PER_PACKET, silence);
        if self.playing && self.queue.is_empty() {
            self.playing = false;
            self.out.push_back(SessionEvent::PromptsDone);
        }
        let packet = self.sender.packet(
            self.law.payload_type(),
            &self.payload,
            SAMPLES_PER_PACKET as u32,
        );
        (self.remote, packet)
    }

    /// A datagram that came to the session's port from `from`.
    pub fn receive(&mut self, from: SocketAddr, bytes: &[u8]) {
        let Datagram::Rtp(packet) = classify(bytes) else {
            return;
        };
        // Symmetric RTP: the first source is where we send (a NAT's
        // mapping); later packets from elsewhere do not steal the stream.
        if !self.latched {
            self.remote = from;
            self.latched = true;
        } else if from != self.remote {
            return;
        }
        if Some(packet.payload_type) == self.telephone_event {
            if let Some(d) = self.events.on_packet(packet.timestamp, &packet.payload) {
                self.out.push_back(SessionEvent::Digit(d));
            }
            return;
        }
        let law = match packet.payload_type {
            0 => Law::Mu,
            8 => Law::A,
            // Comfort noise and anything else: not audio we decode.
            _ => return,
        };
        for packet in self.reorder.push(packet) {
            let mut samples = Vec::with_capacity(packet.payload.len());
            law.decode_into(&packet.payload, &mut samples);
            // In-band only for phones without RFC 4733: one that has it may
            // also leave the tones in its audio, and a key must count once.
            if self.telephone_event.is_none() {
                for d in self.inband.feed(&samples) {
                    self.out.push_back(SessionEvent::Digit(d));
                }
            }
            if let Some(rec) = self.recording.as_mut() {
                let level = samples.iter().map(|s| s.unsigned_abs() as u32).sum::<u32>()
                    / samples.len().max(1) as u32;
                if level < QUIET_LEVEL {
                    rec.quiet_run += samples.len();
                } else {
                    rec.quiet_run = 0;
                    rec.voiced += samples.len();
                }
                rec.pending.extend_from_slice(&samples);
                if rec.quiet_run >= rec.silence_limit && !rec.silence_reported {
                    rec.silence_reported = true;
                    self.out.push_back(SessionEvent::Silence);
                }
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::dtmf::{tone, Event};

    fn config() -> SessionConfig {
        SessionConfig {
            law: Law::Mu,
            remote: "127.0.0.1:6000".parse().unwrap(),
            telephone_event: Some(101),
            ssrc: 9,
            first_seq: 1,
            first_timestamp: 0,
        }
    }

    fn session() -> Session {
        Session::new(config())
    }

    #[test]
    fn the_first_source_is_latched_and_others_are_ignored() {
        let mut s = session();
        let ev = Event {
            event: 1,
            end: true,
            volume: 10,
            duration: 800,
        }
        .to_bytes();
        let phone: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let intruder: SocketAddr = "127.0.0.9:7000".parse().unwrap();
        s.receive(phone, &rtp(101, 1, 100, &ev));
        s.receive(intruder, &rtp(101, 2, 900, &ev));
        assert_eq!(s.remote(), phone);
        assert_eq!(s.poll_event(), Some(SessionEvent::Digit('1')));
        assert_eq!(s.poll_event(), None, "the intruder's key is not heard");
    }

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        RtpSender::new(5, seq, ts).packet_at(pt, payload, ts, false)
    }

    #[test]
    fn a_prompt_is_played_in_20_ms_packets_then_silence_and_done_once() {
        let mut s = session();
        s.play(Arc::from(vec![1000i16; 400]));
        let mut packets = Vec::new();
        for _ in 0..4 {
            packets.push(s.tick().1);
        }
        let Datagram::Rtp(first) = classify(&packets[0]) else {
            panic!()
        };
        let Datagram::Rtp(third) = classify(&packets[2]) else {
            panic!()
        };
        let Datagram::Rtp(fourth) = classify(&packets[3]) else {
            panic!()
        };
        assert!(first.marker);
        assert_eq!(first.payload.len(), 160);
        assert_eq!(first.payload[0], Law::Mu.encode(1000));
        // 400 samples: 2.5 packets; the third is padded with silence.
        assert_eq!(third.payload[79], Law::Mu.encode(1000));
        assert_eq!(third.payload[80], Law::Mu.encode(0));
        assert_eq!(fourth.timestamp - first.timestamp, 480);
        assert_eq!(s.poll_event(), Some(SessionEvent::PromptsDone));
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn digits_come_by_rfc4733_and_in_band_and_the_peer_is_learned() {
        let mut s = session();
        let ev = Event {
            event: 3,
            end: true,
            volume: 10,
            duration: 800,
        }
        .to_bytes();
        let from: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        for _ in 0..3 {
            s.receive(from, &rtp(101, 1, 4000, &ev));
        }
        assert_eq!(s.poll_event(), Some(SessionEvent::Digit('3')));
        assert_eq!(s.poll_event(), None);
        assert_eq!(s.remote(), from, "symmetric RTP");
        // In band (from a phone without RFC 4733), as PCMA even though
        // PCMU was negotiated.
        let mut s = Session::new(SessionConfig {
            telephone_event: None,
            ..config()
        });
        let audio = tone('7', 100, 6000.0);
        for (i, chunk) in audio.chunks(160).enumerate() {
            let mut codes = Vec::new();
            Law::A.encode_into(chunk, &mut codes);
            s.receive(from, &rtp(8, 10 + i as u16, 160 * i as u32, &codes));
        }
        assert_eq!(s.poll_event(), Some(SessionEvent::Digit('7')));
    }

    #[test]
    fn a_recording_gathers_audio_in_order_and_reports_silence_after_sound() {
        let mut s = session();
        s.record(1600);
        let from: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let loud = vec![Law::Mu.encode(8000); 160];
        let quiet = vec![Law::Mu.encode(0); 160];
        s.receive(from, &rtp(0, 1, 0, &loud));
        s.receive(from, &rtp(0, 3, 320, &loud)); // reordered: held until 2
        s.receive(from, &rtp(0, 2, 160, &loud));
        assert_eq!(s.take_recorded().len(), 480);
        for i in 0..10 {
            s.receive(from, &rtp(0, 4 + i, 480 + 160 * u32::from(i), &quiet));
        }
        assert_eq!(s.poll_event(), Some(SessionEvent::Silence));
        assert_eq!(s.recorded_sound(), (480, 1600));
    }
}
