//! G.711 µ-law and A-law (ITU-T G.711): 8-bit codes to and from 16-bit
//! linear samples. Decoding is a table lookup; encoding follows the
//! segment search of the standard.

/// Which G.711 law a stream uses (RTP payload types 0 and 8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Law {
    /// PCMU, payload type 0.
    Mu,
    /// PCMA, payload type 8.
    A,
}

impl Law {
    /// The static RTP payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Law::Mu => "PCMU",
            Law::A => "PCMA",
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => linear_to_ulaw(sample),
            Law::A => linear_to_alaw(sample),
        }
    }

    pub fn decode(self, code: u8) -> i16 {
        match self {
            Law::Mu => ULAW_TO_LINEAR[usize::from(code)],
            Law::A => ALAW_TO_LINEAR[usize::from(code)],
        }
    }

    /// Encodes `samples`, appending to `out`.
    pub fn encode_into(self, samples: &[i16], out: &mut Vec<u8>) {
        out.extend(samples.iter().map(|&s| self.encode(s)));
    }

    /// Decodes `codes`, appending to `out`.
    pub fn decode_into(self, codes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Law::Mu => &ULAW_TO_LINEAR,
            Law::A => &ALAW_TO_LINEAR,
        };
        out.extend(codes.iter().map(|&c| table[usize::from(c)]));
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;

/// The top of each µ-law segment, in 14-bit magnitude plus bias.
const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// The top of each A-law segment, in 13-bit magnitude.
const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(value: i32, ends: &[i32; 8]) -> usize {
    ends.iter().position(|&end| value <= end).unwrap_or(8)
}

pub fn linear_to_ulaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 2;
    let mask: i32 = if value < 0 {
        value = -value;
        0x7F
    } else {
        0xFF
    };
    value = value.min(ULAW_CLIP) + (ULAW_BIAS >> 2);
    let seg = segment(value, &ULAW_SEGMENT_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let code = ((seg as i32) << 4) | ((value >> (seg + 1)) & 0x0F);
    (code ^ mask) as u8
}

pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 3;
    let mask: i32 = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let seg = segment(value, &ALAW_SEGMENT_END);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut code = (seg as i32) << 4;
    code |= if seg < 2 {
        (value >> 1) & 0x0F
    } else {
        (value >> seg) & 0x0F
    };
    (code ^ mask) as u8
}

const fn ulaw_to_linear(code: u8) -> i16 {
    let code = !code;
    let mut t = (((code & 0x0F) as i32) << 3) + ULAW_BIAS;
    t <<= ((code & 0x70) >> 4) as i32;
    (if code & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

const fn alaw_to_linear(code: u8) -> i16 {
    let code = code ^ 0x55;
    let mut t = ((code & 0x0F) as i32) << 4;
    let seg = ((code & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if code & 0x80 != 0 { t } else { -t }) as i16
}

macro_rules! table {
    ($decode:ident) => {{
        let mut out = [0i16; 256];
        let mut i = 0;
        while i < 256 {
            out[i] = $decode(i as u8);
            i += 1;
        }
        out
    }};
}

static ULAW_TO_LINEAR: [i16; 256] = table!(ulaw_to_linear);
static ALAW_TO_LINEAR: [i16; 256] = table!(alaw_to_linear);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_code_survives_decode_then_encode() {
        for law in [Law::Mu, Law::A] {
            for code in 0..=255u8 {
                let back = law.encode(law.decode(code));
                // µ-law has two zeros (0xFF and 0x7F); both decode to 0.
                let expected = if law == Law::Mu && code == 0x7F {
                    0xFF
                } else {
                    code
                };
                assert_eq!(back, expected, "{law:?} {code:#04x}");
            }
        }
    }

    #[test]
    fn encoding_is_monotonic_and_close_across_the_whole_range() {
        for law in [Law::Mu, Law::A] {
            let mut last = i16::MIN;
            for sample in (i16::MIN..=i16::MAX).step_by(7) {
                let decoded = law.decode(law.encode(sample));
                assert!(decoded >= last, "{law:?} not monotonic at {sample}");
                last = decoded;
                // The quantisation step grows with the level: within 1/16 + a little.
                let err = (i32::from(decoded) - i32::from(sample)).abs();
                assert!(
                    err <= (i32::from(sample).abs() / 16).max(16) + 8,
                    "{law:?} {sample} -> {decoded}"
                );
            }
        }
    }

    #[test]
    fn known_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(Law::Mu.decode(0x00), -32124);
        assert_eq!(Law::Mu.decode(0x80), 32124);
        assert_eq!(Law::A.decode(0x55), -8);
        assert_eq!(Law::A.decode(0xD5), 8);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
    }
}
