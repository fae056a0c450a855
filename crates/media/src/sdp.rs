//! SDP offer/answer for audio (RFC 4566, RFC 3264): what the daemon needs
//! to answer a call itself. Only the first audio stream is read; G.711
//! (PCMU, PCMA) and RFC 4733 `telephone-event` are what we speak.
//!
//! Hand-written rather than `webrtc-sdp`: we read a handful of lines (the
//! connection address, the audio port, its payload types and their
//! rtpmaps, the direction) and write a fixed answer; SDP that passes
//! between two phones is never parsed at all, it goes byte for byte.

use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use crate::g711::Law;

/// The audio stream of an offer, as far as we need it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioOffer {
    /// Where the peer wants RTP (its `c=` and `m=audio` port); a port of 0
    /// means the stream is refused, an address of 0.0.0.0 on hold.
    pub rtp: SocketAddr,
    /// Payload types in the peer's order of preference.
    pub payload_types: Vec<u8>,
    /// The codec we take: the first G.711 law in the peer's order.
    pub law: Option<Law>,
    /// The payload type the peer uses for `telephone-event/8000`.
    pub telephone_event: Option<u8>,
    /// Every `m=` line of the offer, in order, with whether it is the
    /// audio stream we take: the answer has as many (RFC 3264 §6), the
    /// others refused with port 0.
    pub streams: Vec<(String, bool)>,
    /// The direction our answer gives (the offer's, mirrored).
    pub direction: &'static str,
}

/// Why an SDP body cannot be answered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("no audio stream")]
    NoAudio,
    #[error("no connection address for the audio stream")]
    NoConnection,
    #[error("malformed {0} line")]
    Malformed(&'static str),
    /// `488 Not Acceptable Here`.
    #[error("no codec in common (we speak PCMU and PCMA)")]
    NoCommonCodec,
}

/// Reads the first audio stream of an SDP body.
pub fn parse_offer(body: &[u8]) -> Result<AudioOffer, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::Malformed("SDP"))?;
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut audio: Option<(u16, Vec<u8>)> = None;
    let mut rtpmaps: Vec<(u8, String)> = Vec::new();
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut streams: Vec<(String, bool)> = Vec::new();
    let mut secure_audio = false;
    let mut direction = "sendrecv";
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        match kind {
            "m" => {
                in_audio = false;
                let mut parts = value.split_ascii_whitespace();
                let kind = parts.next().unwrap_or("");
                let proto = value.split_ascii_whitespace().nth(2).unwrap_or("");
                // Plain RTP only: SRTP (SAVP, SAVPF, DTLS) is not spoken.
                let plain =
                    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF");
                let take = kind == "audio" && !seen_audio && plain;
                secure_audio |= kind == "audio" && !plain;
                streams.push((value.to_string(), take));
                if !take {
                    continue;
                }
                let port = parts
                    .next()
                    .and_then(|p| p.split('/').next())
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or(SdpError::Malformed("m="))?;
                let _proto = parts.next().ok_or(SdpError::Malformed("m="))?;
                let pts = parts.filter_map(|p| p.parse::<u8>().ok()).collect();
                audio = Some((port, pts));
                in_audio = true;
                seen_audio = true;
            }
            "c" => {
                let ip = value
                    .split_ascii_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .ok_or(SdpError::Malformed("c="))?;
                if in_audio {
                    media_ip = Some(ip);
                } else if !seen_audio {
                    session_ip = Some(ip);
                }
            }
            "a" if in_audio || !seen_audio => {
                let mirrored = match value {
                    "sendonly" => Some("recvonly"),
                    "recvonly" => Some("sendonly"),
                    "inactive" => Some("inactive"),
                    "sendrecv" => Some("sendrecv"),
                    _ => None,
                };
                if let Some(d) = mirrored {
                    direction = d;
                }
                if !in_audio {
                    continue;
                }
                if let Some(map) = value.strip_prefix("rtpmap:") {
                    let mut parts = map.split_ascii_whitespace();
                    if let (Some(pt), Some(name)) = (
                        parts.next().and_then(|p| p.parse::<u8>().ok()),
                        parts.next(),
                    ) {
                        rtpmaps.push((pt, name.to_ascii_lowercase()));
                    }
                }
            }
            _ => {}
        }
    }
    let (port, payload_types) = match audio {
        Some(a) => a,
        None if secure_audio => return Err(SdpError::NoCommonCodec),
        None => return Err(SdpError::NoAudio),
    };
    let ip = media_ip.or(session_ip).ok_or(SdpError::NoConnection)?;
    let name_of = |pt: u8| {
        rtpmaps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, n)| n.as_str())
    };
    let law = payload_types
        .iter()
        .find_map(|&pt| match (pt, name_of(pt)) {
            (_, Some(n)) if n.starts_with("pcmu/8000") => Some(Law::Mu),
            (_, Some(n)) if n.starts_with("pcma/8000") => Some(Law::A),
            (0, None) => Some(Law::Mu),
            (8, None) => Some(Law::A),
            _ => None,
        });
    let telephone_event = payload_types
        .iter()
        .copied()
        .find(|&pt| name_of(pt).is_some_and(|n| n.starts_with("telephone-event/8000")));
    Ok(AudioOffer {
        rtp: SocketAddr::new(ip, port),
        payload_types,
        law,
        telephone_event,
        streams,
        direction,
    })
}

/// What we answer or offer with: our RTP address, and the session's
/// version (bumped on each new description).
#[derive(Clone, Copy, Debug)]
pub struct Local {
    pub rtp: SocketAddr,
    pub session_id: u64,
    pub version: u64,
}

/// The payload type we offer `telephone-event` on when we make the offer.
pub const OUR_TELEPHONE_EVENT: u8 = 101;

/// The answer to `offer` (RFC 3264 §6): the chosen law, and
/// `telephone-event` on the peer's payload type when it offered one (we
/// always can receive it).
pub fn answer(offer: &AudioOffer, local: Local) -> Result<(String, Law), SdpError> {
    let law = offer.law.ok_or(SdpError::NoCommonCodec)?;
    let ours = describe(local, law, None, offer.telephone_event)
        .replace("a=sendrecv\r\n", &format!("a={}\r\n", offer.direction));
    if offer.streams.len() <= 1 {
        return Ok((ours, law));
    }
    // Our audio section in the place of the one we took; every other
    // stream refused (port 0) with its first format.
    let (head, audio) = ours.split_at(ours.find("m=audio").unwrap_or(ours.len()));
    let mut sdp = head.to_string();
    for (line, taken) in &offer.streams {
        if *taken {
            sdp.push_str(audio);
        } else {
            let mut parts = line.split_ascii_whitespace();
            let kind = parts.next().unwrap_or("audio");
            let _port = parts.next();
            let proto = parts.next().unwrap_or("RTP/AVP");
            let format = parts.next().unwrap_or("0");
            let _ = write!(sdp, "m={kind} 0 {proto} {format}\r\n");
        }
    }
    Ok((sdp, law))
}

/// Our offer, for a call that came without one (late offer): PCMU, PCMA
/// and `telephone-event`.
pub fn offer(local: Local) -> String {
    describe(local, Law::Mu, Some(Law::A), Some(OUR_TELEPHONE_EVENT))
}

fn describe(local: Local, first: Law, second: Option<Law>, event: Option<u8>) -> String {
    let family = if local.rtp.is_ipv4() { "IP4" } else { "IP6" };
    let ip = local.rtp.ip();
    let mut pts = first.payload_type().to_string();
    if let Some(law) = second {
        let _ = write!(pts, " {}", law.payload_type());
    }
    if let Some(pt) = event {
        let _ = write!(pts, " {pt}");
    }
    let mut sdp = String::with_capacity(256);
    let _ = write!(
        sdp,
        "v=0\r\no=switchboard {} {} IN {family} {ip}\r\ns=switchboard\r\nc=IN {family} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP {pts}\r\n",
        local.session_id,
        local.version,
        local.rtp.port()
    );
    for law in std::iter::once(first).chain(second) {
        let _ = write!(
            sdp,
            "a=rtpmap:{} {}/8000\r\n",
            law.payload_type(),
            law.name()
        );
    }
    if let Some(pt) = event {
        let _ = write!(
            sdp,
            "a=rtpmap:{pt} telephone-event/8000\r\na=fmtp:{pt} 0-15\r\n"
        );
    }
    sdp.push_str("a=ptime:20\r\na=sendrecv\r\n");
    sdp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SIPP: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
        c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

    fn local() -> Local {
        Local {
            rtp: "127.0.0.1:20000".parse().unwrap(),
            session_id: 7,
            version: 1,
        }
    }

    #[test]
    fn an_offer_is_read_in_its_order_of_preference() {
        let offer = parse_offer(SIPP.as_bytes()).unwrap();
        assert_eq!(offer.rtp, "127.0.0.1:6000".parse().unwrap());
        assert_eq!(offer.law, Some(Law::A), "PCMA first in the offer");
        assert_eq!(offer.telephone_event, Some(101));
        let (sdp, law) = answer(&offer, local()).unwrap();
        assert_eq!(law, Law::A);
        assert!(sdp.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:101 telephone-event/8000\r\n"));
        let back = parse_offer(sdp.as_bytes()).unwrap();
        assert_eq!(back.rtp, local().rtp);
        assert_eq!(back.law, Some(Law::A));
    }

    #[test]
    fn static_payloads_without_rtpmap_media_level_connection_and_dynamic_names() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.9\r\nm=video 5000 RTP/AVP 96\r\n\
            m=audio 7000 RTP/AVP 0\r\nc=IN IP4 127.0.0.2\r\n";
        let offer = parse_offer(sdp.as_bytes()).unwrap();
        assert_eq!(offer.rtp, "127.0.0.2:7000".parse().unwrap());
        assert_eq!(offer.law, Some(Law::Mu));
        assert_eq!(offer.telephone_event, None);
        let dynamic = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 7000 RTP/AVP 96 97\r\n\
            a=rtpmap:96 opus/48000/2\r\na=rtpmap:97 PCMU/8000\r\n";
        assert_eq!(parse_offer(dynamic.as_bytes()).unwrap().law, Some(Law::Mu));
    }

    #[test]
    fn no_common_codec_no_audio_and_no_address_are_refused() {
        let opus =
            "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 7000 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\n";
        let offer = parse_offer(opus.as_bytes()).unwrap();
        assert_eq!(answer(&offer, local()), Err(SdpError::NoCommonCodec));
        assert_eq!(
            parse_offer(b"v=0\r\nm=video 1 RTP/AVP 96\r\n"),
            Err(SdpError::NoAudio)
        );
        assert_eq!(
            parse_offer(b"v=0\r\nm=audio 1 RTP/AVP 0\r\n"),
            Err(SdpError::NoConnection)
        );
        assert!(parse_offer(b"v=0\r\nc=IN IP4 nonsense\r\n").is_err());
    }

    #[test]
    fn the_answer_has_a_line_for_every_offered_stream_and_mirrors_the_direction() {
        let sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=video 5000 RTP/AVP 96\r\n\
            m=audio 7000 RTP/AVP 0\r\na=sendonly\r\n";
        let offer = parse_offer(sdp.as_bytes()).unwrap();
        let (answer, _) = answer(&offer, local()).unwrap();
        let m: Vec<_> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(m, ["m=video 0 RTP/AVP 96", "m=audio 20000 RTP/AVP 0"]);
        assert!(answer.contains("a=recvonly\r\n"), "{answer}");
        // SRTP only: nothing we speak.
        let srtp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 7000 RTP/SAVP 0\r\n";
        assert_eq!(parse_offer(srtp.as_bytes()), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn our_offer_lists_both_laws_and_telephone_event() {
        let sdp = offer(local());
        let parsed = parse_offer(sdp.as_bytes()).unwrap();
        assert_eq!(parsed.payload_types, [0, 8, 101]);
        assert_eq!(parsed.telephone_event, Some(101));
    }
}
