//! Dialogs (RFC 3261 §12): the state two user agents share after an INVITE,
//! seen from our side, and the requests built inside one.
//!
//! A [`Dialog`] is plain data: its peer, Call-ID, our From (with our tag),
//! their To (with their tag), their target and route set, and our CSeq.
//! It knows no call policy; the engine decides what to send. No IO, no clock.

use std::fmt::Write;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::build::{contact_value, via_value};
use crate::header::{host_ip, NameAddr, Scheme, Uri};
use crate::ids::IdGenerator;
use crate::message::{HeaderName, Message, Method};
use crate::transaction::Peer;

/// One side's dialog, seen from Switchboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    /// Where the other side spoke from (and, for streams, the connection).
    pub peer: Peer,
    pub call_id: String,
    /// Our address with our tag: the From of requests we send.
    pub local: String,
    /// Their address with their tag: the To of requests we send.
    pub remote: String,
    /// Their Contact URI: the Request-URI of requests we send (§12.2.1.1).
    pub remote_target: String,
    /// Route headers for requests we send, in order.
    pub route_set: Vec<String>,
    /// The CSeq of the last request we sent.
    pub local_cseq: u32,
    /// The CSeq of the last request they sent in the dialog, once known:
    /// a lower one is out of order (§12.2.2).
    pub remote_cseq: Option<u32>,
}

impl Dialog {
    /// The dialog a 2xx (or reliable 1xx) to our `request` creates, as the
    /// UAC (§12.1.2): their tag from the response's To, their target from
    /// its Contact, the route set from its Record-Route in reverse.
    pub fn from_response(request: &Message, peer: Peer, response: &Message) -> Dialog {
        Dialog {
            peer,
            call_id: request.call_id().unwrap_or("").to_string(),
            local: request.header(HeaderName::From).unwrap_or("").to_string(),
            remote: response.header(HeaderName::To).unwrap_or("").to_string(),
            remote_target: contact_uri(response)
                .or_else(|| request.request_uri().map(str::to_string))
                .unwrap_or_default(),
            route_set: reversed_record_route(response),
            local_cseq: request.cseq().map(|c| c.seq).unwrap_or(1),
            remote_cseq: None,
        }
    }

    /// Our side of a dialog we are about to create with an INVITE to
    /// `target` (§12.1.2 before the answer: their tag comes with it).
    pub fn uac(
        peer: Peer,
        call_id: String,
        local: String,
        remote: String,
        target: String,
    ) -> Dialog {
        Dialog {
            peer,
            call_id,
            local,
            remote,
            remote_target: target,
            route_set: Vec::new(),
            local_cseq: 1,
            remote_cseq: None,
        }
    }

    /// The INVITE (CSeq 1) that creates this dialog, sent from `local`:
    /// Via, Max-Forwards, From, To, Call-ID, CSeq and our Contact. The
    /// caller adds the rest (Allow, the body...).
    pub fn invite(&self, ids: &mut IdGenerator, local: SocketAddr, max_forwards: u32) -> Message {
        let transport = self.peer.transport;
        let mut invite = Message::request(Method::Invite, &self.remote_target);
        invite.push(HeaderName::Via, &via_value(ids, local, transport));
        invite.push(HeaderName::MaxForwards, &max_forwards.to_string());
        invite.push(HeaderName::From, &self.local);
        invite.push(HeaderName::To, &self.remote);
        invite.push(HeaderName::CallId, &self.call_id);
        invite.push(HeaderName::CSeq, "1 INVITE");
        invite.push(HeaderName::Contact, &contact_value(local, transport));
        invite
    }

    /// The dialog we create by answering `request` as the UAS (§12.1.1):
    /// our tag on its To, their target from its Contact (else its From), the
    /// route set from its Record-Route in order.
    pub fn as_uas(request: &Message, peer: Peer, local_tag: &str) -> Dialog {
        let to = request.header(HeaderName::To).unwrap_or("");
        let local = if to.contains(";tag=") {
            to.to_string()
        } else {
            format!("{to};tag={local_tag}")
        };
        Dialog {
            peer,
            call_id: request.call_id().unwrap_or("").to_string(),
            local,
            remote: request.header(HeaderName::From).unwrap_or("").to_string(),
            remote_target: contact_uri(request)
                .or_else(|| request.from_header().map(|f| f.uri.to_string()))
                .unwrap_or_default(),
            route_set: request
                .values(HeaderName::RecordRoute)
                .map(str::to_string)
                .collect(),
            local_cseq: 0,
            remote_cseq: request.cseq().map(|c| c.seq),
        }
    }

    /// The first route names a strict router (no `;lr`, RFC 2543 style,
    /// §12.2.1.1): requests in the dialog are routed the strict way.
    pub fn strict_route(&self) -> bool {
        self.route_set
            .first()
            .and_then(|r| NameAddr::parse(r))
            .and_then(|r| Uri::parse(r.uri).ok())
            .is_some_and(|u| u.params.get("lr").is_none())
    }

    /// Behind a strict router (§12.2.1.1), its URI: the Request-URI of our
    /// requests, with the rest of the route set and then the remote target
    /// as their Route headers. `None` for loose routing.
    fn strict_router_uri(&self) -> Option<String> {
        if !self.strict_route() {
            return None;
        }
        let first = NameAddr::parse(self.route_set.first()?)?;
        Some(first.uri.to_string())
    }

    /// Writes the Route headers of a request in the dialog.
    fn push_routes(&self, request: &mut Message, strict: bool) {
        for route in &self.route_set[usize::from(strict)..] {
            request.push(HeaderName::Route, route);
        }
        if strict {
            request.push(HeaderName::Route, &format!("<{}>", self.remote_target));
        }
    }

    /// Our tag.
    pub fn local_tag(&self) -> &str {
        tag_of(&self.local)
    }

    /// Their tag.
    pub fn remote_tag(&self) -> &str {
        tag_of(&self.remote)
    }

    /// §12.2.2: a request belongs to this dialog only when both tags match;
    /// knowing the Call-ID is not enough.
    pub fn matches(&self, request: &Message) -> bool {
        request.call_id() == Some(self.call_id.as_str())
            && request.from_tag() == Some(self.remote_tag())
            && request.to_tag() == Some(self.local_tag())
    }

    /// Takes the CSeq of a request they sent in the dialog; false (and the
    /// dialog unchanged) when it is lower than the last one (§12.2.2).
    pub fn accept_cseq(&mut self, cseq: u32) -> bool {
        if self.remote_cseq.is_some_and(|last| cseq < last) {
            return false;
        }
        self.remote_cseq = Some(cseq);
        true
    }

    /// Confirms the dialog from the other side's 2xx to our INVITE: their
    /// tag, their target and the route set (§12.1.2).
    pub fn confirm(&mut self, response: &Message) {
        let remote = response.header(HeaderName::To).unwrap_or("");
        if tag_of(remote) != self.remote_tag() {
            // Another dialog (a fork behind the peer): its CSeqs are its own.
            self.remote_cseq = None;
        }
        self.remote = remote.to_string();
        if let Some(target) = contact_uri(response) {
            self.remote_target = target;
        }
        self.route_set = reversed_record_route(response);
    }

    /// Takes a new remote target from the Contact of a target refresh
    /// request (re-INVITE, UPDATE) or of its 2xx (§12.2). Other methods
    /// leave the target alone.
    pub fn refresh_target(&mut self, method: &Method, message: &Message) {
        if !matches!(method, Method::Invite | Method::Update) {
            return;
        }
        if let Some(target) = contact_uri(message) {
            self.remote_target = target;
        }
    }

    /// A request inside the dialog (§12.2.1.1) with the next CSeq, sent from
    /// `local` (our address on the dialog's transport).
    pub fn request(&mut self, ids: &mut IdGenerator, local: SocketAddr, method: Method) -> Message {
        self.local_cseq += 1;
        let strict = self.strict_router_uri();
        let target = strict.as_deref().unwrap_or(&self.remote_target);
        let mut request = Message::request(method.clone(), target);
        let transport = self.peer.transport;
        request.push(HeaderName::Via, &via_value(ids, local, transport));
        request.push(HeaderName::MaxForwards, "70");
        request.push(HeaderName::From, &self.local);
        request.push(HeaderName::To, &self.remote);
        request.push(HeaderName::CallId, &self.call_id);
        let mut cseq = String::with_capacity(16);
        let _ = write!(cseq, "{} {}", self.local_cseq, method.as_str());
        request.push(HeaderName::CSeq, &cseq);
        self.push_routes(&mut request, strict.is_some());
        request.push(HeaderName::Contact, &contact_value(local, transport));
        request
    }

    /// The ACK for a 2xx to our INVITE of CSeq `cseq` (§13.2.2.4): a new
    /// request outside any transaction, carrying the answer when the 2xx
    /// held the offer.
    pub fn ack(
        &self,
        ids: &mut IdGenerator,
        local: SocketAddr,
        cseq: u32,
        body: Option<(&str, Bytes)>,
    ) -> Message {
        let strict = self.strict_router_uri();
        let target = strict.as_deref().unwrap_or(&self.remote_target);
        let mut ack = Message::request(Method::Ack, target);
        ack.push(HeaderName::Via, &via_value(ids, local, self.peer.transport));
        ack.push(HeaderName::MaxForwards, "70");
        ack.push(HeaderName::From, &self.local);
        ack.push(HeaderName::To, &self.remote);
        ack.push(HeaderName::CallId, &self.call_id);
        let mut value = String::with_capacity(16);
        let _ = write!(value, "{cseq} ACK");
        ack.push(HeaderName::CSeq, &value);
        self.push_routes(&mut ack, strict.is_some());
        if let Some((content_type, body)) = body {
            if !body.is_empty() {
                ack.push(HeaderName::ContentType, content_type);
                ack.set_body(body);
            }
        }
        ack
    }

    /// Where requests in the dialog go (§12.2.1.1 with §8.1.2): the first
    /// Route if any, else the remote target. A host we cannot read as an IP
    /// falls back to where the peer spoke from (nothing is resolved here);
    /// a named first Route never sends past it to the target. Stream
    /// dialogs stay on their connection.
    pub fn next_hop(&self) -> Peer {
        if self.peer.transport.is_reliable() {
            return self.peer;
        }
        let hop = match self.route_set.first() {
            Some(route) => NameAddr::parse(route).and_then(|r| uri_addr(r.uri)),
            None => uri_addr(&self.remote_target),
        };
        Peer {
            transport: self.peer.transport,
            addr: hop.unwrap_or(self.peer.addr),
        }
    }
}

/// The tag of a From or To value, or `""`.
pub fn tag_of(value: &str) -> &str {
    NameAddr::parse(value).and_then(|n| n.tag()).unwrap_or("")
}

/// The socket address a SIP URI names, when its host is an IP literal.
pub fn uri_addr(uri: &str) -> Option<SocketAddr> {
    let uri = Uri::parse(uri).ok()?;
    if uri.scheme == Scheme::Tel {
        return None;
    }
    let ip = host_ip(uri.host)?;
    let default_port = if uri.scheme == Scheme::Sips {
        5061
    } else {
        5060
    };
    Some(SocketAddr::new(ip, uri.port.unwrap_or(default_port)))
}

/// The URI of a message's first Contact.
fn contact_uri(message: &Message) -> Option<String> {
    message
        .values(HeaderName::Contact)
        .next()
        .and_then(NameAddr::parse)
        .map(|c| c.uri.to_string())
}

fn reversed_record_route(response: &Message) -> Vec<String> {
    let mut routes: Vec<String> = response
        .values(HeaderName::RecordRoute)
        .map(str::to_string)
        .collect();
    routes.reverse();
    routes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::build::response_to;
    use crate::transaction::Transport;

    const LOCAL: &str = "127.0.0.1:5060";

    fn udp(addr: &str) -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: addr.parse().unwrap(),
        }
    }

    fn invite() -> Message {
        Message::parse(
            b"INVITE sip:bob@127.0.0.1:5081 SIP/2.0\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
              From: \"A\" <sip:a@sb>;tag=ours\r\nTo: <sip:bob@sb>\r\n\
              Call-ID: leg-1\r\nCSeq: 1 INVITE\r\n\
              Contact: <sip:switchboard@127.0.0.1:5060>\r\n\
              Record-Route: <sip:p1@127.0.0.9;lr>\r\n\r\n",
        )
        .unwrap()
    }

    fn ok_from_bob() -> Message {
        let mut ok = response_to(&invite(), 200, "OK", Some("theirs"), false);
        ok.push(HeaderName::Contact, "<sip:bob@127.0.0.1:5099>");
        ok.push(HeaderName::RecordRoute, "<sip:p1@127.0.0.9;lr>");
        ok.push(HeaderName::RecordRoute, "<sip:p2@127.0.0.8;lr>");
        ok
    }

    #[test]
    fn the_dialog_creating_invite_carries_the_dialogs_identifiers() {
        let d = Dialog::uac(
            udp("127.0.0.1:5081"),
            "leg-9".into(),
            "<sip:a@sb>;tag=ours".into(),
            "<sip:bob@sb>".into(),
            "sip:bob@127.0.0.1:5081".into(),
        );
        let mut ids = IdGenerator::with_seed(3);
        let invite = d.invite(&mut ids, LOCAL.parse().unwrap(), 69);
        assert_eq!(invite.request_uri(), Some("sip:bob@127.0.0.1:5081"));
        assert_eq!(invite.max_forwards(), Some(69));
        assert_eq!(invite.from_tag(), Some("ours"));
        assert_eq!(invite.to_tag(), None);
        assert_eq!(invite.call_id(), Some("leg-9"));
        assert_eq!(invite.cseq().unwrap().seq, 1);
        assert!(invite
            .top_via()
            .unwrap()
            .branch()
            .unwrap()
            .starts_with("z9hG4bK"));
        assert!(invite.header(HeaderName::Contact).unwrap().contains(LOCAL));
    }

    #[test]
    fn a_2xx_confirms_the_uac_dialog_with_reversed_routes() {
        let d = Dialog::from_response(&invite(), udp("127.0.0.1:5081"), &ok_from_bob());
        assert_eq!((d.local_tag(), d.remote_tag()), ("ours", "theirs"));
        assert_eq!(d.remote_target, "sip:bob@127.0.0.1:5099");
        assert_eq!(
            d.route_set,
            vec!["<sip:p2@127.0.0.8;lr>", "<sip:p1@127.0.0.9;lr>"]
        );
        assert_eq!(d.local_cseq, 1);
        assert!(!d.strict_route());
        let mut strict = d.clone();
        strict.route_set = vec!["<sip:old-proxy@127.0.0.7>".into()];
        assert!(strict.strict_route());
        // §12.2.1.1: the strict router's URI is the Request-URI, the remote
        // target the last Route, and the request goes to the router.
        strict.route_set.push("<sip:next@127.0.0.8;lr>".into());
        let mut ids = IdGenerator::with_seed(3);
        for request in [
            strict.request(&mut ids, LOCAL.parse().unwrap(), Method::Bye),
            strict.ack(&mut ids, LOCAL.parse().unwrap(), 1, None),
        ] {
            assert_eq!(request.request_uri(), Some("sip:old-proxy@127.0.0.7"));
            let routes: Vec<_> = request.header_lines(HeaderName::Route).collect();
            assert_eq!(
                routes,
                [
                    "<sip:next@127.0.0.8;lr>".to_string(),
                    format!("<{}>", strict.remote_target)
                ]
            );
        }
        assert_eq!(strict.next_hop().addr, "127.0.0.7:5060".parse().unwrap());
        // Requests go to the first route, not the target.
        assert_eq!(d.next_hop().addr, "127.0.0.8:5060".parse().unwrap());
    }

    #[test]
    fn requests_in_the_dialog_count_cseq_up_and_carry_the_route_set() {
        let mut d = Dialog::from_response(&invite(), udp("127.0.0.1:5081"), &ok_from_bob());
        let mut ids = IdGenerator::with_seed(1);
        let bye = d.request(&mut ids, LOCAL.parse().unwrap(), Method::Bye);
        assert_eq!(bye.request_uri(), Some("sip:bob@127.0.0.1:5099"));
        assert_eq!(bye.cseq().unwrap().seq, 2);
        assert_eq!(bye.from_tag(), Some("ours"));
        assert_eq!(bye.to_tag(), Some("theirs"));
        assert_eq!(bye.header_lines(HeaderName::Route).count(), 2);
        let info = d.request(&mut ids, LOCAL.parse().unwrap(), Method::Info);
        assert_eq!(info.cseq().unwrap().seq, 3);
        // The ACK keeps the INVITE's number and carries an answer if given.
        let ack = d.ack(
            &mut ids,
            LOCAL.parse().unwrap(),
            1,
            Some(("application/sdp", Bytes::from_static(b"v=0\r\n"))),
        );
        assert_eq!(ack.cseq().unwrap().seq, 1);
        assert_eq!(ack.header(HeaderName::ContentType), Some("application/sdp"));
        assert_eq!(&ack.body()[..], b"v=0\r\n");
    }

    #[test]
    fn the_uas_dialog_adds_our_tag_and_matches_only_both_tags() {
        let caller = udp("127.0.0.1:5070");
        let mut inv = invite();
        inv.remove_first_value(HeaderName::RecordRoute);
        let d = Dialog::as_uas(&inv, caller, "uas");
        assert_eq!(d.local_tag(), "uas");
        assert_eq!(d.remote_tag(), "ours");
        assert_eq!(d.remote_target, "sip:switchboard@127.0.0.1:5060");
        let bye = |from_tag: &str, to_tag: &str| {
            Message::parse(
                format!(
                    "BYE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK9\r\n\
                     From: <sip:a@sb>;tag={from_tag}\r\nTo: <sip:bob@sb>;tag={to_tag}\r\n\
                     Call-ID: leg-1\r\nCSeq: 2 BYE\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap()
        };
        assert!(d.matches(&bye("ours", "uas")));
        let mut d2 = d.clone();
        assert!(d2.accept_cseq(2) && d2.accept_cseq(2) && d2.accept_cseq(5));
        assert!(!d2.accept_cseq(3), "lower than the last: out of order");
        assert_eq!(d2.remote_cseq, Some(5));
        assert!(!d.matches(&bye("ours", "guess")));
        assert!(!d.matches(&bye("other", "uas")));
    }

    #[test]
    fn target_refresh_only_for_invite_and_update() {
        let mut d = Dialog::from_response(&invite(), udp("127.0.0.1:5081"), &ok_from_bob());
        let mut moved = ok_from_bob();
        moved.remove_first_value(HeaderName::Contact);
        moved.push(HeaderName::Contact, "<sip:bob@127.0.0.1:6000>");
        d.refresh_target(&Method::Info, &moved);
        assert_eq!(d.remote_target, "sip:bob@127.0.0.1:5099");
        d.refresh_target(&Method::Update, &moved);
        assert_eq!(d.remote_target, "sip:bob@127.0.0.1:6000");
    }

    #[test]
    fn next_hop_falls_back_to_the_peer_for_host_names_and_streams() {
        let mut d = Dialog::from_response(&invite(), udp("127.0.0.1:5081"), &ok_from_bob());
        d.route_set.clear();
        d.remote_target = "sip:bob@phone.invalid".into();
        assert_eq!(d.next_hop().addr, "127.0.0.1:5081".parse().unwrap());
        d.peer.transport = Transport::Tcp(7);
        d.remote_target = "sip:bob@127.0.0.1:9".into();
        assert_eq!(d.next_hop(), d.peer);
        assert_eq!(
            uri_addr("sips:x@[::1]"),
            Some("[::1]:5061".parse().unwrap())
        );
        assert_eq!(uri_addr("tel:+15550100"), None);
    }

    #[test]
    fn uris_compare_as_section_19_1_4_says() {
        use crate::header::uri_eq;
        let a = "sip:alice@127.0.0.1:45081";
        assert!(uri_eq(a, "sip:alice@127.0.0.1:45081;transport=udp"));
        assert!(uri_eq(
            "sip:alice@127.0.0.1:45081;transport=udp",
            "sip:alice@127.0.0.1:45081;transport=UDP"
        ));
        assert!(uri_eq(a, "SIP:alice@127.0.0.1:45081"));
        assert!(
            !uri_eq(a, "sip:Alice@127.0.0.1:45081"),
            "the user is case-sensitive"
        );
        assert!(
            !uri_eq(a, "sip:alice@127.0.0.1"),
            "an absent port is not 5060's equal"
        );
        assert!(!uri_eq(
            "sip:alice@127.0.0.1:45081;transport=udp",
            "sip:alice@127.0.0.1:45081;transport=tcp"
        ));
        assert!(!uri_eq(a, "sip:alice@127.0.0.1:45081;maddr=127.0.0.2"));
        assert!(
            uri_eq(a, "sip:alice@127.0.0.1:45081;ob"),
            "other params: only when both have them"
        );
    }

    #[test]
    fn a_named_first_route_sends_to_the_peer_not_past_the_proxy() {
        let mut d = Dialog::from_response(&invite(), udp("127.0.0.1:5081"), &ok_from_bob());
        d.route_set = vec!["<sip:proxy.invalid;lr>".into()];
        // The target is an IP, but the proxy must not be skipped.
        assert_eq!(d.next_hop().addr, "127.0.0.1:5081".parse().unwrap());
    }
}
