//! Two RTP streams bridged by the daemon: what one side sends is passed to
//! the other, transcoded when their G.711 laws differ, with RFC 4733
//! events carried across on the other side's payload type. Each direction
//! is re-sent as our own stream (our SSRC, sequence and timestamps), so
//! either side sees one continuous source.

use crate::g711::Law;
use crate::rtp::{classify, Datagram, RtpSender};

/// One side of a bridge: how it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Side {
    pub law: Law,
    pub telephone_event: Option<u8>,
}

/// A direction of the bridge: what comes in on one side goes out on the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    AToB,
    BToA,
}

pub struct Relay {
    a: Side,
    b: Side,
    to_a: RtpSender,
    to_b: RtpSender,
    scratch: Vec<i16>,
    out: Vec<u8>,
    /// Per direction, what is added to an incoming timestamp to make ours:
    /// fixed at the first packet, so gaps (loss, silence suppression) and
    /// an event's shared timestamp carry across unchanged.
    offsets: [Option<u32>; 2],
    /// Per direction, the event being played as tones toward a side
    /// without RFC 4733: its timestamp and the samples made so far.
    tones: [Option<(u32, usize)>; 2],
}

impl Relay {
    pub fn new(a: Side, b: Side, to_a: RtpSender, to_b: RtpSender) -> Relay {
        Relay {
            a,
            b,
            to_a,
            to_b,
            scratch: Vec::with_capacity(160),
            out: Vec::with_capacity(160),
            offsets: [None, None],
            tones: [None, None],
        }
    }

    /// A datagram that came in; the packet to send on the other side.
    /// RFC 4733 events toward a side that negotiated none are dropped.
    pub fn forward(&mut self, direction: Direction, bytes: &[u8]) -> Option<Vec<u8>> {
        let Datagram::Rtp(packet) = classify(bytes) else {
            return None;
        };
        let (from, to, sender, slot) = match direction {
            Direction::AToB => (self.a, self.b, &mut self.to_b, 0),
            Direction::BToA => (self.b, self.a, &mut self.to_a, 1),
        };
        let offset = *self.offsets[slot]
            .get_or_insert_with(|| sender.timestamp().wrapping_sub(packet.timestamp));
        let ts = packet.timestamp.wrapping_add(offset);
        if Some(packet.payload_type) == from.telephone_event {
            if let Some(pt) = to.telephone_event {
                return Some(sender.packet_at(pt, &packet.payload, ts, packet.marker));
            }
            // The other side hears keys only in band: the event becomes
            // the tone pair, up to the duration it has reached.
            let event = crate::dtmf::Event::parse(&packet.payload)?;
            let digit = crate::dtmf::digit_of_event(event.event)?;
            let made = match self.tones[slot] {
                Some((started, made)) if started == packet.timestamp => made,
                _ => 0,
            };
            let upto = usize::from(event.duration);
            if upto <= made {
                return None;
            }
            let count = (upto - made).min(crate::SAMPLES_PER_PACKET * 4);
            self.tones[slot] = Some((packet.timestamp, made + count));
            let samples = crate::dtmf::tone_span(digit, made, count, 6000.0);
            self.out.clear();
            to.law.encode_into(&samples, &mut self.out);
            let at = ts.wrapping_add(made as u32);
            return Some(sender.packet_at(to.law.payload_type(), &self.out, at, made == 0));
        }
        let law_in = match packet.payload_type {
            0 => Law::Mu,
            8 => Law::A,
            _ => return None,
        };
        if law_in == to.law {
            return Some(sender.packet_at(
                to.law.payload_type(),
                &packet.payload,
                ts,
                packet.marker,
            ));
        }
        self.scratch.clear();
        law_in.decode_into(&packet.payload, &mut self.scratch);
        self.out.clear();
        to.law.encode_into(&self.scratch, &mut self.out);
        Some(sender.packet_at(to.law.payload_type(), &self.out, ts, packet.marker))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn relay() -> Relay {
        Relay::new(
            Side {
                law: Law::Mu,
                telephone_event: Some(101),
            },
            Side {
                law: Law::A,
                telephone_event: Some(96),
            },
            RtpSender::new(1, 100, 1000),
            RtpSender::new(2, 200, 2000),
        )
    }

    #[test]
    fn audio_is_transcoded_between_pcmu_and_pcma_both_ways() {
        let mut r = relay();
        let mut caller = RtpSender::new(9, 5, 50);
        let tone: Vec<i16> = (0..160).map(|i| ((i % 40) as i16 - 20) * 500).collect();
        let mut mu = Vec::new();
        Law::Mu.encode_into(&tone, &mut mu);
        let out = r
            .forward(Direction::AToB, &caller.packet(0, &mu, 160))
            .unwrap();
        let Datagram::Rtp(p) = classify(&out) else {
            panic!()
        };
        assert_eq!(p.payload_type, 8);
        assert_eq!(p.ssrc, 2, "our stream toward B");
        let mut back = Vec::new();
        Law::A.decode_into(&p.payload, &mut back);
        for (a, b) in tone.iter().zip(&back) {
            assert!((a - b).abs() <= 400, "{a} vs {b}");
        }
        // B to A: PCMA in, PCMU out.
        let mut phone = RtpSender::new(7, 1, 0);
        let mut alaw = Vec::new();
        Law::A.encode_into(&tone, &mut alaw);
        let out = r
            .forward(Direction::BToA, &phone.packet(8, &alaw, 160))
            .unwrap();
        let Datagram::Rtp(p) = classify(&out) else {
            panic!()
        };
        assert_eq!((p.payload_type, p.ssrc), (0, 1));
        // A gap (two packets lost) stays a gap on the way out.
        phone.skip(320);
        let later = r
            .forward(Direction::BToA, &phone.packet(8, &alaw, 160))
            .unwrap();
        let Datagram::Rtp(q) = classify(&later) else {
            panic!()
        };
        assert_eq!(q.timestamp.wrapping_sub(p.timestamp), 480);
        assert_eq!(q.seq, p.seq.wrapping_add(1));
    }

    #[test]
    fn dtmf_events_cross_on_the_other_sides_payload_type_with_one_timestamp() {
        let mut r = relay();
        let mut caller = RtpSender::new(9, 5, 50);
        let ev = |end| {
            crate::dtmf::Event {
                event: 5,
                end,
                volume: 10,
                duration: 400,
            }
            .to_bytes()
        };
        let a = r
            .forward(
                Direction::AToB,
                &caller.packet_at(101, &ev(false), 777, true),
            )
            .unwrap();
        let b = r
            .forward(
                Direction::AToB,
                &caller.packet_at(101, &ev(true), 777, false),
            )
            .unwrap();
        let (Datagram::Rtp(a), Datagram::Rtp(b)) = (classify(&a), classify(&b)) else {
            panic!()
        };
        assert_eq!((a.payload_type, b.payload_type), (96, 96));
        assert_eq!(a.timestamp, b.timestamp);
        assert_ne!(a.seq, b.seq);
        // Toward a side without telephone-event, the key arrives as tones.
        let mut plain = Relay::new(
            Side {
                law: Law::Mu,
                telephone_event: Some(101),
            },
            Side {
                law: Law::Mu,
                telephone_event: None,
            },
            RtpSender::new(1, 1, 0),
            RtpSender::new(2, 1, 0),
        );
        let mut heard = Vec::new();
        for (end, duration) in [
            (false, 160),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
        ] {
            let e = crate::dtmf::Event {
                event: 5,
                end,
                volume: 10,
                duration,
            }
            .to_bytes();
            if let Some(out) =
                plain.forward(Direction::AToB, &caller.packet_at(101, &e, 9000, false))
            {
                let Datagram::Rtp(p) = classify(&out) else {
                    panic!()
                };
                assert_eq!(p.payload_type, 0);
                Law::Mu.decode_into(&p.payload, &mut heard);
            }
        }
        assert_eq!(heard.len(), 640, "the event's whole duration, once");
        let mut detector = crate::dtmf::InbandDetector::default();
        assert_eq!(detector.feed(&heard), ['5']);
        // Comfort noise and unknown payloads are not passed.
        assert!(r
            .forward(Direction::AToB, &caller.packet(13, &[0], 160))
            .is_none());
    }
}
