//! Typed views of the header values Switchboard reads (RFC 3261 §20, §25.1).
//!
//! Every view borrows from the header text; nothing here allocates (except
//! the repair of the rare RFC 5118 §4.10 `:::` IPv6 spelling).

use std::net::{IpAddr, Ipv6Addr};

/// `token` characters of RFC 3261 §25.1.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// Splits a comma-separated header value into its elements, leaving commas
/// inside quoted strings and `<...>` alone. Empty elements are skipped.
pub fn split_list(value: &str) -> impl Iterator<Item = &str> + '_ {
    ListSplit { rest: value }
}

struct ListSplit<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ListSplit<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let bytes = self.rest.as_bytes();
            let mut in_quotes = false;
            let mut in_angle = false;
            let mut i = 0;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if in_quotes => i += 1,
                    b'"' => in_quotes = !in_quotes,
                    b'<' if !in_quotes => in_angle = true,
                    b'>' if !in_quotes => in_angle = false,
                    b',' if !in_quotes && !in_angle => break,
                    _ => {}
                }
                i += 1;
            }
            let end = i.min(bytes.len());
            let item = self.rest[..end].trim_matches([' ', '\t']);
            self.rest = if end < bytes.len() {
                &self.rest[end + 1..]
            } else {
                ""
            };
            if !item.is_empty() {
                return Some(item);
            }
        }
    }
}

/// `;name=value` parameters, kept as written. Names compare case-insensitively.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a str,
}

impl<'a> Params<'a> {
    /// `raw` starts at the first `;` (or is empty).
    pub fn new(raw: &'a str) -> Self {
        Params { raw }
    }

    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// Each parameter as (name, value); a flag parameter has no value.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        split_params(self.raw).map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        })
    }

    /// `None` when absent, `Some(None)` for a flag, `Some(Some(v))` otherwise.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether every parameter is `token [= value]` with a value that is a
    /// token, a host (IPv6 addresses included, bracketed or not, as RFC 5118
    /// §4.5 asks for `received`) or a complete quoted string.
    ///
    /// [`Params::iter`] skips empty parameters so that lookups stay lenient;
    /// this is the strict check a UAS applies before trusting a header
    /// (RFC 4475 §3.1.2.1 `badinv01`: `;;,;,,` and `;;;;` are malformed).
    pub fn is_well_formed(&self) -> bool {
        let raw = self.raw.trim_start_matches([' ', '\t']);
        if raw.is_empty() {
            return true;
        }
        let Some(mut rest) = raw.strip_prefix(';') else {
            return false;
        };
        loop {
            let end = unquoted_position(rest, b';').unwrap_or(rest.len());
            if !is_well_formed_param(rest[..end].trim_matches([' ', '\t'])) {
                return false;
            }
            if end == rest.len() {
                return true;
            }
            rest = &rest[end + 1..];
        }
    }
}

/// The first `needle` byte outside a quoted string.
fn unquoted_position(s: &str, needle: u8) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut in_quotes = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if in_quotes => i += 1,
            b'"' => in_quotes = !in_quotes,
            b if b == needle && !in_quotes => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// One `name[=value]` parameter, already trimmed (RFC 3261 §25.1 generic-param).
fn is_well_formed_param(param: &str) -> bool {
    let (name, value) = match param.split_once('=') {
        Some((n, v)) => (
            n.trim_end_matches([' ', '\t']),
            Some(v.trim_start_matches([' ', '\t'])),
        ),
        None => (param, None),
    };
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return false;
    }
    match value {
        None => true,
        Some(v) if v.starts_with('"') => is_quoted_string(v),
        Some(v) => {
            !v.is_empty()
                && v.bytes()
                    .all(|b| is_token_byte(b) || matches!(b, b':' | b'[' | b']'))
        }
    }
}

/// A whole `"..."` quoted string: closed by its last byte, escapes honoured.
pub fn is_quoted_string(s: &str) -> bool {
    let bytes = s.as_bytes();
    if bytes.len() < 2 || bytes[0] != b'"' {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'"' => return i == bytes.len() - 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits `;a=1;b="x;y";c` respecting quotes; skips empty parameters.
fn split_params(raw: &str) -> impl Iterator<Item = &str> + '_ {
    let mut rest = raw;
    std::iter::from_fn(move || loop {
        rest = rest.strip_prefix(';').unwrap_or(rest);
        if rest.is_empty() {
            return None;
        }
        let end = unquoted_position(rest, b';').unwrap_or(rest.len());
        let item = rest[..end].trim();
        rest = &rest[end..];
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Where the parameters start: the first `;` outside a quoted string.
fn params_start(value: &str) -> usize {
    unquoted_position(value, b';').unwrap_or(value.len())
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// Upper-cased by the sender, compared case-insensitively: `UDP`, `TCP`, ...
    pub transport: &'a str,
    /// As written; IPv6 references keep their brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
}

/// The magic cookie of RFC 3261 branches (§8.1.1.7).
pub const BRANCH_COOKIE: &str = "z9hG4bK";

impl<'a> Via<'a> {
    pub fn parse(value: &'a str) -> Option<Via<'a>> {
        let value = value.trim();
        let (protocol, rest) = split_ws(value)?;
        let mut parts = protocol.split('/').map(str::trim);
        let (Some(name), Some(version), Some(transport), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || transport.is_empty() {
            return None;
        }
        let p = params_start(rest);
        let (host, port) = parse_host_port(rest[..p].trim())?;
        let params = Params::new(&rest[p..]);
        if !params.is_well_formed() || !transport.bytes().all(is_token_byte) {
            return None;
        }
        Some(Via {
            transport,
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// `Some(None)` when the client asked for rport (RFC 3581) without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }
}

/// Splits "SIP / 2.0 / UDP host" into the protocol and the rest, allowing LWS
/// around the slashes (RFC 4475 §3.1.1.1).
fn split_ws(value: &str) -> Option<(&str, &str)> {
    let bytes = value.as_bytes();
    let mut i = 0;
    let mut slashes = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'/' => slashes += 1,
            b' ' | b'\t' if slashes == 2 => {
                // Past the second slash: whitespace after the transport token ends it.
                let transport_started = value[..i]
                    .rsplit('/')
                    .next()
                    .is_some_and(|t| !t.trim().is_empty());
                if transport_started {
                    return Some((&value[..i], value[i..].trim_start()));
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// `host[:port]` with IPv6 references in brackets.
pub fn parse_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']')?;
        let host = &s[..=close];
        parse_ipv6(&host[1..host.len() - 1])?;
        match &s[close + 1..] {
            "" => (host, None),
            rest => (host, Some(rest.strip_prefix(':')?)),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => return None,
            None => (s, None),
        }
    };
    if host.is_empty()
        || !(host.starts_with('[')
            || host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// Parses a host as an IP address, brackets removed.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match inner.parse() {
        Ok(ip) => Some(ip),
        Err(_) => parse_ipv6(inner).map(IpAddr::V6),
    }
}

/// An IPv6 address as RFC 4291 writes it, plus the one deviation RFC 5118
/// §4.10 tells implementations to tolerate: RFC 3261's ABNF lets a sender
/// write three colons before an embedded IPv4 address
/// (`2001:db8:::192.0.2.1`), which is read as `2001:db8::192.0.2.1`.
fn parse_ipv6(text: &str) -> Option<Ipv6Addr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    let (before, after) = text.split_once(":::")?;
    if after.contains(':') || after.parse::<std::net::Ipv4Addr>().is_err() {
        return None;
    }
    format!("{before}::{after}").parse().ok()
}

/// `"Display" <uri>;params`, `Display <uri>;params` or `uri;params`
/// (From, To, Contact, Route, Record-Route).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// As written, quotes included.
    pub display: Option<&'a str>,
    pub uri: &'a str,
    /// Header parameters (after the `>`, or after the URI in the bare form).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    pub fn parse(value: &'a str) -> Option<NameAddr<'a>> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let bytes = value.as_bytes();
        // Find '<' outside quotes.
        let mut in_quotes = false;
        let mut open = None;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b'<' if !in_quotes => {
                    open = Some(i);
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        if in_quotes {
            return None;
        }
        match open {
            Some(open) => {
                let close = open + value[open..].find('>')?;
                let display = value[..open].trim();
                if display.starts_with('"') && !display.ends_with('"') {
                    return None;
                }
                if !display.starts_with('"')
                    && !display
                        .split_ascii_whitespace()
                        .all(|w| w.bytes().all(is_token_byte))
                {
                    return None;
                }
                // No whitespace inside the brackets: `< sip:a@b >` is not an
                // addr-spec (RFC 4475 §3.1.2.14 `badaspec`).
                let uri = &value[open + 1..close];
                if uri.is_empty() || uri.bytes().any(|b| b <= b' ' || b == b'<' || b == 0x7f) {
                    return None;
                }
                let rest = value[close + 1..].trim_start();
                if !rest.is_empty() && !rest.starts_with(';') {
                    return None;
                }
                let params = Params::new(rest);
                if !params.is_well_formed() {
                    return None;
                }
                Some(NameAddr {
                    display: (!display.is_empty()).then_some(display),
                    uri,
                    params,
                })
            }
            None => {
                if value.starts_with('"') || value.contains('>') {
                    return None;
                }
                let p = params_start(value);
                let uri = value[..p].trim();
                // RFC 3261 §20: a URI holding a comma, question mark or
                // semicolon must be enclosed in <>; bare, the `;` starts the
                // header parameters and `?` or `,` is malformed (RFC 4475
                // §3.1.2.13 `regbadct`).
                if uri.is_empty()
                    || uri
                        .bytes()
                        .any(|b| b <= b' ' || matches!(b, b'?' | b',' | b'"'))
                {
                    return None;
                }
                let params = Params::new(&value[p..]);
                if !params.is_well_formed() {
                    return None;
                }
                Some(NameAddr {
                    display: None,
                    uri,
                    params,
                })
            }
        }
    }

    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The display name without quotes or escapes' backslashes kept (display only).
    pub fn display_name(&self) -> Option<&'a str> {
        self.display
            .map(|d| d.trim_matches('"'))
            .filter(|d| !d.is_empty())
    }
}

/// URI schemes Switchboard handles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

/// A `sip:`, `sips:` or `tel:` URI (RFC 3261 §19.1, RFC 3966).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// For `tel:` the number; for SIP the user part, still %-escaped.
    pub user: Option<&'a str>,
    /// Empty for `tel:`; IPv6 references keep their brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    pub params: Params<'a>,
    pub headers: Option<&'a str>,
}

/// URI equality of RFC 3261 §19.1.4, for two URIs as written: scheme and
/// host compared without case, user and password with it (after %-decoding
/// is left out: escaped and unescaped forms are rare in Contacts), ports
/// only equal when both are given or both absent; a parameter both have
/// must match (without case), `user`, `ttl`, `method` and `maddr` must
/// also be in both when one has them, and other parameters in only one are
/// ignored; header parts must be the same.
/// URIs that do not parse are equal only when they are the same text.
pub fn uri_eq(a: &str, b: &str) -> bool {
    let (Ok(x), Ok(y)) = (Uri::parse(a), Uri::parse(b)) else {
        return a == b;
    };
    if x.scheme != y.scheme
        || x.user != y.user
        || !x.host.eq_ignore_ascii_case(y.host)
        || x.port != y.port
        || x.headers != y.headers
    {
        return false;
    }
    fn value<'p>(p: &Params<'p>, name: &str) -> Option<&'p str> {
        p.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.unwrap_or(""))
    }
    const STRICT: [&str; 4] = ["user", "ttl", "method", "maddr"];
    for (name, _) in x.params.iter().chain(y.params.iter()) {
        let (vx, vy) = (value(&x.params, name), value(&y.params, name));
        let must = STRICT.iter().any(|s| s.eq_ignore_ascii_case(name));
        match (vx, vy) {
            (Some(p), Some(q)) if !p.eq_ignore_ascii_case(q) => return false,
            (Some(_), None) | (None, Some(_)) if must => return false,
            _ => {}
        }
    }
    true
}

/// Why a URI was refused; `UnsupportedScheme` maps to `416`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UriError {
    UnsupportedScheme,
    Malformed,
}

impl<'a> Uri<'a> {
    pub fn parse(s: &'a str) -> Result<Uri<'a>, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError::Malformed)?;
        if scheme.is_empty()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return Err(UriError::Malformed);
        }
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else if scheme.eq_ignore_ascii_case("tel") {
            Scheme::Tel
        } else {
            return Err(UriError::UnsupportedScheme);
        };
        if rest
            .bytes()
            .any(|b| b <= b' ' || b == b'<' || b == b'>' || b == b'"')
        {
            return Err(UriError::Malformed);
        }
        if scheme == Scheme::Tel {
            let p = rest.find(';').unwrap_or(rest.len());
            let number = &rest[..p];
            if number.is_empty() {
                return Err(UriError::Malformed);
            }
            return Ok(Uri {
                scheme,
                user: Some(number),
                host: "",
                port: None,
                params: Params::new(&rest[p..]),
                headers: None,
            });
        }
        // The userinfo may itself hold `;`, `?` and `/` (RFC 3261 §25.1
        // user-unreserved; RFC 4475 `semiuri`, `intmeth`), and host, params
        // and headers never hold an unescaped '@'. So the userinfo ends at
        // the last '@' before the first '?' when there is one (tolerating
        // senders who leave an '@' unescaped in a header such as Replaces),
        // else at the last '@' at all.
        let query = rest.find('?').unwrap_or(rest.len());
        let at = rest[..query].rfind('@').or_else(|| rest.rfind('@'));
        let (user, after_user) = match at {
            Some(at) => {
                let userinfo = &rest[..at];
                let user = userinfo.split(':').next().unwrap_or(userinfo);
                if user.is_empty() {
                    return Err(UriError::Malformed);
                }
                (Some(user), &rest[at + 1..])
            }
            None => (None, rest),
        };
        let (host_part, headers) = match after_user.split_once('?') {
            Some((h, headers)) => (h, Some(headers)),
            None => (after_user, None),
        };
        let p = host_part.find(';').unwrap_or(host_part.len());
        let (host, port) = parse_host_port(&host_part[..p]).ok_or(UriError::Malformed)?;
        Ok(Uri {
            scheme,
            user,
            host,
            port,
            params: Params::new(&host_part[p..]),
            headers,
        })
    }

    /// The `transport` parameter, lower-cased comparisons are up to the caller.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }
}

/// `CSeq: 4711 INVITE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    pub fn parse(value: &'a str) -> Option<CSeq<'a>> {
        let mut parts = value.split_ascii_whitespace();
        let (Some(seq), Some(method), None) = (parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        if !seq.bytes().all(|b| b.is_ascii_digit()) || !method.bytes().all(is_token_byte) {
            return None;
        }
        // RFC 3261 §8.1.1.5: the sequence number is a 32-bit unsigned integer.
        let seq = seq.parse::<u32>().ok()?;
        Some(CSeq { seq, method })
    }
}

/// `delta-seconds` (Expires, Min-Expires, the expires parameter). Values
/// beyond 2^32-1 saturate, as RFC 3261 §25.1 asks.
pub fn parse_delta_seconds(value: &str) -> Option<u32> {
    let v = value.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u32>().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lists_respect_quotes_and_angle_brackets() {
        let v = r#""Doe, John" <sip:a@b;x=1,2>;expires=60, <sip:c@d>;expires=30"#;
        let items: Vec<_> = split_list(v).collect();
        assert_eq!(
            items,
            vec![
                r#""Doe, John" <sip:a@b;x=1,2>;expires=60"#,
                "<sip:c@d>;expires=30"
            ]
        );
    }

    #[test]
    fn via_with_lws_ipv6_and_rport() {
        let via = Via::parse("SIP / 2.0 / UDP [2001:db8::9]:5060 ;branch=z9hG4bK1;rport").unwrap();
        assert_eq!(via.transport, "UDP");
        assert_eq!(via.host, "[2001:db8::9]");
        assert_eq!(via.port, Some(5060));
        assert_eq!(via.branch(), Some("z9hG4bK1"));
        assert_eq!(via.rport(), Some(None));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,;,,").is_none());
        assert!(Via::parse("SIP/2.0/UDP host;branch=").is_none());
    }

    #[test]
    fn name_addr_forms() {
        let c = NameAddr::parse(
            r#"<sip:alice@10.0.0.1:5062;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>";expires=60"#,
        )
        .unwrap();
        assert_eq!(c.uri, "sip:alice@10.0.0.1:5062;ob");
        assert_eq!(c.params.get("expires"), Some(Some("60")));
        assert!(c.params.contains("+sip.instance"));
        let f = NameAddr::parse("sip:caller@example.net;tag=134").unwrap();
        assert_eq!(f.uri, "sip:caller@example.net");
        assert_eq!(f.tag(), Some("134"));
        assert!(NameAddr::parse(r#""unbalanced <sip:a@b>"#).is_none());
    }

    #[test]
    fn uris() {
        let u = Uri::parse("sip:+15550100;user=phone@[::1]:5060;transport=tcp").unwrap();
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.transport(), Some("tcp"));
        let t = Uri::parse("tel:+1-555-0100;phone-context=example.com").unwrap();
        assert_eq!(t.user, Some("+1-555-0100"));
        assert_eq!(
            Uri::parse("http://x").unwrap_err(),
            UriError::UnsupportedScheme
        );
    }

    #[test]
    fn strict_parameter_syntax() {
        assert!(Params::new("").is_well_formed());
        assert!(Params::new(" ; tag = 1 ;lr; q=0.5").is_well_formed());
        assert!(
            Params::new(r#";x="a;b\"c";received=[2001:db8::1];r=2001:db8::1"#).is_well_formed()
        );
        for bad in [
            ";",
            ";;",
            ";a;;b",
            ";a=",
            ";=1",
            r#";x="open"#,
            ";a b=1",
            "tag=1",
        ] {
            assert!(!Params::new(bad).is_well_formed(), "{bad}");
        }
        assert!(NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#).is_none());
        assert!(NameAddr::parse("< sip:a@b >").is_none());
        assert!(NameAddr::parse("sip:a@b?Route=x").is_none());
        assert!(NameAddr::parse("<sip:a@b?Route=x>").is_some());
    }

    #[test]
    fn userinfo_may_hold_question_marks_and_semicolons() {
        let u = Uri::parse("sip:a?b;c@example.com;lr?h=v").unwrap();
        assert_eq!((u.user, u.host), (Some("a?b;c"), "example.com"));
        assert!(u.params.contains("lr"));
        assert_eq!(u.headers, Some("h=v"));
        let u = Uri::parse("sip:bob@example.com?Replaces=1@2").unwrap();
        assert_eq!(
            (u.user, u.host, u.headers),
            (Some("bob"), "example.com", Some("Replaces=1@2"))
        );
    }

    #[test]
    fn cseq_is_32_bit() {
        assert_eq!(CSeq::parse("4711 INVITE").unwrap().seq, 4711);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_none());
        assert_eq!(parse_delta_seconds("99999999999999"), Some(u32::MAX));
    }
}
