//! [`Registrations`]: where each user is signed in (RFC 3261 §10.3), and its
//! local implementation on [`PresenceView`].
//!
//! The registrar parses and authenticates a REGISTER; what it asks of the
//! store is one [`Register`], applied whole or not at all, so a shared store
//! can run it as one atomic script. The rules that need the stored state
//! (ordering by Call-ID and CSeq, the device limit) live here, next to it.

use std::net::SocketAddr;

use crate::{Binding, BindingTransport, PresenceView, UserRef};

/// The bindings of users: bind, unbind, look up, expire.
pub trait Registrations {
    /// True while the user has at least one live binding.
    fn is_signed_in(&self, user: UserRef<'_>, now_ms: u64) -> bool;

    /// The user's live bindings.
    fn lookup(&self, user: UserRef<'_>, now_ms: u64) -> Vec<Binding>;

    /// Applies one REGISTER atomically and returns the live bindings after
    /// it. On an error nothing changed.
    fn bind(&self, user: UserRef<'_>, register: &Register, now_ms: u64)
        -> Result<Bound, BindError>;

    /// Drops every binding reached over a stream connection that closed
    /// (RFC 5626 §5.5); returns each user who lost some, with the devices
    /// they have left.
    fn unbind_connection(&self, connection: u64, now_ms: u64) -> Vec<(Box<str>, usize)>;

    /// Drops lapsed bindings everywhere; returns each user who lost some,
    /// with the devices they have left.
    fn expire(&self, now_ms: u64) -> Vec<(Box<str>, usize)>;

    /// Live bindings of every user (for metrics; walks the whole store).
    fn device_count(&self, now_ms: u64) -> usize;
}

/// A REGISTER applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The user's live bindings after it.
    pub bindings: Vec<Binding>,
    /// Whether a device came or went (a refresh changes none).
    pub devices_changed: bool,
}

/// One REGISTER's request to the store, already authenticated and parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Register {
    /// Call-ID and CSeq, for the ordering rule of §10.3 step 7.
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from (after NAT) and over what.
    pub source: SocketAddr,
    pub transport: BindingTransport,
    /// Devices a user may have at once.
    pub max_bindings: usize,
    pub change: RegisterChange,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterChange {
    /// A query: nothing changes.
    Fetch,
    /// `Contact: *` with `Expires: 0`: every binding goes.
    RemoveAll,
    /// Add, refresh or (expiry 0) remove these contacts.
    Contacts(Vec<ContactUpdate>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactUpdate {
    /// The Contact URI, without angle brackets.
    pub uri: String,
    /// `+sip.instance` (RFC 5626): the same device under a new Contact.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626): which flow of that instance.
    pub reg_id: Option<u32>,
    /// Seconds, already clamped by the registrar; 0 removes the binding.
    pub expires_secs: u32,
}

/// Why a REGISTER changed nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    /// An older or repeated CSeq of the same Call-ID (§10.3 step 7).
    #[error("out of order registration")]
    OutOfOrder,
    /// The user already has the most devices allowed.
    #[error("too many devices")]
    TooMany,
}

/// What [`apply`] changed.
pub(crate) struct Applied {
    /// Something must be written to the journal (a refresh included).
    pub(crate) stored: bool,
    /// A device came or went.
    pub(crate) devices_changed: bool,
}

/// The rules of §10.3 steps 7 and 8 over a user's current bindings.
pub(crate) fn apply(
    list: &mut Vec<Binding>,
    register: &Register,
    now_ms: u64,
) -> Result<Applied, BindError> {
    let older = |b: &Binding| b.call_id == register.call_id && b.cseq >= register.cseq;
    match &register.change {
        RegisterChange::Fetch => Ok(Applied {
            stored: false,
            devices_changed: false,
        }),
        RegisterChange::RemoveAll => {
            if list.iter().any(older) {
                return Err(BindError::OutOfOrder);
            }
            let had = !list.is_empty();
            list.clear();
            Ok(Applied {
                stored: true,
                devices_changed: had,
            })
        }
        RegisterChange::Contacts(changes) => {
            let mut devices_changed = false;
            for change in changes {
                // The same Contact in another spelling (§19.1.4) is the same
                // binding, not a second one that rings the phone twice.
                let existing = list.iter().position(|b| same_binding(b, change));
                if let Some(i) = existing {
                    if older(&list[i]) {
                        return Err(BindError::OutOfOrder);
                    }
                }
                let binding = Binding {
                    contact: change.uri.clone(),
                    expires_at_ms: now_ms + u64::from(change.expires_secs) * 1000,
                    call_id: register.call_id.clone(),
                    cseq: register.cseq,
                    source: register.source,
                    transport: register.transport,
                    instance: change.instance.clone(),
                    reg_id: change.reg_id,
                };
                match (existing, change.expires_secs) {
                    (Some(i), 0) => {
                        list.remove(i);
                        devices_changed = true;
                    }
                    (Some(i), _) => {
                        // The same device (by instance) under a new Contact.
                        devices_changed |= list[i].contact != binding.contact;
                        list[i] = binding;
                    }
                    (None, 0) => {}
                    (None, _) => {
                        if list.len() >= register.max_bindings {
                            return Err(BindError::TooMany);
                        }
                        list.push(binding);
                        devices_changed = true;
                    }
                }
            }
            Ok(Applied {
                stored: !changes.is_empty(),
                devices_changed,
            })
        }
    }
}

/// Whether `change` names binding `b`. With an instance and a reg-id, the
/// pair is the key (RFC 5626 §6: one binding per flow, whatever the
/// Contact); with an instance alone, the instance (the same device under a
/// new Contact); otherwise the Contact, compared per §19.1.4 (the same
/// Contact in another spelling is not a second binding that rings the
/// phone twice).
fn same_binding(b: &Binding, change: &ContactUpdate) -> bool {
    match (&change.instance, change.reg_id) {
        (Some(instance), Some(reg_id)) => {
            b.instance.as_ref() == Some(instance) && b.reg_id == Some(reg_id)
        }
        (Some(instance), None) => {
            b.instance.as_ref() == Some(instance) && b.reg_id.is_none()
                || b.reg_id.is_none() && sip::header::uri_eq(&b.contact, &change.uri)
        }
        (None, _) => b.reg_id.is_none() && sip::header::uri_eq(&b.contact, &change.uri),
    }
}

impl Registrations for PresenceView {
    fn is_signed_in(&self, user: UserRef<'_>, now_ms: u64) -> bool {
        self.with(user, |p| p.is_signed_in(now_ms))
    }

    fn lookup(&self, user: UserRef<'_>, now_ms: u64) -> Vec<Binding> {
        self.with(user, |p| p.bindings(now_ms))
    }

    fn bind(
        &self,
        user: UserRef<'_>,
        register: &Register,
        now_ms: u64,
    ) -> Result<Bound, BindError> {
        let applied = self.with(user, |p| {
            p.try_update(now_ms, |list| apply(list, register, now_ms))
        })?;
        if applied.stored {
            self.shared.mark_changed(user.id);
        }
        Ok(Bound {
            bindings: self.lookup(user, now_ms),
            devices_changed: applied.devices_changed,
        })
    }

    fn unbind_connection(&self, connection: u64, now_ms: u64) -> Vec<(Box<str>, usize)> {
        self.shared.drop_connection(connection, now_ms)
    }

    fn expire(&self, now_ms: u64) -> Vec<(Box<str>, usize)> {
        self.shared.expire(now_ms)
    }

    fn device_count(&self, now_ms: u64) -> usize {
        self.shared.binding_count(now_ms)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_contact_in_three_spellings_is_one_binding() {
        let mut list = Vec::new();
        for (cseq, uri) in [
            (1, "sip:alice@127.0.0.1:45081"),
            (2, "sip:alice@127.0.0.1:45081;transport=udp"),
            (3, "sip:alice@127.0.0.1:45081;transport=UDP"),
        ] {
            let register = Register {
                call_id: "r".into(),
                cseq,
                source: "127.0.0.1:45081".parse().unwrap(),
                transport: BindingTransport::Udp,
                max_bindings: 16,
                change: RegisterChange::Contacts(vec![ContactUpdate {
                    uri: uri.into(),
                    instance: None,
                    reg_id: None,
                    expires_secs: 60,
                }]),
            };
            apply(&mut list, &register, 0).unwrap();
        }
        assert_eq!(list.len(), 1, "§19.1.4: the same URI");
    }

    fn register(cseq: u32, uri: &str, instance: Option<&str>, reg_id: Option<u32>) -> Register {
        Register {
            call_id: "r".into(),
            cseq,
            source: "127.0.0.1:45081".parse().unwrap(),
            transport: BindingTransport::Udp,
            max_bindings: 16,
            change: RegisterChange::Contacts(vec![ContactUpdate {
                uri: uri.into(),
                instance: instance.map(str::to_string),
                reg_id,
                expires_secs: 60,
            }]),
        }
    }

    #[test]
    fn two_flows_of_one_instance_are_two_bindings_each_replaced_by_its_reg_id() {
        let phone = Some("<urn:uuid:00000000-0000-1000-8000-000a95a0e128>");
        let mut list = Vec::new();
        apply(
            &mut list,
            &register(1, "sip:a@127.0.0.1:1", phone, Some(1)),
            0,
        )
        .unwrap();
        apply(
            &mut list,
            &register(2, "sip:a@127.0.0.1:2", phone, Some(2)),
            0,
        )
        .unwrap();
        assert_eq!(list.len(), 2, "RFC 5626 §6: one binding per flow");
        // Flow 1 comes back from another address: it replaces flow 1 only.
        apply(
            &mut list,
            &register(3, "sip:a@127.0.0.1:3", phone, Some(1)),
            0,
        )
        .unwrap();
        let mut contacts: Vec<_> = list
            .iter()
            .map(|b| (b.reg_id, b.contact.as_str()))
            .collect();
        contacts.sort();
        assert_eq!(
            contacts,
            [
                (Some(1), "sip:a@127.0.0.1:3"),
                (Some(2), "sip:a@127.0.0.1:2")
            ]
        );
        // Without reg-id, the instance alone names the device.
        let mut plain = Vec::new();
        apply(
            &mut plain,
            &register(1, "sip:a@127.0.0.1:1", phone, None),
            0,
        )
        .unwrap();
        apply(
            &mut plain,
            &register(2, "sip:a@127.0.0.1:9", phone, None),
            0,
        )
        .unwrap();
        assert_eq!(plain.len(), 1);
        assert_eq!(plain[0].contact, "sip:a@127.0.0.1:9");
    }
}
