//! The UDP socket's error queue (Linux `IP_RECVERR`): which destinations
//! answered a request with ICMP "port unreachable", so that the engine
//! fails what waits on them at once
//! instead of at its timeout. Without `IP_RECVERR` an unconnected socket
//! hears nothing of ICMP. It reads the queue only; what a report means is
//! the engine's (`Input::Unreachable`).
//!
//! Written on nix's safe `recvmsg`: tokio and socket2 do not read the
//! error queue.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use nix::libc;
use nix::sys::socket::{
    recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrStorage,
};

/// Asks the kernel to queue ICMP errors on `socket`.
pub fn enable(socket: &std::net::UdpSocket) -> io::Result<()> {
    let v6 = socket.local_addr()?.is_ipv6();
    let set = if v6 {
        setsockopt(socket, sockopt::Ipv6RecvErr, &true)
    } else {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)
    };
    set.map_err(io::Error::from)
}

/// What one entry of the queue says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Nothing takes datagrams at this address.
    Unreachable(SocketAddr),
    /// Another error (a too-big packet, a local error): nothing to do.
    Other,
}

/// Reads one entry of `socket`'s error queue; `WouldBlock` once it is
/// empty.
pub fn read_one(socket: &impl AsRawFd) -> io::Result<Report> {
    // The refused datagram's start comes back too: a refused response (a
    // 503 to a flood from a closed port) concerns no transaction of ours.
    let mut payload = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(&mut payload)];
    let mut control = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    // The message's address is where the refused datagram was going.
    let Some(to) = message.address.and_then(socket_addr) else {
        return Ok(Report::Other);
    };
    let refused_response = message
        .iovs()
        .next()
        .is_some_and(|data| data.starts_with(b"SIP/2.0 "));
    if refused_response {
        return Ok(Report::Other);
    }
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        let (err, icmp) = match cmsg {
            ControlMessageOwned::Ipv4RecvErr(err, _) => (err, libc::SO_EE_ORIGIN_ICMP),
            ControlMessageOwned::Ipv6RecvErr(err, _) => (err, libc::SO_EE_ORIGIN_ICMP6),
            _ => continue,
        };
        // Only port unreachable is final: host and network unreachable
        // come and go (a phone roaming between access points).
        let refused = err.ee_errno as i32 == libc::ECONNREFUSED;
        if err.ee_origin == icmp && refused {
            return Ok(Report::Unreachable(to));
        }
    }
    Ok(Report::Other)
}

fn socket_addr(address: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// A datagram to a closed loopback port comes back as a report naming
    /// that port.
    #[test]
    fn a_closed_port_is_reported_with_its_address() {
        for local in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(socket) = std::net::UdpSocket::bind(local) else {
                continue; // no IPv6 on this machine
            };
            enable(&socket).expect("IP_RECVERR");
            let closed = std::net::UdpSocket::bind(local).expect("bind");
            let to = closed.local_addr().unwrap();
            drop(closed);
            socket.send_to(b"OPTIONS", to).unwrap();
            // The ICMP comes back through the loopback at once; wait for it
            // with a blocking read of the socket's error (sk_err).
            socket
                .set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            let mut buf = [0u8; 16];
            let err = socket.recv_from(&mut buf).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{local}");
            assert_eq!(
                read_one(&socket).unwrap(),
                Report::Unreachable(to),
                "{local}"
            );
            assert_eq!(
                read_one(&socket).unwrap_err().kind(),
                io::ErrorKind::WouldBlock,
                "{local}: read once"
            );
            // A refused response concerns no transaction: not reported.
            socket
                .send_to(b"SIP/2.0 503 Service Unavailable", to)
                .unwrap();
            let _ = socket.recv_from(&mut buf);
            assert_eq!(read_one(&socket).unwrap(), Report::Other, "{local}");
        }
    }
}
