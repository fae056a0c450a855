//! DTMF, the three ways phones send it:
//!
//! - RFC 4733 `telephone-event` packets on the payload type the SDP
//!   negotiated: one event per RTP timestamp, reported once however many
//!   packets (and end packets, usually three) carry it, without relying on
//!   the marker bit;
//! - SIP INFO bodies, `application/dtmf-relay` (`Signal=1`) and
//!   `application/dtmf` (`1`);
//! - in-band tones, found by a Goertzel filter over the decoded audio.

/// The digit of an RFC 4733 event code (0-9, `*`, `#`, A-D).
pub fn digit_of_event(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The RFC 4733 event code of a digit.
pub fn event_of_digit(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

/// An RFC 4733 §2.3 event payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In timestamp units (samples) since the event began.
    pub duration: u16,
}

impl Event {
    pub fn parse(payload: &[u8]) -> Option<Event> {
        if payload.len() < 4 {
            return None;
        }
        Some(Event {
            event: payload[0],
            end: payload[1] & 0x80 != 0,
            volume: payload[1] & 0x3F,
            duration: u16::from_be_bytes([payload[2], payload[3]]),
        })
    }

    pub fn to_bytes(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }
}

/// Turns RFC 4733 packets into digits, each once.
#[derive(Clone, Debug, Default)]
pub struct EventDetector {
    /// The timestamps of the last two events reported (a late end packet
    /// of the one before must not count again).
    last: [Option<u32>; 2],
}

impl EventDetector {
    /// A packet of the telephone-event payload type with its RTP
    /// timestamp: the digit if this event is new.
    pub fn on_packet(&mut self, timestamp: u32, payload: &[u8]) -> Option<char> {
        let event = Event::parse(payload)?;
        if self.last.contains(&Some(timestamp)) {
            return None;
        }
        self.last = [Some(timestamp), self.last[0]];
        digit_of_event(event.event)
    }
}

/// The digit of a SIP INFO body (RFC 2976 bodies phones use).
pub fn digit_of_info(content_type: &str, body: &[u8]) -> Option<char> {
    let content_type = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = std::str::from_utf8(body).ok()?;
    let signal = match content_type.as_str() {
        "application/dtmf-relay" => body.lines().find_map(|line| {
            let (key, value) = line.split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| value.trim())
        })?,
        "application/dtmf" => body.trim(),
        _ => return None,
    };
    match signal {
        "10" => Some('*'),
        "11" => Some('#'),
        s => {
            let mut chars = s.chars();
            let c = chars.next()?;
            (chars.next().is_none() && event_of_digit(c).is_some()).then(|| c.to_ascii_uppercase())
        }
    }
}

const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Samples per Goertzel block at 8 kHz (the classic N = 205, ~25.6 ms).
const BLOCK: usize = 205;

/// In-band DTMF: a Goertzel filter per DTMF frequency over blocks of
/// audio. A digit is reported when two blocks in a row hold the same pair
/// (about 50 ms, the shortest valid tone), and again only after a block
/// without it.
#[derive(Clone, Debug)]
pub struct InbandDetector {
    coefficients: [f32; 8],
    block: Vec<f32>,
    candidate: Option<char>,
    reported: Option<char>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        let mut coefficients = [0f32; 8];
        for (i, f) in ROWS.iter().chain(COLUMNS.iter()).enumerate() {
            let k = (BLOCK as f32 * f / crate::SAMPLE_RATE as f32).round();
            coefficients[i] = 2.0 * (2.0 * std::f32::consts::PI * k / BLOCK as f32).cos();
        }
        InbandDetector {
            coefficients,
            block: Vec::with_capacity(BLOCK),
            candidate: None,
            reported: None,
        }
    }
}

impl InbandDetector {
    /// Feeds decoded samples; returns the digits that began in them.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<char> {
        let mut digits = Vec::new();
        for &s in samples {
            self.block.push(f32::from(s));
            if self.block.len() == BLOCK {
                let seen = self.analyse();
                self.block.clear();
                match seen {
                    Some(d) if self.candidate == Some(d) => {
                        if self.reported != Some(d) {
                            self.reported = Some(d);
                            digits.push(d);
                        }
                    }
                    Some(d) => self.candidate = Some(d),
                    None => {
                        self.candidate = None;
                        self.reported = None;
                    }
                }
            }
        }
        digits
    }

    /// The key whose two tones dominate the block, if any.
    fn analyse(&self) -> Option<char> {
        let energy: f32 = self.block.iter().map(|x| x * x).sum();
        // Quieter than about -40 dBm0 per tone: nothing.
        if energy / (BLOCK as f32) < 20_000.0 {
            return None;
        }
        let mut power = [0f32; 8];
        for (i, &c) in self.coefficients.iter().enumerate() {
            let (mut q1, mut q2) = (0f32, 0f32);
            for &x in &self.block {
                let q0 = c * q1 - q2 + x;
                q2 = q1;
                q1 = q0;
            }
            power[i] = q1 * q1 + q2 * q2 - c * q1 * q2;
        }
        // A pure tone of amplitude A over N samples has power (N A / 2)^2
        // and energy N A^2 / 2: normalised so one tone alone scores 1.
        let scale = energy * BLOCK as f32 / 2.0;
        let (row, row_p) = best(&power[..4]);
        let (col, col_p) = best(&power[4..]);
        let (row_r, col_r) = (row_p / scale, col_p / scale);
        let strong = row_r > 0.15 && col_r > 0.15 && row_r + col_r > 0.6;
        // Twist: neither tone more than 8 dB (x6.3 in power) above the other.
        let twist_ok = row_p < col_p * 6.3 && col_p < row_p * 6.3;
        // Every other frequency of each group well below (6 dB).
        let clean = |group: &[f32], best_i: usize, best_p: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &p)| i == best_i || p * 4.0 < best_p)
        };
        (strong && twist_ok && clean(&power[..4], row, row_p) && clean(&power[4..], col, col_p))
            .then(|| KEYS[row][col])
    }
}

fn best(power: &[f32]) -> (usize, f32) {
    power.iter().copied().enumerate().fold(
        (0, f32::MIN),
        |acc, (i, p)| if p > acc.1 { (i, p) } else { acc },
    )
}

/// Samples `from..from + count` of the tone pair of `digit` (so that a tone
/// made in pieces is continuous), at `amplitude` per tone.
pub fn tone_span(digit: char, from: usize, count: usize, amplitude: f32) -> Vec<i16> {
    let Some((row, col)) = KEYS.iter().enumerate().find_map(|(r, keys)| {
        keys.iter()
            .position(|&k| k == digit.to_ascii_uppercase())
            .map(|c| (r, c))
    }) else {
        return Vec::new();
    };
    let w = |f: f32, i: usize| {
        (2.0 * std::f32::consts::PI * f * i as f32 / crate::SAMPLE_RATE as f32).sin()
    };
    (from..from + count)
        .map(|i| (amplitude * (w(ROWS[row], i) + w(COLUMNS[col], i))) as i16)
        .collect()
}

/// The samples of a DTMF tone pair for `digit`, `ms` long, at `amplitude`
/// per tone (for tests, benches and prompts).
pub fn tone(digit: char, ms: u32, amplitude: f32) -> Vec<i16> {
    tone_span(
        digit,
        0,
        (crate::SAMPLE_RATE * ms / 1000) as usize,
        amplitude,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_rfc4733_event_counts_once_whatever_its_packets_and_end_retransmissions() {
        let mut d = EventDetector::default();
        let ev = |end: bool, duration: u16| {
            Event {
                event: 1,
                end,
                volume: 10,
                duration,
            }
            .to_bytes()
        };
        // No marker needed; start lost: the first packet seen counts.
        assert_eq!(d.on_packet(8000, &ev(false, 320)), Some('1'));
        assert_eq!(d.on_packet(8000, &ev(false, 480)), None);
        for _ in 0..3 {
            assert_eq!(
                d.on_packet(8000, &ev(true, 800)),
                None,
                "the end, three times"
            );
        }
        // The same digit again is a new event: a new timestamp.
        assert_eq!(d.on_packet(9600, &ev(true, 800)), Some('1'));
        assert_eq!(d.on_packet(9600, &[1, 2]), None, "short payload");
        let hash = Event {
            event: 11,
            end: false,
            volume: 0,
            duration: 0,
        }
        .to_bytes();
        assert_eq!(d.on_packet(12000, &hash), Some('#'));
        assert_eq!(Event::parse(&ev(true, 800)).unwrap().duration, 800);
    }

    #[test]
    fn info_bodies_in_both_formats() {
        assert_eq!(
            digit_of_info("application/dtmf-relay", b"Signal=1\r\nDuration=160\r\n"),
            Some('1')
        );
        assert_eq!(
            digit_of_info("Application/DTMF-Relay", b"signal= #\r\n"),
            Some('#')
        );
        assert_eq!(
            digit_of_info("application/dtmf-relay", b"Signal=11\r\n"),
            Some('#')
        );
        assert_eq!(digit_of_info("application/dtmf", b"5"), Some('5'));
        assert_eq!(digit_of_info("application/dtmf", b"12"), None);
        assert_eq!(digit_of_info("text/plain", b"Signal=1"), None);
        assert_eq!(
            digit_of_info("application/dtmf-relay;charset=x", b"Signal=4"),
            Some('4')
        );
    }

    #[test]
    fn inband_tones_are_found_once_each_and_silence_or_speechlike_noise_is_not() {
        for digit in ['1', '5', '9', '0', '*', '#', 'D'] {
            let mut d = InbandDetector::default();
            let mut audio = tone(digit, 80, 6000.0);
            audio.extend(std::iter::repeat_n(0, 800));
            audio.extend(tone(digit, 80, 6000.0));
            assert_eq!(d.feed(&audio), [digit, digit], "{digit}");
        }
        let mut d = InbandDetector::default();
        // A single tone is not a key.
        let single: Vec<i16> = (0..2000)
            .map(|i| {
                (8000.0 * (2.0 * std::f32::consts::PI * 697.0 * i as f32 / 8000.0).sin()) as i16
            })
            .collect();
        assert!(d.feed(&single).is_empty());
        assert!(d.feed(&vec![0; 4000]).is_empty());
        // Too short (20 ms) is no key.
        assert!(d.feed(&tone('3', 20, 6000.0)).is_empty());
    }
}
