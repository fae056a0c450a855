//! The one SDP the engine writes itself: an answer that refuses every
//! stream of an offer (RFC 3264 §6: a stream is refused with port 0), for
//! the ACK of a leg whose 2xx carried an offer but lost the race in a
//! late-offer call (§13.2.2.4: that ACK must carry an answer). The leg is
//! hung up right after.

use bytes::Bytes;

/// An answer refusing every `m=` line of `offer`; `None` when the offer
/// has no media line (or is not text).
pub(crate) fn refuse_all(offer: &[u8]) -> Option<Bytes> {
    let offer = std::str::from_utf8(offer).ok()?;
    let mut answer = String::from(
        "v=0\r\no=switchboard 0 0 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n",
    );
    let mut media = 0;
    for line in offer.lines().map(str::trim_end) {
        let Some(rest) = line.strip_prefix("m=") else {
            continue;
        };
        // m=<media> <port>[/<n>] <proto> <fmt>...: the port becomes 0.
        let mut fields = rest.split_whitespace();
        let (Some(kind), Some(_port), Some(proto)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let formats: Vec<&str> = fields.collect();
        answer.push_str(&format!("m={kind} 0 {proto} {}\r\n", formats.join(" ")));
        media += 1;
    }
    (media > 0).then(|| Bytes::from(answer))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_stream_of_the_offer_is_refused_with_port_0() {
        let offer = b"v=0\r\no=bob 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                      m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n\
                      m=video 40002 RTP/AVP 96\r\n";
        let answer = String::from_utf8(refuse_all(offer).unwrap().to_vec()).unwrap();
        assert!(answer.contains("m=audio 0 RTP/AVP 0 8 101\r\n"), "{answer}");
        assert!(answer.contains("m=video 0 RTP/AVP 96\r\n"), "{answer}");
        assert!(refuse_all(b"v=0\r\n").is_none());
    }
}
