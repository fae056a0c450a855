//! E.164 normalisation of dialled numbers, without allocation.
//!
//! Called on the hot path for every inbound INVITE (the Request-URI user part)
//! and once per configured number, so both sides of the lookup agree.

use std::fmt;

/// Longest E.164 number: 15 digits (ITU-T E.164 section 6.1), plus the `+`.
const MAX_DIGITS: usize = 15;
const CAPACITY: usize = MAX_DIGITS + 1;

/// A normalised E.164 number held on the stack: `+` then 2..=15 digits, the
/// first not `0`. Compare and hash it directly, or look it up with
/// [`Directory::number_index`](crate::Directory::number_index) via
/// [`E164::as_str`].
///
/// `Debug` and `Display` print the number: phone numbers are personal data, so
/// keep them out of info-level logs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct E164 {
    /// ASCII `+` and digits; bytes past `len` are always zero so the derived
    /// comparisons only see the number.
    bytes: [u8; CAPACITY],
    len: u8,
}

impl E164 {
    /// The number as `"+15550100"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into `bytes`, so this cannot fail; the
        // fallback keeps the crate free of panics and of `unsafe`.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E164({})", self.as_str())
    }
}

/// Normalises a dialled number to E.164 without allocating.
///
/// Accepts `"+15550100"`, `"15550100"` (taken as already international),
/// `"+1 (555) 010-0100"`, `"+1.555.010.0100"` and `"001 555 0100"` (the
/// international prefix `00` stands for `+`). Visual separators are space,
/// `-`, `.`, `(` and `)`; a single `+` may appear before the first digit.
///
/// Returns `None` for anything else: letters, empty input, fewer than 2 or more
/// than 15 digits, or a country code starting with `0`.
pub fn normalize_e164(input: &str) -> Option<E164> {
    let mut out = E164 {
        bytes: [0; CAPACITY],
        len: 1,
    };
    out.bytes[0] = b'+';
    let mut digits = 0usize;
    let mut plus = false;
    // Leading zeros not yet committed: "00" is the international prefix.
    let mut pending_zeros = 0usize;

    for &b in input.as_bytes() {
        match b {
            b' ' | b'-' | b'.' | b'(' | b')' => {}
            b'+' if !plus && digits == 0 && pending_zeros == 0 => plus = true,
            b'0' if !plus && digits == 0 && pending_zeros < 2 => pending_zeros += 1,
            b'0'..=b'9' => {
                if digits == 0 {
                    // Without '+', leading zeros must be exactly the "00" prefix;
                    // with '+' (or after "00"), a country code never starts with 0.
                    if pending_zeros == 1 || b == b'0' {
                        return None;
                    }
                }
                if digits == MAX_DIGITS {
                    return None;
                }
                digits += 1;
                out.bytes[digits] = b;
            }
            _ => return None,
        }
    }
    if digits < 2 {
        return None;
    }
    out.len = u8::try_from(digits + 1).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_e164_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("+15550100", Some("+15550100")),
            ("15550100", Some("+15550100")),
            ("+1 (555) 010-0100", Some("+15550100100")),
            ("+1.555.010.0100", Some("+15550100100")),
            ("001 555 0100", Some("+15550100")),
            ("0015550100", Some("+15550100")),
            ("  +33 1 23 45 67 89 ", Some("+33123456789")),
            ("(+44) 20 7946 0018", Some("+442079460018")),
            ("+12", Some("+12")),
            ("+123456789012345", Some("+123456789012345")),
            ("00123456789012345", Some("+123456789012345")),
            // Too long: 16 digits.
            ("+1234567890123456", None),
            ("001234567890123456", None),
            // Too short.
            ("+1", None),
            ("1", None),
            ("00", None),
            ("001", None),
            // Empty, separators only, a lone plus.
            ("", None),
            ("   ", None),
            ("+", None),
            ("-().", None),
            // Letters and other characters.
            ("+1555CALLNOW", None),
            ("sip:+15550100", None),
            ("+1555/0100", None),
            ("+1555\u{a0}0100", None),
            ("١٢٣٤", None),
            // Country code starting with 0.
            ("+015550100", None),
            ("0555 0100", None),
            ("000 1555", None),
            // Plus in the wrong place or twice.
            ("1+5550100", None),
            ("++15550100", None),
            ("00+15550100", None),
        ];
        for &(input, want) in cases {
            let got = normalize_e164(input);
            assert_eq!(
                got.as_ref().map(E164::as_str),
                want,
                "normalize_e164({input:?})"
            );
        }
    }

    #[test]
    fn e164_is_copy_and_compares_by_value() {
        let a = normalize_e164("+1 555 0100").expect("valid");
        let b = a;
        assert_eq!(a, b);
        assert_eq!(a, normalize_e164("0015550100").expect("valid"));
        assert_eq!(format!("{a}"), "+15550100");
        assert_eq!(format!("{a:?}"), "E164(+15550100)");
    }
}
