//! Server-side SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 8760).
//!
//! This module is sans-IO and never reads a clock: the current time is passed in
//! as seconds since the Unix epoch. It provides:
//!
//! * [`parse_credentials`]: parses an `Authorization` / `Proxy-Authorization`
//!   header value into borrowed [`Credentials`]. Arbitrary network input never panics.
//! * [`NonceIssuer`]: issues and checks **stateless** nonces. A nonce is
//!   `hex(timestamp || HMAC-SHA256(secret, timestamp || realm))`, so any node that
//!   shares the 32-byte secret can verify a nonce issued by any other node, and
//!   nothing has to be stored per challenge. A nonce bound to one realm is rejected
//!   for another.
//! * [`challenge`]: formats a `WWW-Authenticate` / `Proxy-Authenticate` value.
//! * [`ha1`] and [`verify`]: compute `HA1` and check a client's `response`
//!   (constant-time comparison), for `MD5` and `SHA-256`, with `qop=auth` or
//!   without `qop` (RFC 2069 compatibility).
//!
//! Replay protection: because nonces are stateless, a captured `Authorization`
//! header can be replayed until its nonce expires, so replay is bounded by the
//! nonce lifetime. Callers wanting more may additionally track the highest `nc`
//! seen per (nonce, cnonce) and reject non-increasing values.
//!
//! Callers must still check that [`Credentials::realm`] is the realm they
//! challenged with, that [`Credentials::algorithm`] is acceptable, and that the
//! nonce is [`NonceStatus::Valid`] (answering [`NonceStatus::Stale`] with a fresh
//! challenge carrying `stale=TRUE`). `-sess` algorithms, `qop=auth-int` and
//! `userhash` are not supported.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Digest hash algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; the default when `algorithm` is absent).
    Md5,
    /// `SHA-256` (RFC 7616 / RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The token used on the wire: `"MD5"` or `"SHA-256"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Parses an algorithm token (case-insensitive). `-sess` variants and
    /// anything unknown are rejected.
    fn parse(token: &str) -> Result<Self, AuthError> {
        if token.eq_ignore_ascii_case("MD5") {
            Ok(Algorithm::Md5)
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Ok(Algorithm::Sha256)
        } else {
            Err(AuthError::UnsupportedAlgorithm)
        }
    }

    /// Length of a hex-encoded digest for this algorithm.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }
}

/// Errors from [`parse_credentials`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// The header does not use the `Digest` scheme.
    #[error("authorization scheme is not Digest")]
    NotDigest,
    /// A required parameter is absent.
    #[error("missing digest parameter `{0}`")]
    MissingParam(&'static str),
    /// The header value is syntactically invalid.
    #[error("malformed digest credentials: {0}")]
    Malformed(&'static str),
    /// The `algorithm` is neither `MD5` nor `SHA-256` (including `-sess` variants).
    #[error("unsupported digest algorithm")]
    UnsupportedAlgorithm,
    /// The `qop` is not `auth`.
    #[error("unsupported qop")]
    UnsupportedQop,
}

/// Parsed `Authorization` / `Proxy-Authorization` header value.
///
/// Values borrow from the header value; quoted strings are unquoted, and values
/// containing backslash escapes are returned owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// `username`.
    pub username: Cow<'a, str>,
    /// `realm`; callers must check it matches the realm they challenged with.
    pub realm: Cow<'a, str>,
    /// `nonce`, as echoed by the client.
    pub nonce: Cow<'a, str>,
    /// The raw `digest-uri` exactly as sent; the hash is computed over it.
    pub uri: Cow<'a, str>,
    /// `response` (hex digest as sent by the client).
    pub response: Cow<'a, str>,
    /// `algorithm`; [`Algorithm::Md5`] when absent.
    pub algorithm: Algorithm,
    /// `cnonce` (required when `qop` is present).
    pub cnonce: Option<Cow<'a, str>>,
    /// `nc` decoded from its 8 hex digits (`0000000a` is 10).
    pub nc: Option<u32>,
    /// `nc` exactly as sent; this is what goes into the hash.
    pub nc_raw: Option<Cow<'a, str>>,
    /// `qop`; only `auth` is accepted by the parser.
    pub qop: Option<Cow<'a, str>>,
    /// `opaque`, if any.
    pub opaque: Option<Cow<'a, str>>,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 3261 `token` characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && is_ws(b[i]) {
        i += 1;
    }
    i
}

/// Parses a quoted string whose opening `"` is at byte `start` of `s`.
/// Returns the unquoted value and the index just past the closing quote.
fn parse_quoted(s: &str, start: usize) -> Result<(Cow<'_, str>, usize), AuthError> {
    let body = s
        .get(start + 1..)
        .ok_or(AuthError::Malformed("quoted string"))?;
    let mut owned: Option<String> = None;
    let mut seg_start = 0;
    let mut chars = body.char_indices();
    while let Some((idx, c)) = chars.next() {
        match c {
            '"' => {
                let end = start + 1 + idx + 1;
                let seg = body.get(seg_start..idx).unwrap_or_default();
                let value = match owned {
                    None => Cow::Borrowed(seg),
                    Some(mut o) => {
                        o.push_str(seg);
                        Cow::Owned(o)
                    }
                };
                return Ok((value, end));
            }
            '\\' => {
                let o = owned.get_or_insert_with(String::new);
                o.push_str(body.get(seg_start..idx).unwrap_or_default());
                match chars.next() {
                    Some((j, escaped)) => {
                        o.push(escaped);
                        seg_start = j + escaped.len_utf8();
                    }
                    None => return Err(AuthError::Malformed("unterminated quoted string")),
                }
            }
            _ => {}
        }
    }
    Err(AuthError::Malformed("unterminated quoted string"))
}

/// Stores `value` in `slot`, rejecting duplicates.
fn set_once<'a>(slot: &mut Option<Cow<'a, str>>, value: Cow<'a, str>) -> Result<(), AuthError> {
    if slot.is_some() {
        return Err(AuthError::Malformed("duplicate parameter"));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses an `Authorization` / `Proxy-Authorization` header value
/// (`Digest k=v, k="v", ...`). Parameter names are case-insensitive and
/// unknown parameters are ignored. Never panics.
///
/// # Errors
///
/// [`AuthError::NotDigest`] for another scheme,
/// [`AuthError::MissingParam`] when `username`, `realm`, `nonce`, `uri` or
/// `response` is absent (or `cnonce` / `nc` while `qop` is present),
/// [`AuthError::UnsupportedAlgorithm`] for anything but `MD5` / `SHA-256`,
/// [`AuthError::UnsupportedQop`] for a `qop` other than `auth`, and
/// [`AuthError::Malformed`] for syntax errors, duplicate parameters or an `nc`
/// that is not 8 hex digits.
pub fn parse_credentials(header_value: &str) -> Result<Credentials<'_>, AuthError> {
    let start = skip_ws(header_value.as_bytes(), 0);
    let s = header_value.get(start..).unwrap_or_default();
    let b = s.as_bytes();
    const SCHEME: &[u8] = b"Digest";
    if b.len() < SCHEME.len()
        || !b[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
        || b.get(SCHEME.len()).is_some_and(|&c| !is_ws(c))
    {
        return Err(AuthError::NotDigest);
    }

    let mut username = None;
    let mut realm = None;
    let mut nonce = None;
    let mut uri = None;
    let mut response = None;
    let mut algorithm = None;
    let mut cnonce = None;
    let mut nc_raw = None;
    let mut qop = None;
    let mut opaque = None;

    let mut i = SCHEME.len();
    loop {
        // Skip whitespace and empty list elements.
        while i < b.len() && (is_ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }

        let key_start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        if i == key_start {
            return Err(AuthError::Malformed("invalid parameter name"));
        }
        let key = &s[key_start..i];
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'=') {
            return Err(AuthError::Malformed("expected '=' after parameter name"));
        }
        i = skip_ws(b, i + 1);

        let value: Cow<'_, str> = if b.get(i) == Some(&b'"') {
            let (v, end) = parse_quoted(s, i)?;
            i = end;
            v
        } else {
            let value_start = i;
            while i < b.len() && !is_ws(b[i]) && b[i] != b',' {
                if b[i] == b'"' || b[i] == b'\\' {
                    return Err(AuthError::Malformed("unexpected character in value"));
                }
                i += 1;
            }
            if i == value_start {
                return Err(AuthError::Malformed("empty parameter value"));
            }
            Cow::Borrowed(&s[value_start..i])
        };

        i = skip_ws(b, i);
        if i < b.len() && b[i] != b',' {
            return Err(AuthError::Malformed("expected ',' between parameters"));
        }

        let slot = if key.eq_ignore_ascii_case("username") {
            &mut username
        } else if key.eq_ignore_ascii_case("realm") {
            &mut realm
        } else if key.eq_ignore_ascii_case("nonce") {
            &mut nonce
        } else if key.eq_ignore_ascii_case("uri") {
            &mut uri
        } else if key.eq_ignore_ascii_case("response") {
            &mut response
        } else if key.eq_ignore_ascii_case("algorithm") {
            &mut algorithm
        } else if key.eq_ignore_ascii_case("cnonce") {
            &mut cnonce
        } else if key.eq_ignore_ascii_case("nc") {
            &mut nc_raw
        } else if key.eq_ignore_ascii_case("qop") {
            &mut qop
        } else if key.eq_ignore_ascii_case("opaque") {
            &mut opaque
        } else {
            continue;
        };
        set_once(slot, value)?;
    }

    let algorithm = match algorithm {
        None => Algorithm::Md5,
        Some(a) => Algorithm::parse(&a)?,
    };
    let nc = match &nc_raw {
        None => None,
        Some(raw) => Some(parse_nc(raw)?),
    };
    if let Some(q) = &qop {
        if !q.eq_ignore_ascii_case("auth") {
            return Err(AuthError::UnsupportedQop);
        }
        if cnonce.is_none() {
            return Err(AuthError::MissingParam("cnonce"));
        }
        if nc_raw.is_none() {
            return Err(AuthError::MissingParam("nc"));
        }
    }

    Ok(Credentials {
        username: username.ok_or(AuthError::MissingParam("username"))?,
        realm: realm.ok_or(AuthError::MissingParam("realm"))?,
        nonce: nonce.ok_or(AuthError::MissingParam("nonce"))?,
        uri: uri.ok_or(AuthError::MissingParam("uri"))?,
        response: response.ok_or(AuthError::MissingParam("response"))?,
        algorithm,
        cnonce,
        nc,
        nc_raw,
        qop,
        opaque,
    })
}

/// `nc-value = 8LHEX` (upper case tolerated).
fn parse_nc(raw: &str) -> Result<u32, AuthError> {
    if raw.len() != 8 || !raw.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(AuthError::Malformed("nc must be 8 hex digits"));
    }
    u32::from_str_radix(raw, 16).map_err(|_| AuthError::Malformed("nc must be 8 hex digits"))
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `bytes` as lowercase hex into `out` (which must be twice as long).
fn encode_hex(bytes: &[u8], out: &mut [u8]) {
    for (pair, &byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// A lowercase hex digest on the stack (at most SHA-256 sized).
struct HexDigest {
    buf: [u8; 64],
    len: usize,
}

impl HexDigest {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// `H(parts[0] ":" parts[1] ":" ...)` as lowercase hex.
fn digest_hex<D: Digest>(parts: &[&[u8]]) -> HexDigest {
    let mut hasher = D::new();
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            hasher.update(b":");
        }
        hasher.update(part);
    }
    let out = hasher.finalize();
    let mut hex = HexDigest {
        buf: [0; 64],
        len: out.len() * 2,
    };
    encode_hex(&out, &mut hex.buf[..hex.len]);
    hex
}

fn h(algorithm: Algorithm, parts: &[&[u8]]) -> HexDigest {
    match algorithm {
        Algorithm::Md5 => digest_hex::<Md5>(parts),
        Algorithm::Sha256 => digest_hex::<Sha256>(parts),
    }
}

/// `H(parts joined by ":")` as lowercase hex: the building block clients
/// (and tests playing clients) use to compute a response.
pub fn hash_hex(algorithm: Algorithm, parts: &[&str]) -> String {
    let bytes: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
    let d = h(algorithm, &bytes);
    d.as_bytes().iter().map(|&c| char::from(c)).collect()
}

/// `HA1 = H(username ":" realm ":" password)`, lowercase hex.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    let d = h(
        algorithm,
        &[username.as_bytes(), realm.as_bytes(), password.as_bytes()],
    );
    d.as_bytes().iter().map(|&c| char::from(c)).collect()
}

/// Verifies `creds.response` for `method` given the stored `ha1`
/// (RFC 2617 §3.2.2.1), using `creds.algorithm`.
///
/// With `qop=auth`: `H(HA1:nonce:nc:cnonce:qop:H(method:uri))`, using `nc`,
/// `cnonce` and `qop` exactly as sent; without `qop`: `H(HA1:nonce:H(method:uri))`.
/// Any other `qop` yields `false`, as does an `ha1` that is not a hex digest of
/// the length `creds.algorithm` produces. The response comparison is
/// constant-time and case-insensitive.
///
/// This does not check the nonce or realm; see [`NonceIssuer::check`].
#[must_use]
pub fn verify(creds: &Credentials<'_>, method: &str, ha1: &str) -> bool {
    let alg = creds.algorithm;
    let len = alg.hex_len();

    // Normalise the stored HA1 to lowercase, rejecting anything that is not a digest.
    let mut ha1_buf = [0u8; 64];
    if ha1.len() != len || !ha1.bytes().all(|c| c.is_ascii_hexdigit()) {
        return false;
    }
    for (d, c) in ha1_buf.iter_mut().zip(ha1.bytes()) {
        *d = c.to_ascii_lowercase();
    }
    let ha1 = &ha1_buf[..len];

    let ha2 = h(alg, &[method.as_bytes(), creds.uri.as_bytes()]);
    let expected = match (&creds.qop, &creds.nc_raw, &creds.cnonce) {
        (None, _, _) => h(alg, &[ha1, creds.nonce.as_bytes(), ha2.as_bytes()]),
        (Some(qop), Some(nc), Some(cnonce)) if qop.eq_ignore_ascii_case("auth") => h(
            alg,
            &[
                ha1,
                creds.nonce.as_bytes(),
                nc.as_bytes(),
                cnonce.as_bytes(),
                qop.as_bytes(),
                ha2.as_bytes(),
            ],
        ),
        _ => return false,
    };

    let response = creds.response.as_bytes();
    if response.len() != len {
        return false;
    }
    let mut resp_buf = [0u8; 64];
    for (d, c) in resp_buf.iter_mut().zip(response) {
        *d = c.to_ascii_lowercase();
    }
    resp_buf[..len].ct_eq(expected.as_bytes()).into()
}

/// Writes `value` as the body of a quoted string: `"` and `\` are escaped, and
/// control characters (which cannot appear in a quoted string and could inject
/// header lines) are dropped.
fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a `WWW-Authenticate` / `Proxy-Authenticate` header value:
/// `Digest realm="…", nonce="…", algorithm=MD5, qop="auth"`, followed by
/// `, stale=TRUE` when `stale`.
pub fn challenge(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let mut out = String::with_capacity(64 + realm.len() + nonce.len());
    out.push_str("Digest realm=");
    push_quoted(&mut out, realm);
    out.push_str(", nonce=");
    push_quoted(&mut out, nonce);
    out.push_str(", algorithm=");
    out.push_str(algorithm.as_str());
    out.push_str(", qop=\"auth\"");
    if stale {
        out.push_str(", stale=TRUE");
    }
    out
}

type HmacSha256 = Hmac<Sha256>;

/// Bytes before the MAC in a nonce: the issue time (8, seconds) and a
/// count of nonces issued (8), so that no two challenges share a nonce
/// (replay tracking needs each to be used by one client only).
const TS_LEN: usize = 16;
/// HMAC-SHA256 tag bytes in a nonce.
const MAC_LEN: usize = 32;
/// Length of an encoded nonce (hex of timestamp || MAC).
const NONCE_HEX_LEN: usize = 2 * (TS_LEN + MAC_LEN);
/// Accepted clock skew for nonces that appear to come from the future.
const MAX_SKEW_SECS: u64 = 5;

/// Result of [`NonceIssuer::check`].
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum NonceStatus {
    /// Authentic and within its lifetime.
    Valid,
    /// Authentic but expired: re-challenge with `stale=TRUE`.
    Stale,
    /// Bad format or MAC, wrong realm, or issued in the future (beyond 5 s skew).
    Invalid,
}

/// Issues and checks stateless nonces:
/// `hex(time_be_u64 || count_be_u64 || HMAC-SHA256(secret, time || count || realm))`.
///
/// Any node configured with the same secret verifies nonces issued by another.
#[derive(Clone)]
pub struct NonceIssuer {
    /// HMAC keyed with the secret; cloned per use to avoid re-keying.
    mac: HmacSha256,
    lifetime_secs: u64,
    /// Shared by clones, so that no two issue the same nonce.
    issued: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl fmt::Debug for NonceIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonceIssuer")
            .field("secret", &"<redacted>")
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

impl NonceIssuer {
    /// Creates an issuer. Nonces are valid for `lifetime` (whole seconds) after issue.
    pub fn new(secret: [u8; 32], lifetime: Duration) -> Self {
        let mac = <HmacSha256 as KeyInit>::new_from_slice(&secret)
            .expect("HMAC accepts keys of any length");
        NonceIssuer {
            mac,
            lifetime_secs: lifetime.as_secs(),
            issued: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn tag(&self, ts: &[u8; TS_LEN], realm: &str) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(ts);
        mac.update(realm.as_bytes());
        mac
    }

    /// Issues a nonce for `realm` at `now_unix` (seconds since the Unix epoch).
    pub fn issue(&self, realm: &str, now_unix: u64) -> String {
        let count = self
            .issued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut ts = [0u8; TS_LEN];
        ts[..8].copy_from_slice(&now_unix.to_be_bytes());
        ts[8..].copy_from_slice(&count.to_be_bytes());
        let tag = self.tag(&ts, realm).finalize().into_bytes();
        let mut raw = [0u8; TS_LEN + MAC_LEN];
        raw[..TS_LEN].copy_from_slice(&ts);
        raw[TS_LEN..].copy_from_slice(&tag);
        let mut hex = [0u8; NONCE_HEX_LEN];
        encode_hex(&raw, &mut hex);
        hex.iter().map(|&c| char::from(c)).collect()
    }

    /// Checks a nonce echoed by a client for `realm` at `now_unix`.
    ///
    /// A nonce is [`NonceStatus::Valid`] while `now_unix - issued <= lifetime`,
    /// then [`NonceStatus::Stale`]. Never panics on arbitrary input.
    #[must_use]
    pub fn check(&self, nonce: &str, realm: &str, now_unix: u64) -> NonceStatus {
        let hex = nonce.as_bytes();
        if hex.len() != NONCE_HEX_LEN {
            return NonceStatus::Invalid;
        }
        let mut raw = [0u8; TS_LEN + MAC_LEN];
        for (byte, pair) in raw.iter_mut().zip(hex.chunks_exact(2)) {
            match (hex_val(pair[0]), hex_val(pair[1])) {
                (Some(hi), Some(lo)) => *byte = (hi << 4) | lo,
                _ => return NonceStatus::Invalid,
            }
        }
        let mut ts = [0u8; TS_LEN];
        ts.copy_from_slice(&raw[..TS_LEN]);
        if self.tag(&ts, realm).verify_slice(&raw[TS_LEN..]).is_err() {
            return NonceStatus::Invalid;
        }
        let mut secs = [0u8; 8];
        secs.copy_from_slice(&ts[..8]);
        let issued = u64::from_be_bytes(secs);
        if issued > now_unix.saturating_add(MAX_SKEW_SECS) {
            return NonceStatus::Invalid;
        }
        if now_unix.saturating_sub(issued) > self.lifetime_secs {
            NonceStatus::Stale
        } else {
            NonceStatus::Valid
        }
    }
}

// ---------------------------------------------------------------------------
// The client side: answering a carrier's 401/407 with a trunk's credentials.

/// A `WWW-Authenticate` / `Proxy-Authenticate` challenge's parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    pub opaque: Option<String>,
    /// The server offered `qop=auth`.
    pub qop_auth: bool,
}

/// Parses a Digest challenge; `None` for another scheme, a missing realm
/// or nonce, or an algorithm we do not know.
pub fn parse_challenge(header_value: &str) -> Option<Challenge> {
    let s = header_value.trim_start();
    let rest = s
        .get(..6)
        .filter(|scheme| scheme.eq_ignore_ascii_case("Digest"))
        .map(|_| &s[6..])?;
    let b = rest.as_bytes();
    let (mut realm, mut nonce, mut opaque) = (None, None, None);
    let mut algorithm = Algorithm::Md5;
    let mut qop_auth = false;
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (is_ws(b[i]) || b[i] == b',') {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && is_token(b[i]) {
            i += 1;
        }
        let key = &rest[key_start..i];
        i = skip_ws(b, i);
        if key.is_empty() || b.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let value: Cow<'_, str> = if b.get(i) == Some(&b'"') {
            let (v, end) = parse_quoted(rest, i).ok()?;
            i = end;
            v
        } else {
            let start = i;
            while i < b.len() && !is_ws(b[i]) && b[i] != b',' {
                i += 1;
            }
            Cow::Borrowed(&rest[start..i])
        };
        match key.to_ascii_lowercase().as_str() {
            "realm" => realm = Some(value.into_owned()),
            "nonce" => nonce = Some(value.into_owned()),
            "opaque" => opaque = Some(value.into_owned()),
            "algorithm" => {
                algorithm = if value.eq_ignore_ascii_case("MD5") {
                    Algorithm::Md5
                } else if value.eq_ignore_ascii_case("SHA-256") {
                    Algorithm::Sha256
                } else {
                    return None;
                }
            }
            "qop" => {
                qop_auth = value
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
            }
            _ => {}
        }
    }
    Some(Challenge {
        realm: realm?,
        nonce: nonce?,
        algorithm,
        opaque,
        qop_auth,
    })
}

/// The `Authorization` / `Proxy-Authorization` value answering `challenge`
/// for `method` on `uri` (RFC 2617 §3.2.2, RFC 8760), with `cnonce` when the
/// server asked for `qop=auth`.
pub fn authorization(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let algorithm = challenge.algorithm;
    let ha1 = ha1(algorithm, username, &challenge.realm, password);
    let ha2 = hash_hex(algorithm, &[method, uri]);
    let mut value = format!(
        "Digest username=\"{username}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", algorithm={}",
        challenge.realm,
        challenge.nonce,
        algorithm.as_str()
    );
    let response = if challenge.qop_auth {
        let nc = "00000001";
        value.push_str(&format!(", qop=auth, nc={nc}, cnonce=\"{cnonce}\""));
        hash_hex(
            algorithm,
            &[&ha1, &challenge.nonce, nc, cnonce, "auth", &ha2],
        )
    } else {
        hash_hex(algorithm, &[&ha1, &challenge.nonce, &ha2])
    };
    value.push_str(&format!(", response=\"{response}\""));
    if let Some(opaque) = &challenge.opaque {
        value.push_str(&format!(", opaque=\"{opaque}\""));
    }
    value
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    const SECRET: [u8; 32] = [7; 32];

    fn issuer() -> NonceIssuer {
        NonceIssuer::new(SECRET, Duration::from_secs(300))
    }

    #[test]
    fn rfc2617_md5_example() {
        let hdr = r#"Digest username="Mufasa",
                 realm="testrealm@host.com",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 uri="/dir/index.html",
                 qop=auth,
                 nc=00000001,
                 cnonce="0a4f113b",
                 response="6629fae49393a05397450978507c4ef1",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let c = parse_credentials(hdr).unwrap();
        assert_eq!(c.username, "Mufasa");
        assert_eq!(c.realm, "testrealm@host.com");
        assert_eq!(c.uri, "/dir/index.html");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.nc, Some(1));
        assert_eq!(c.nc_raw.as_deref(), Some("00000001"));
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert_eq!(c.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(
            c.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert!(matches!(c.username, Cow::Borrowed(_)));
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(verify(&c, "GET", &ha1));
        assert!(!verify(&c, "POST", &ha1));
        // Upper-case hex in the response or in the stored HA1 is accepted.
        let mut upper = c.clone();
        upper.response = Cow::Owned(c.response.to_ascii_uppercase());
        assert!(verify(&upper, "GET", &ha1.to_ascii_uppercase()));
    }

    #[test]
    fn rfc7616_sha256_example() {
        let hdr = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let c = parse_credentials(hdr).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let ha1 = ha1(
            Algorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert_eq!(ha1.len(), 64);
        assert!(verify(&c, "GET", &ha1));
        // An MD5 HA1 is never accepted for SHA-256 credentials.
        let md5_ha1 = super::ha1(
            Algorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert!(!verify(&c, "GET", &md5_ha1));
    }

    #[test]
    fn sip_register_uri_is_hashed_verbatim() {
        let ha1 = ha1(Algorithm::Md5, "alice", "atlanta.com", "s3cr3t");
        assert_eq!(ha1, "de71bde5f9b4f9cb94c99ff915176c84");

        let hdr = "Digest username=\"alice\", realm=\"atlanta.com\", \
                   nonce=\"84a4cc6f3082121f32b42a2187831a9e\", \
                   uri=\"sip:atlanta.com;transport=udp\", \
                   response=\"87442758563d6372281a014a36e198c1\"";
        let c = parse_credentials(hdr).unwrap();
        assert_eq!(c.uri, "sip:atlanta.com;transport=udp");
        assert!(c.qop.is_none());
        assert!(verify(&c, "REGISTER", &ha1));
        let mut altered = c.clone();
        altered.uri = Cow::Borrowed("sip:atlanta.com;transport=UDP");
        assert!(!verify(&altered, "REGISTER", &ha1));
        assert!(!verify(&c, "INVITE", &ha1));

        let hdr = "Digest username=\"alice\",realm=\"atlanta.com\",\
                   nonce=\"84a4cc6f3082121f32b42a2187831a9e\",\
                   uri=\"sip:atlanta.com;transport=udp\",qop=auth,nc=0000000a,\
                   cnonce=\"e79e4f23\",response=\"6af90a61888431a882687386fb636e0e\"";
        let c = parse_credentials(hdr).unwrap();
        assert_eq!(c.nc, Some(10));
        assert!(verify(&c, "REGISTER", &ha1));
        let mut altered = c.clone();
        altered.uri = Cow::Borrowed("sip:atlanta.com;transport=UDP");
        assert!(!verify(&altered, "REGISTER", &ha1));

        let sha_ha1 = super::ha1(Algorithm::Sha256, "alice", "atlanta.com", "s3cr3t");
        let hdr = "Digest username=\"alice\", realm=\"atlanta.com\", algorithm=sha-256, \
                   nonce=\"84a4cc6f3082121f32b42a2187831a9e\", \
                   uri=\"sip:atlanta.com;transport=udp\", qop=auth, nc=0000000a, \
                   cnonce=\"e79e4f23\", \
                   response=\"8bc6e80a79a313f4cea9eae7409e5110d03b3e2bf56d1941acbb7a4bda745754\"";
        let c = parse_credentials(hdr).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(verify(&c, "REGISTER", &sha_ha1));
    }

    #[test]
    fn wrong_password_fails() {
        let hdr = r#"Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1""#;
        let c = parse_credentials(hdr).unwrap();
        let bad = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "circle of life",
        );
        assert!(!verify(&c, "GET", &bad));
        // Garbage HA1 (e.g. a plaintext password passed by mistake) is rejected.
        assert!(!verify(&c, "GET", "Circle Of Life"));
        assert!(!verify(&c, "GET", ""));
        // Truncated / non-hex response.
        let mut short = c.clone();
        short.response = Cow::Borrowed("6629fae4");
        let good = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert!(!verify(&short, "GET", &good));
        // qop other than auth.
        let mut int = c.clone();
        int.qop = Some(Cow::Borrowed("auth-int"));
        assert!(!verify(&int, "GET", &good));
        // qop present but nc missing.
        let mut no_nc = c.clone();
        no_nc.nc_raw = None;
        assert!(!verify(&no_nc, "GET", &good));
        assert!(verify(&c, "GET", &good));
    }

    #[test]
    fn nc_is_hex() {
        let base = r#"Digest username="u", realm="r", nonce="n", uri="sip:r", response="x", qop=auth, cnonce="c", nc="#;
        for (nc, want) in [
            ("0000000a", 10),
            ("0000000A", 10),
            ("FFFFFFFF", u32::MAX),
            ("\"00000010\"", 16),
        ] {
            let hdr = format!("{base}{nc}");
            let c = parse_credentials(&hdr).unwrap();
            assert_eq!(c.nc, Some(want), "{nc}");
        }
        for bad in ["1", "000000001", "0000000g", "+0000001", "-0000001"] {
            assert_eq!(
                parse_credentials(&format!("{base}{bad}")),
                Err(AuthError::Malformed("nc must be 8 hex digits")),
                "{bad}"
            );
        }
    }

    #[test]
    fn quoting_escapes_and_whitespace() {
        let hdr = "  digest\tUserName = \"al\\\"ice\\\\\" ,REALM=example.com,,  nonce=abc ,\
                   Uri=\"sip:bob@example.com\",response=\"00\", foo=\"bar, baz\", bar=1";
        let c = parse_credentials(hdr).unwrap();
        assert_eq!(c.username, "al\"ice\\");
        assert!(matches!(c.username, Cow::Owned(_)));
        assert_eq!(c.realm, "example.com");
        assert!(matches!(c.realm, Cow::Borrowed(_)));
        assert_eq!(c.nonce, "abc");
        assert_eq!(c.uri, "sip:bob@example.com");
        assert_eq!(c.response, "00");
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert!(c.qop.is_none() && c.nc.is_none() && c.cnonce.is_none());

        // Escape of a multi-byte character, and empty quoted values.
        let c = parse_credentials(
            "Digest username=\"\\é\", realm=\"\", nonce=\"n\", uri=\"u\", response=\"r\"",
        )
        .unwrap();
        assert_eq!(c.username, "é");
        assert_eq!(c.realm, "");

        // Line folding between parameters.
        let c = parse_credentials(
            "Digest username=\"a\",\r\n realm=\"b\",\r\n nonce=\"c\", uri=\"d\", response=\"e\"",
        )
        .unwrap();
        assert_eq!(c.realm, "b");
    }

    #[test]
    fn errors() {
        let full = r#"username="u", realm="r", nonce="n", uri="sip:r", response="x""#;
        assert_eq!(
            parse_credentials(&format!("Basic {full}")),
            Err(AuthError::NotDigest)
        );
        assert_eq!(parse_credentials(""), Err(AuthError::NotDigest));
        assert_eq!(parse_credentials("Dig"), Err(AuthError::NotDigest));
        assert_eq!(
            parse_credentials(&format!("Digestusername=\"u\", {full}")),
            Err(AuthError::NotDigest)
        );
        assert_eq!(
            parse_credentials("Digest"),
            Err(AuthError::MissingParam("username"))
        );
        for (name, missing) in [
            (
                "username",
                r#"realm="r", nonce="n", uri="sip:r", response="x""#,
            ),
            (
                "realm",
                r#"username="u", nonce="n", uri="sip:r", response="x""#,
            ),
            (
                "nonce",
                r#"username="u", realm="r", uri="sip:r", response="x""#,
            ),
            ("uri", r#"username="u", realm="r", nonce="n", response="x""#),
            (
                "response",
                r#"username="u", realm="r", nonce="n", uri="sip:r""#,
            ),
        ] {
            assert_eq!(
                parse_credentials(&format!("Digest {missing}")),
                Err(AuthError::MissingParam(name))
            );
        }
        assert_eq!(
            parse_credentials(&format!("Digest {full}, qop=auth, nc=00000001")),
            Err(AuthError::MissingParam("cnonce"))
        );
        assert_eq!(
            parse_credentials(&format!("Digest {full}, qop=auth, cnonce=\"c\"")),
            Err(AuthError::MissingParam("nc"))
        );
        assert_eq!(
            parse_credentials(&format!(
                "Digest {full}, qop=auth-int, cnonce=\"c\", nc=00000001"
            )),
            Err(AuthError::UnsupportedQop)
        );
        for alg in ["MD5-sess", "SHA-256-sess", "sha-512", "\"\""] {
            assert_eq!(
                parse_credentials(&format!("Digest {full}, algorithm={alg}")),
                Err(AuthError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
        for (alg, want) in [
            ("\"sha-256\"", Algorithm::Sha256),
            ("md5", Algorithm::Md5),
            ("MD5", Algorithm::Md5),
        ] {
            let hdr = format!("Digest {full}, algorithm={alg}");
            assert_eq!(parse_credentials(&hdr).unwrap().algorithm, want);
        }

        for bad in [
            r#"Digest username="u"#,
            r#"Digest username="u\"#,
            r#"Digest username"#,
            r#"Digest username="#,
            r#"Digest username=,"#,
            r#"Digest =x"#,
            r#"Digest username="u" realm="r""#,
            r#"Digest username=u"x"#,
            r#"Digest username="u"x"#,
            r#"Digest username="u", username="v""#,
        ] {
            assert!(
                matches!(parse_credentials(bad), Err(AuthError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn algorithm_tokens() {
        assert_eq!(Algorithm::Md5.as_str(), "MD5");
        assert_eq!(Algorithm::Sha256.as_str(), "SHA-256");
    }

    #[test]
    fn challenge_format() {
        assert_eq!(
            challenge("atlanta.com", "abc", Algorithm::Md5, false),
            r#"Digest realm="atlanta.com", nonce="abc", algorithm=MD5, qop="auth""#
        );
        assert_eq!(
            challenge("atlanta.com", "abc", Algorithm::Sha256, true),
            r#"Digest realm="atlanta.com", nonce="abc", algorithm=SHA-256, qop="auth", stale=TRUE"#
        );
        // Quotes are escaped, CR/LF cannot inject header lines, and the result parses back.
        let ch = challenge("a\"b\\c\r\nX: y", "n", Algorithm::Md5, false);
        assert_eq!(
            ch,
            r#"Digest realm="a\"b\\cX: y", nonce="n", algorithm=MD5, qop="auth""#
        );
    }

    #[test]
    fn nonce_known_answer_and_lifetime() {
        let iss = issuer();
        let now = 1_700_000_000;
        let n = iss.issue("atlanta.com", now);
        assert_eq!(
            n,
            "000000006553f100000000000000000022324df421bcd0c1f5161570c9ca4e1793c2a4c2aa3e854d594196d8bbb4ca29"
        );
        // Two challenges in the same second never share a nonce.
        assert_ne!(iss.issue("atlanta.com", now), n);
        assert_eq!(iss.check(&n, "atlanta.com", now), NonceStatus::Valid);
        assert_eq!(iss.check(&n, "atlanta.com", now + 300), NonceStatus::Valid);
        assert_eq!(iss.check(&n, "atlanta.com", now + 301), NonceStatus::Stale);
        assert_eq!(iss.check(&n, "atlanta.com", u64::MAX), NonceStatus::Stale);
        // Clock skew: a little in the future is fine, more is not.
        assert_eq!(iss.check(&n, "atlanta.com", now - 5), NonceStatus::Valid);
        assert_eq!(iss.check(&n, "atlanta.com", now - 6), NonceStatus::Invalid);
        assert_eq!(iss.check(&n, "atlanta.com", 0), NonceStatus::Invalid);
        // Upper-case hex is still the same nonce.
        assert_eq!(
            iss.check(&n.to_ascii_uppercase(), "atlanta.com", now),
            NonceStatus::Valid
        );
        // Another node with the same secret accepts it; a different secret does not.
        let other = NonceIssuer::new(SECRET, Duration::from_secs(300));
        assert_eq!(other.check(&n, "atlanta.com", now + 1), NonceStatus::Valid);
        let foreign = NonceIssuer::new([8; 32], Duration::from_secs(300));
        assert_eq!(foreign.check(&n, "atlanta.com", now), NonceStatus::Invalid);
        // Debug never prints the secret.
        assert!(!format!("{iss:?}").contains("7, 7"));
    }

    #[test]
    fn nonce_rejections() {
        let iss = issuer();
        let now = 1_700_000_000;
        let n = iss.issue("atlanta.com", now);
        assert_eq!(iss.check(&n, "biloxi.com", now), NonceStatus::Invalid);
        assert_eq!(iss.check(&n, "Atlanta.com", now), NonceStatus::Invalid);

        // Flip each hex digit in turn: timestamp and MAC are both covered.
        for i in 0..n.len() {
            let mut b = n.clone().into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            let t = String::from_utf8(b).unwrap();
            assert_eq!(
                iss.check(&t, "atlanta.com", now),
                NonceStatus::Invalid,
                "{i}"
            );
        }
        // Future-dated nonce with a valid MAC.
        let future = iss.issue("atlanta.com", now + 60);
        assert_eq!(iss.check(&future, "atlanta.com", now), NonceStatus::Invalid);

        for garbage in [
            "",
            "abc",
            &n[..n.len() - 1],
            &format!("{n}0"),
            &format!("{}zz", &n[..n.len() - 2]),
            &"é".repeat(40),
        ] {
            assert_eq!(iss.check(garbage, "atlanta.com", now), NonceStatus::Invalid);
        }
    }

    #[test]
    fn end_to_end_with_issued_nonce() {
        let iss = issuer();
        let now = 1_700_000_000;
        let nonce = iss.issue("atlanta.com", now);
        let ch = challenge("atlanta.com", &nonce, Algorithm::Sha256, false);
        assert!(ch.contains(&nonce));
        let ha1 = ha1(Algorithm::Sha256, "bob", "atlanta.com", "pw");
        let ha2 = h(Algorithm::Sha256, &[b"REGISTER", b"sip:atlanta.com"]);
        let resp = h(
            Algorithm::Sha256,
            &[
                ha1.as_bytes(),
                nonce.as_bytes(),
                b"00000001",
                b"xyz",
                b"auth",
                ha2.as_bytes(),
            ],
        );
        let resp = std::str::from_utf8(resp.as_bytes()).unwrap();
        let hdr = format!(
            "Digest username=\"bob\", realm=\"atlanta.com\", nonce=\"{nonce}\", \
             uri=\"sip:atlanta.com\", response=\"{resp}\", algorithm=SHA-256, \
             qop=auth, nc=00000001, cnonce=\"xyz\""
        );
        let c = parse_credentials(&hdr).unwrap();
        assert_eq!(iss.check(&c.nonce, &c.realm, now + 10), NonceStatus::Valid);
        assert!(verify(&c, "REGISTER", &ha1));
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_credentials(&s);
            let _ = issuer().check(&s, "r", 1_700_000_000);
        }

        #[test]
        fn never_panics_digest_like(s in r#"[Dd]igest[ \t]?[a-zA-Z=",\\ \t\r\né0-9-]*"#) {
            if let Ok(c) = parse_credentials(&s) {
                let _ = verify(&c, "REGISTER", &"0".repeat(32));
            }
        }

        #[test]
        fn issued_nonces_round_trip(realm in ".*", now in 0u64..u64::MAX / 2) {
            let iss = issuer();
            let n = iss.issue(&realm, now);
            prop_assert_eq!(iss.check(&n, &realm, now), NonceStatus::Valid);
        }
    }

    #[test]
    fn the_client_answer_to_our_own_challenge_verifies() {
        for algorithm in [Algorithm::Md5, Algorithm::Sha256] {
            let text = challenge("carrier.test", "abc123", algorithm, false);
            let parsed = parse_challenge(&text).unwrap();
            assert_eq!(
                (parsed.realm.as_str(), parsed.nonce.as_str()),
                ("carrier.test", "abc123")
            );
            let value = authorization(
                &parsed,
                "acct",
                "secret",
                "INVITE",
                "sip:+33612345678@127.0.0.1",
                "c0ffee",
            );
            let creds = parse_credentials(&value).unwrap();
            let good = ha1(algorithm, "acct", "carrier.test", "secret");
            assert!(verify(&creds, "INVITE", &good), "{value}");
            let bad = ha1(algorithm, "acct", "carrier.test", "wrong");
            assert!(!verify(&creds, "INVITE", &bad));
        }
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_challenge("Digest nonce=\"n\"").is_none(), "no realm");
        let no_qop = parse_challenge("Digest realm=\"r\", nonce=\"n\", opaque=\"o\"").unwrap();
        assert!(!no_qop.qop_auth);
        assert!(authorization(&no_qop, "u", "p", "INVITE", "sip:x", "c").contains("opaque=\"o\""));
    }
}
