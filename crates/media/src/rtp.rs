//! RTP packets (RFC 3550) with `rtp-rs`: our outgoing stream (sequence
//! numbers, timestamps, the marker on a talk-spurt's first packet, a random
//! SSRC chosen by the caller), what a received datagram is (RTP, RTCP, or
//! neither), and a small reordering buffer for what comes in.

use rtp_rs::{RtpPacketBuilder, RtpReader, Seq};

/// Our side of one RTP stream.
#[derive(Clone, Debug)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker_next: bool,
}

impl RtpSender {
    /// `ssrc`, `first_seq` and `first_timestamp` should be random (RFC 3550
    /// §5.1); the caller owns the randomness.
    pub fn new(ssrc: u32, first_seq: u16, first_timestamp: u32) -> RtpSender {
        RtpSender {
            ssrc,
            seq: first_seq,
            timestamp: first_timestamp,
            marker_next: true,
        }
    }

    /// The next packet carries the marker (a talk-spurt starts).
    pub fn talk_spurt(&mut self) {
        self.marker_next = true;
    }

    /// One packet of `payload` covering `samples` samples; advances the
    /// sequence number and the timestamp.
    pub fn packet(&mut self, payload_type: u8, payload: &[u8], samples: u32) -> Vec<u8> {
        let packet = self.build(payload_type, payload, self.timestamp, self.marker_next);
        self.marker_next = false;
        self.timestamp = self.timestamp.wrapping_add(samples);
        packet
    }

    /// A packet at a given timestamp that does not move the clock (the
    /// packets of one RFC 4733 event share the event's timestamp).
    pub fn packet_at(
        &mut self,
        payload_type: u8,
        payload: &[u8],
        timestamp: u32,
        marker: bool,
    ) -> Vec<u8> {
        self.build(payload_type, payload, timestamp, marker)
    }

    /// Moves the clock on without sending (time spent in an event).
    pub fn skip(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }

    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    fn build(&mut self, payload_type: u8, payload: &[u8], timestamp: u32, marker: bool) -> Vec<u8> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        RtpPacketBuilder::new()
            .payload_type(payload_type & 0x7F)
            .ssrc(self.ssrc)
            .sequence(Seq::from(seq))
            .timestamp(timestamp)
            .marked(marker)
            .payload(payload)
            .build()
            // Only a payload type over 127 fails to build; it was masked.
            .unwrap_or_default()
    }
}

/// One received RTP packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    pub payload: Vec<u8>,
}

/// What a datagram on an RTP port is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datagram {
    Rtp(Packet),
    /// RTCP (RFC 5761 §4: packet types 200 to 207 sit where RTP's marker
    /// and payload type are): received and ignored.
    Rtcp,
    /// Not RTP at all (or version ≠ 2): dropped.
    Invalid,
}

pub fn classify(bytes: &[u8]) -> Datagram {
    if bytes.len() >= 2 && bytes[0] >> 6 == 2 && (200..=207).contains(&bytes[1]) {
        return Datagram::Rtcp;
    }
    match RtpReader::new(bytes) {
        Ok(r) => Datagram::Rtp(Packet {
            payload_type: r.payload_type(),
            seq: u16::from(r.sequence_number()),
            timestamp: r.timestamp(),
            ssrc: r.ssrc(),
            marker: r.mark(),
            payload: r.payload().to_vec(),
        }),
        Err(_) => Datagram::Invalid,
    }
}

/// Puts packets back in sequence order, holding at most `depth` of them
/// while a gap waits to be filled; a gap still open when the buffer is full
/// is a loss, and packets older than what was released are dropped (late,
/// or duplicates).
#[derive(Clone, Debug)]
pub struct Reorder {
    depth: usize,
    next: Option<u16>,
    ssrc: Option<u32>,
    held: Vec<Packet>,
}

impl Reorder {
    pub fn new(depth: usize) -> Reorder {
        Reorder {
            depth: depth.max(1),
            next: None,
            ssrc: None,
            held: Vec::new(),
        }
    }

    /// Takes a packet; returns those now in order.
    pub fn push(&mut self, packet: Packet) -> Vec<Packet> {
        // A new source (a phone that restarted its stream, a transfer) or a
        // jump far from where we are starts over rather than waiting, or
        // dropping, for thousands of packets.
        let far = self
            .next
            .is_some_and(|n| (packet.seq.wrapping_sub(n) as i16).unsigned_abs() > RESYNC);
        if self.ssrc != Some(packet.ssrc) || far {
            self.ssrc = Some(packet.ssrc);
            self.next = None;
            self.held.clear();
        }
        let next = *self.next.get_or_insert(packet.seq);
        let ahead = packet.seq.wrapping_sub(next) as i16;
        if ahead < 0 || self.held.iter().any(|p| p.seq == packet.seq) {
            return Vec::new();
        }
        self.held.push(packet);
        let mut out = Vec::new();
        loop {
            let next = self.next.unwrap_or(0);
            if let Some(i) = self.held.iter().position(|p| p.seq == next) {
                out.push(self.held.swap_remove(i));
                self.next = Some(next.wrapping_add(1));
            } else if self.held.len() > self.depth {
                // Give up on the gap: jump to the oldest held packet.
                let oldest = self
                    .held
                    .iter()
                    .map(|p| p.seq)
                    .min_by_key(|&s| s.wrapping_sub(next))
                    .unwrap_or(next);
                self.next = Some(oldest);
            } else {
                return out;
            }
        }
    }
}

/// A sequence jump larger than this is a new stream, not reordering.
const RESYNC: u16 = 100;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_new_ssrc_or_a_far_jump_starts_over() {
        let mut r = Reorder::new(4);
        r.push(p(10));
        let mut other = p(5000);
        other.ssrc = 2;
        assert_eq!(r.push(other).len(), 1, "a new source is taken at once");
        assert_eq!(
            r.push(p(30000)).len(),
            1,
            "back to ssrc 1, far away: resync"
        );
        assert_eq!(r.push(p(29000)).len(), 1, "far behind: resync, not 'late'");
    }

    #[test]
    fn packets_count_on_and_only_the_first_of_a_spurt_is_marked() {
        let mut s = RtpSender::new(0xABCD, 65535, 1000);
        let a = classify(&s.packet(0, &[0xFF; 160], 160));
        let b = classify(&s.packet(0, &[0xFF; 160], 160));
        let (Datagram::Rtp(a), Datagram::Rtp(b)) = (a, b) else {
            panic!("RTP expected");
        };
        assert!(a.marker && !b.marker);
        assert_eq!((a.seq, b.seq), (65535, 0), "wraps");
        assert_eq!((a.timestamp, b.timestamp), (1000, 1160));
        assert_eq!(a.ssrc, 0xABCD);
        assert_eq!(a.payload.len(), 160);
    }

    #[test]
    fn rtcp_and_garbage_are_told_apart_from_rtp() {
        // An RTCP receiver report header: V=2, PT=201.
        assert_eq!(classify(&[0x81, 201, 0, 7, 0, 0, 0, 1]), Datagram::Rtcp);
        assert_eq!(classify(b"hello"), Datagram::Invalid);
        assert_eq!(classify(&[]), Datagram::Invalid);
    }

    fn p(seq: u16) -> Packet {
        Packet {
            payload_type: 0,
            seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 1,
            marker: false,
            payload: vec![],
        }
    }

    #[test]
    fn reordered_packets_come_out_in_order_duplicates_and_late_ones_are_dropped() {
        let mut r = Reorder::new(4);
        let seqs = |v: Vec<Packet>| v.into_iter().map(|p| p.seq).collect::<Vec<_>>();
        assert_eq!(seqs(r.push(p(10))), [10]);
        assert_eq!(seqs(r.push(p(12))), Vec::<u16>::new());
        assert_eq!(seqs(r.push(p(11))), [11, 12]);
        assert_eq!(seqs(r.push(p(11))), Vec::<u16>::new(), "duplicate");
        assert_eq!(seqs(r.push(p(9))), Vec::<u16>::new(), "late");
        // 13 lost: after the buffer fills, the gap is skipped.
        for s in 14..18 {
            assert!(r.push(p(s)).is_empty());
        }
        assert_eq!(seqs(r.push(p(18))), [14, 15, 16, 17, 18]);
        // Wrapping.
        let mut r = Reorder::new(4);
        r.push(p(65534));
        assert_eq!(seqs(r.push(p(0))), Vec::<u16>::new());
        assert_eq!(seqs(r.push(p(65535))), [65535, 0]);
    }
}
