//! Where to send: our own addresses, the Via rules of RFC 3261 §18.2 and
//! RFC 3581 for responses, and how to reach a registered device behind NAT.
//! Pure functions of the message, the binding and the engine's config.

use std::net::{IpAddr, SocketAddr};

use presence::{Binding, BindingTransport};
use sip::dialog::uri_addr;
use sip::transaction::{Peer, Transport};
use sip::{HeaderName, Message};

use crate::EngineConfig;

/// Our Via sent-by and Contact host:port for a transport (the advertised
/// address the driver put in the config).
pub(crate) fn local_addr(cfg: &EngineConfig, transport: Transport) -> SocketAddr {
    let fallback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 5060));
    match transport {
        Transport::Udp => cfg.udp_addr.or(cfg.tcp_addr).unwrap_or(fallback),
        Transport::Tcp(_) | Transport::TcpConnect => {
            cfg.tcp_addr.or(cfg.udp_addr).unwrap_or(fallback)
        }
        Transport::Tls(_) => cfg.tls_addr.or(cfg.tcp_addr).unwrap_or(fallback),
    }
}

/// RFC 3261 §18.2.1 and RFC 3581: note where the request really came from in
/// its top Via, so every response retraces the path through NAT.
pub(crate) fn stamp_received(request: &mut Message, from: Peer) {
    let Some(via) = request.top_via() else {
        return;
    };
    let ip = from.addr.ip();
    let wants_rport = via.rport().is_some();
    let host_matches = sip::header::host_ip(via.host) == Some(ip);
    if host_matches && !wants_rport {
        return;
    }
    let mut value = String::with_capacity(96);
    value.push_str("SIP/2.0/");
    value.push_str(via.transport);
    value.push(' ');
    value.push_str(via.host);
    if let Some(port) = via.port {
        value.push(':');
        value.push_str(&port.to_string());
    }
    for (name, v) in via.params.iter() {
        if name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("rport") {
            continue;
        }
        value.push(';');
        value.push_str(name);
        if let Some(v) = v {
            value.push('=');
            value.push_str(v);
        }
    }
    value.push_str(";received=");
    value.push_str(&ip.to_string());
    if wants_rport {
        value.push_str(";rport=");
        value.push_str(&from.addr.port().to_string());
    }
    request.remove_first_value(HeaderName::Via);
    request.push_front(HeaderName::Via, &value);
}

pub(crate) use sip::transaction::response_peer as reply_peer;

/// Where to send requests for a binding: the connection it registered on
/// (TCP), else its Contact when that names an IP, else the address the
/// REGISTER came from; over TCP (a connection the driver opens) when the
/// Contact says `;transport=tcp` or the binding was made over a TCP
/// connection that is gone (restored after a restart), never over UDP
/// then (RFC 3261 §19.1.1, RFC 3263 §4.1). A device signed in over TLS is
/// reached over its connection only: `None` once that is gone.
pub(crate) fn binding_peer(binding: &Binding) -> Option<Peer> {
    match binding.transport {
        BindingTransport::Tcp {
            connection: Some(id),
        } => {
            return Some(Peer {
                transport: Transport::Tcp(id),
                addr: binding.source,
            })
        }
        BindingTransport::Tls {
            connection: Some(id),
        } => {
            return Some(Peer {
                transport: Transport::Tls(id),
                addr: binding.source,
            })
        }
        BindingTransport::Tls { connection: None } => return None,
        BindingTransport::Tcp { connection: None } | BindingTransport::Udp => {}
    }
    // The Contact says where the device listens; behind NAT it names a
    // private address we cannot reach, and the REGISTER's public source is
    // the way back (what RFC 5626 flows formalise).
    let addr = match uri_addr(&binding.contact) {
        Some(contact) if is_private(contact.ip()) && is_public(binding.source.ip()) => {
            binding.source
        }
        Some(contact) => contact,
        None => binding.source,
    };
    let tcp = matches!(
        binding.transport,
        BindingTransport::Tcp { connection: None }
    ) || contact_transport(&binding.contact)
        .is_some_and(|t| t.eq_ignore_ascii_case("tcp"));
    Some(Peer {
        transport: if tcp {
            Transport::TcpConnect
        } else {
            Transport::Udp
        },
        addr,
    })
}

/// The `transport` parameter of a Contact URI.
fn contact_transport(contact: &str) -> Option<&str> {
    // Cheap before parsing: most Contacts have no parameter at all.
    if !contact.contains(';') {
        return None;
    }
    sip::header::Uri::parse(contact)
        .ok()?
        .params
        .get("transport")
        .flatten()
}

/// RFC 1918 / RFC 4193 / link-local addresses: not reachable from outside.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xfe00) == 0xfc00 || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// An address on the public side of a NAT (not private, loopback or unspecified).
fn is_public(ip: IpAddr) -> bool {
    !is_private(ip) && !ip.is_loopback() && !ip.is_unspecified()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn binding(contact: &str, source: &str) -> Binding {
        Binding {
            contact: contact.into(),
            expires_at_ms: u64::MAX,
            call_id: "n".into(),
            cseq: 1,
            source: source.parse().unwrap(),
            transport: BindingTransport::Udp,
            instance: None,
            reg_id: None,
        }
    }

    /// Sans-IO only: these documentation addresses never reach a socket.
    #[test]
    fn a_private_contact_registered_from_a_public_address_is_called_at_the_source() {
        let natted = binding_peer(&binding("sip:bob@10.0.0.5:5060", "203.0.113.7:40000")).unwrap();
        assert_eq!(natted.addr, "203.0.113.7:40000".parse().unwrap());
        // A separate registering client on loopback: the Contact is right.
        let local = binding_peer(&binding("sip:bob@127.0.0.1:5081", "127.0.0.1:5090")).unwrap();
        assert_eq!(local.addr, "127.0.0.1:5081".parse().unwrap());
        // A host name is never resolved: the REGISTER's source it is.
        let named = binding_peer(&binding("sip:bob@phone.invalid", "127.0.0.1:5090")).unwrap();
        assert_eq!(named.addr, "127.0.0.1:5090".parse().unwrap());
    }

    #[test]
    fn a_tcp_binding_is_called_on_its_connection() {
        let mut b = binding("sip:bob@127.0.0.1:5081;transport=tcp", "127.0.0.1:40000");
        b.transport = BindingTransport::Tcp {
            connection: Some(9),
        };
        assert_eq!(binding_peer(&b).unwrap().transport, Transport::Tcp(9));
    }

    #[test]
    fn a_tcp_contact_without_a_connection_is_called_over_a_new_one_never_udp() {
        // Restored after a restart: the connection is gone.
        let mut b = binding("sip:bob@127.0.0.1:5081", "127.0.0.1:40000");
        b.transport = BindingTransport::Tcp { connection: None };
        let peer = binding_peer(&b).unwrap();
        assert_eq!(peer.transport, Transport::TcpConnect);
        assert_eq!(peer.addr, "127.0.0.1:5081".parse().unwrap());
        // Registered over UDP, but the Contact asks for TCP.
        let b = binding("sip:bob@127.0.0.1:5082;transport=TCP", "127.0.0.1:40000");
        assert_eq!(binding_peer(&b).unwrap().transport, Transport::TcpConnect);
        let b = binding("sip:bob@127.0.0.1:5082;transport=udp", "127.0.0.1:40000");
        assert_eq!(binding_peer(&b).unwrap().transport, Transport::Udp);
    }

    #[test]
    fn a_tls_binding_is_called_on_its_connection_or_not_at_all() {
        let mut b = binding("sip:bob@127.0.0.1:5081;transport=tls", "127.0.0.1:40000");
        b.transport = BindingTransport::Tls {
            connection: Some(4),
        };
        assert_eq!(binding_peer(&b).unwrap().transport, Transport::Tls(4));
        // Restored after a restart: no connection to reach it over.
        b.transport = BindingTransport::Tls { connection: None };
        assert_eq!(binding_peer(&b), None);
    }
}
