//! Live state of the workspace's users: where each user is signed in
//! (registration bindings with their expiry) and how many answered calls each
//! user has (occupancy, which makes a user busy).
//!
//! What the rest of the system sees is two traits, [`Registrations`] (bind,
//! unbind, look up, expire) and [`Occupancy`] (take a call for a user under a
//! lease, release it). Each operation is one atomic step on the backend, so a
//! shared store for several nodes (Redis: a Lua script or a MULTI per call)
//! can implement them as they are. [`PresenceView`] is the local
//! implementation, aligned with one directory snapshot; [`Presence`] holds the
//! state by user id so that it outlives snapshots.
//!
//! This crate does not decide routing, and reads no clock.
//!
//! Reads on the call path take no lock a writer can hold: occupancy and the
//! "signed in until" instant are atomics, the binding list is an `ArcSwap`
//! snapshot. Writers (the registrar) serialise per user on a small mutex.
//! The only IO is [`Presence::save`] and [`Presence::load`], which persist the
//! bindings in the data directory so that a restart keeps every user signed in.
//!
//! Time is passed in as milliseconds since the Unix epoch: binding expiries
//! must mean the same thing after a restart.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use directory::{Directory, UserIdx};
use serde::{Deserialize, Serialize};

mod occupancy;
mod registrations;
mod store;
pub use occupancy::{Lease, Occupancy};
pub use registrations::{BindError, Bound, ContactUpdate, Register, RegisterChange, Registrations};
pub use store::RegistrationStore;

/// Where live state is kept: builds, for each directory snapshot, the view
/// that calls routed with that snapshot read and change presence through.
/// The local backend is `Arc<Presence>`; a shared one (Redis) implements the
/// same, and the engine needs no change.
pub trait Backend: Send + Sync + 'static {
    type View: Registrations + Occupancy + Send + Sync + std::fmt::Debug + 'static;

    /// The view for `directory`'s users.
    fn view(&self, directory: &Directory) -> Self::View;
}

impl Backend for Arc<Presence> {
    type View = PresenceView;

    fn view(&self, directory: &Directory) -> PresenceView {
        Presence::view(self, directory)
    }
}

/// A user as a presence backend addresses them: the index in the directory
/// snapshot the caller holds (the local tables are aligned with it, so the
/// call path does not hash) and the stable id (what a shared store keys on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserRef<'a> {
    pub idx: UserIdx,
    pub id: &'a str,
}

/// How a device reaches us and we reach it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindingTransport {
    Udp,
    /// A TCP connection; its id is only meaningful while the daemon runs
    /// (after a restart, the device is reached at its Contact instead).
    Tcp {
        #[serde(skip)]
        connection: Option<u64>,
    },
    /// A TLS connection; once it is gone (a restart) the device cannot be
    /// reached until it registers again over a new one.
    Tls {
        #[serde(skip)]
        connection: Option<u64>,
    },
}

impl Binding {
    /// Whether the binding still means something after a restart: not
    /// expired, and not made over a TLS connection (gone with the process;
    /// the daemon never opens one, so the device must register again).
    pub fn restorable(&self, now_ms: u64) -> bool {
        self.expires_at_ms > now_ms && !matches!(self.transport, BindingTransport::Tls { .. })
    }
}

/// One registered device of a user (RFC 3261 §10.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// The Contact URI, without angle brackets.
    pub contact: String,
    /// Unix milliseconds at which the binding lapses.
    pub expires_at_ms: u64,
    /// Call-ID and CSeq of the REGISTER that last refreshed it (§10.3 step 7).
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from (after NAT).
    pub source: SocketAddr,
    pub transport: BindingTransport,
    /// `+sip.instance` (RFC 5626), which identifies a device across Contact changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626 §4.2): with an instance, one flow of the device;
    /// two flows of one instance are two bindings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reg_id: Option<u32>,
}

/// The live state of one user.
#[derive(Debug, Default)]
pub struct UserPresence {
    bindings: ArcSwap<Vec<Binding>>,
    write: Mutex<()>,
    /// The latest binding expiry, so "is this user signed in" is one load.
    signed_in_until_ms: AtomicU64,
    /// The number of leases, kept apart so routing reads it with one load.
    active_calls: AtomicU32,
    /// Calls the user is in: (lease id, Unix ms at which it lapses).
    leases: Mutex<Vec<(u64, u64)>>,
}

impl UserPresence {
    /// True while at least one binding is live.
    pub fn is_signed_in(&self, now_ms: u64) -> bool {
        self.signed_in_until_ms.load(Ordering::Acquire) > now_ms
    }

    /// The live bindings at `now_ms`.
    pub fn bindings(&self, now_ms: u64) -> Vec<Binding> {
        self.bindings
            .load()
            .iter()
            .filter(|b| b.expires_at_ms > now_ms)
            .cloned()
            .collect()
    }

    /// The stored bindings without filtering (for callers that filter themselves).
    pub fn snapshot(&self) -> Arc<Vec<Binding>> {
        self.bindings.load_full()
    }

    /// Answered calls the user is in.
    pub fn active_calls(&self) -> u32 {
        self.active_calls.load(Ordering::Acquire)
    }

    /// Adds a lease; returns the calls the user is in after it.
    fn add_lease(&self, id: u64, expires_at_ms: u64) -> u32 {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases.push((id, expires_at_ms));
        let n = leases.len() as u32;
        self.active_calls.store(n, Ordering::Release);
        n
    }

    /// Removes a lease (a second release of the same lease changes
    /// nothing); returns the calls the user is in after it.
    fn remove_lease(&self, id: u64) -> u32 {
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        leases.retain(|&(lease, _)| lease != id);
        let n = leases.len() as u32;
        self.active_calls.store(n, Ordering::Release);
        n
    }

    /// Drops leases that lapsed (their holder never released them);
    /// returns how many.
    fn expire_leases(&self, now_ms: u64) -> usize {
        if self.active_calls() == 0 {
            return 0;
        }
        let mut leases = self.leases.lock().unwrap_or_else(|e| e.into_inner());
        let before = leases.len();
        leases.retain(|&(_, until)| until > now_ms);
        self.active_calls
            .store(leases.len() as u32, Ordering::Release);
        before - leases.len()
    }

    /// As [`UserPresence::update`], but keeps the old list when `edit`
    /// fails: a REGISTER refused half-way changes nothing.
    pub fn try_update<R, E>(
        &self,
        now_ms: u64,
        edit: impl FnOnce(&mut Vec<Binding>) -> Result<R, E>,
    ) -> Result<R, E> {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Binding> = self
            .bindings
            .load()
            .iter()
            .filter(|b| b.expires_at_ms > now_ms)
            .cloned()
            .collect();
        let result = edit(&mut list)?;
        let until = list.iter().map(|b| b.expires_at_ms).max().unwrap_or(0);
        self.bindings.store(Arc::new(list));
        self.signed_in_until_ms.store(until, Ordering::Release);
        Ok(result)
    }

    /// Replaces the bindings through `edit`, which sees the current list
    /// (expired ones already dropped). Returns what `edit` returns.
    pub fn update<R>(&self, now_ms: u64, edit: impl FnOnce(&mut Vec<Binding>) -> R) -> R {
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<Binding> = self
            .bindings
            .load()
            .iter()
            .filter(|b| b.expires_at_ms > now_ms)
            .cloned()
            .collect();
        let result = edit(&mut list);
        let until = list.iter().map(|b| b.expires_at_ms).max().unwrap_or(0);
        self.bindings.store(Arc::new(list));
        self.signed_in_until_ms.store(until, Ordering::Release);
        result
    }
}

/// Per-user live state for a directory snapshot, aligned with its user
/// indices so the call path reaches a user's state without hashing.
#[derive(Clone, Debug)]
pub struct PresenceView {
    users: Vec<Arc<UserPresence>>,
    /// The state by user id: for what is not one snapshot's user (the
    /// journal's change list, connections, expiry, leases taken under an
    /// older snapshot).
    shared: Arc<Presence>,
}

impl PresenceView {
    pub fn user(&self, idx: UserIdx) -> &UserPresence {
        &self.users[idx.0 as usize]
    }

    /// The state of `user`. The local view reads by index: `user.idx` comes
    /// from the directory snapshot this view was built for (a call keeps the
    /// workspace it was routed with, so its leases go back to the same view).
    /// An index out of range falls back to the id.
    fn with<R>(&self, user: UserRef<'_>, read: impl FnOnce(&UserPresence) -> R) -> R {
        match self.users.get(user.idx.0 as usize) {
            Some(p) => read(p),
            None => read(&self.shared.user(user.id)),
        }
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

/// Why the registrations file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a registrations file: {source}")]
    Format {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    version: u32,
    users: std::collections::BTreeMap<String, Vec<Binding>>,
}

/// Every user's live state, keyed by user id so that it outlives directory
/// snapshots (a reload keeps who is signed in and who is in a call).
#[derive(Debug, Default)]
pub struct Presence {
    users: DashMap<Box<str>, Arc<UserPresence>>,
    /// Users whose bindings changed since the store last wrote them.
    changed: Mutex<HashSet<Box<str>>>,
}

impl Presence {
    pub fn new() -> Self {
        Presence::default()
    }

    /// The state of a user, created on first use.
    pub fn user(&self, id: &str) -> Arc<UserPresence> {
        if let Some(p) = self.users.get(id) {
            return Arc::clone(&p);
        }
        Arc::clone(&self.users.entry(id.into()).or_default())
    }

    /// The state of every user of `directory`, in its index order: the
    /// local implementation of [`Registrations`] and [`Occupancy`].
    pub fn view(self: &Arc<Self>, directory: &Directory) -> PresenceView {
        PresenceView {
            users: directory.users().iter().map(|u| self.user(&u.id)).collect(),
            shared: Arc::clone(self),
        }
    }

    /// Records that a user's bindings changed, so the store writes them.
    pub fn mark_changed(&self, user: &str) {
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        if !changed.contains(user) {
            changed.insert(user.into());
        }
    }

    /// The users changed since the last call, forgetting them.
    pub fn take_changed(&self) -> Vec<Box<str>> {
        let mut changed = self.changed.lock().unwrap_or_else(|e| e.into_inner());
        changed.drain().collect()
    }

    /// Every user with stored bindings (expired ones included) and the list.
    pub fn all_bindings(&self) -> Vec<(String, Arc<Vec<Binding>>)> {
        self.users
            .iter()
            .map(|e| (e.key().to_string(), e.value().snapshot()))
            .filter(|(_, b)| !b.is_empty())
            .collect()
    }

    /// Writes every binding atomically: a temporary file, fsynced, renamed
    /// over the old one, so a crash leaves either the old or the new file.
    pub fn save(&self, path: &Path) -> Result<u64, StoreError> {
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut stored = StoredFile {
            version: 1,
            users: Default::default(),
        };
        for entry in self.users.iter() {
            let bindings = entry.value().snapshot();
            if !bindings.is_empty() {
                stored
                    .users
                    .insert(entry.key().to_string(), bindings.as_ref().clone());
            }
        }
        let json = serde_json::to_vec(&stored).map_err(|source| StoreError::Format {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        let mut file = fs::File::create(&tmp).map_err(io)?;
        file.write_all(&json).map_err(io)?;
        file.sync_all().map_err(io)?;
        fs::rename(&tmp, path).map_err(io)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(json.len() as u64)
    }

    /// Loads bindings saved by [`Presence::save`], dropping expired ones. A
    /// missing file is an empty store.
    pub fn load(&self, path: &Path, now_ms: u64) -> Result<usize, StoreError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let stored: StoredFile =
            serde_json::from_slice(&bytes).map_err(|source| StoreError::Format {
                path: path.to_path_buf(),
                source,
            })?;
        let mut count = 0;
        for (user, bindings) in stored.users {
            let live: Vec<Binding> = bindings
                .into_iter()
                .filter(|b| b.restorable(now_ms))
                .collect();
            count += live.len();
            self.user(&user).update(now_ms, |list| *list = live);
        }
        Ok(count)
    }

    /// Drops every binding reached through a stream connection that closed
    /// (RFC 5626 §5.5: a failed flow removes its bindings; the device
    /// registers again when it reconnects). Returns the users who lost one,
    /// with the devices they have left.
    pub fn drop_connection(&self, connection: u64, now_ms: u64) -> Vec<(Box<str>, usize)> {
        let mut dropped = Vec::new();
        for entry in self.users.iter() {
            let on_it = |b: &Binding| match b.transport {
                BindingTransport::Tcp { connection: c }
                | BindingTransport::Tls { connection: c } => c == Some(connection),
                BindingTransport::Udp => false,
            };
            if entry.value().snapshot().iter().any(on_it) {
                let left = entry.value().update(now_ms, |list| {
                    list.retain(|b| !on_it(b));
                    list.len()
                });
                self.mark_changed(entry.key());
                dropped.push((entry.key().clone(), left));
            }
        }
        dropped
    }

    /// Drops expired bindings everywhere; returns each user who lost some,
    /// with the devices they have left.
    pub fn expire(&self, now_ms: u64) -> Vec<(Box<str>, usize)> {
        let mut changed = Vec::new();
        for entry in self.users.iter() {
            let user = entry.value();
            let stale = user.snapshot().iter().any(|b| b.expires_at_ms <= now_ms);
            if stale {
                let left = user.update(now_ms, |list| list.len());
                changed.push((entry.key().clone(), left));
            }
        }
        changed
    }

    /// Drops call leases that lapsed without being released; returns each
    /// user who lost some, with the calls they are left in.
    pub fn expire_leases(&self, now_ms: u64) -> Vec<(Box<str>, u32)> {
        self.users
            .iter()
            .filter_map(|e| {
                let lapsed = e.value().expire_leases(now_ms);
                (lapsed > 0).then(|| (e.key().clone(), e.value().active_calls()))
            })
            .collect()
    }

    /// Total live bindings (for metrics and tests).
    pub fn binding_count(&self, now_ms: u64) -> usize {
        self.users
            .iter()
            .map(|e| {
                e.value()
                    .snapshot()
                    .iter()
                    .filter(|b| b.expires_at_ms > now_ms)
                    .count()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn binding(contact: &str, expires_at_ms: u64) -> Binding {
        Binding {
            contact: contact.into(),
            expires_at_ms,
            call_id: "c".into(),
            cseq: 1,
            source: "127.0.0.1:5080".parse().unwrap(),
            transport: BindingTransport::Udp,
            instance: None,
            reg_id: None,
        }
    }

    #[test]
    fn signed_in_follows_the_latest_binding() {
        let p = Presence::new();
        let alice = p.user("alice");
        assert!(!alice.is_signed_in(0));
        alice.update(1_000, |l| {
            l.push(binding("sip:a@127.0.0.1:1", 5_000));
            l.push(binding("sip:a@127.0.0.1:2", 9_000));
        });
        assert!(alice.is_signed_in(8_999));
        assert!(!alice.is_signed_in(9_000));
        assert_eq!(alice.bindings(6_000).len(), 1);
    }

    fn alice_view() -> (Arc<Presence>, PresenceView) {
        let spec = directory::WorkspaceSpec {
            domain: "t".into(),
            seats: 1,
            users: vec![directory::UserSpec {
                id: "alice".into(),
                name: "Alice".into(),
                password: "pw".into(),
                ..directory::UserSpec::default()
            }],
            ..directory::WorkspaceSpec::default()
        };
        let dir = Directory::from_workspace(spec, Path::new("t")).unwrap();
        let p = Arc::new(Presence::new());
        let view = p.view(&dir);
        (p, view)
    }

    const ALICE: UserRef<'static> = UserRef {
        idx: UserIdx(0),
        id: "alice",
    };

    #[test]
    fn a_lease_counts_once_and_a_second_release_changes_nothing() {
        let (_, view) = alice_view();
        let first = view.take(ALICE, 1, 10_000);
        assert_eq!(first.active_after, 1);
        let second = view.take(ALICE, 2, 10_000);
        assert_eq!(second.active_after, 2);
        assert_eq!(view.release(&first), 1);
        assert_eq!(view.release(&first), 1, "released twice: still one call");
        assert_eq!(view.release(&second), 0);
        assert_eq!(view.release(&second), 0, "never below zero");
    }

    #[test]
    fn a_lease_nobody_releases_lapses_at_its_expiry() {
        let (p, view) = alice_view();
        view.take(ALICE, 7, 5_000);
        view.take(ALICE, 8, 9_000);
        assert!(p.expire_leases(4_999).is_empty());
        assert_eq!(view.active_calls(ALICE), 2);
        assert_eq!(view.expire_leases(5_000), vec![("alice".into(), 1)]);
        assert_eq!(view.active_calls(ALICE), 1);
    }

    #[test]
    fn a_register_is_applied_whole_or_not_at_all() {
        let (p, view) = alice_view();
        let register = |cseq, change| Register {
            call_id: "reg".into(),
            cseq,
            source: "127.0.0.1:5080".parse().unwrap(),
            transport: BindingTransport::Udp,
            max_bindings: 1,
            change,
        };
        let contact = |uri: &str, expires_secs| ContactUpdate {
            uri: uri.into(),
            instance: None,
            reg_id: None,
            expires_secs,
        };
        let one = RegisterChange::Contacts(vec![contact("sip:a@127.0.0.1:1", 60)]);
        let bound = view.bind(ALICE, &register(1, one.clone()), 0).unwrap();
        assert_eq!((bound.bindings.len(), bound.devices_changed), (1, true));
        assert_eq!(p.take_changed().len(), 1);
        assert_eq!(
            view.bind(ALICE, &register(1, one), 0),
            Err(BindError::OutOfOrder)
        );
        // A refresh and a second device in one REGISTER: the second is one
        // too many, so the refresh does not happen either.
        let two = RegisterChange::Contacts(vec![
            contact("sip:a@127.0.0.1:1", 3600),
            contact("sip:a@127.0.0.1:2", 60),
        ]);
        assert_eq!(
            view.bind(ALICE, &register(2, two), 0),
            Err(BindError::TooMany)
        );
        assert_eq!(view.lookup(ALICE, 0)[0].expires_at_ms, 60_000);
        assert!(p.take_changed().is_empty());
        // A refresh changes no device.
        let refresh = RegisterChange::Contacts(vec![contact("sip:a@127.0.0.1:1", 120)]);
        assert!(
            !view
                .bind(ALICE, &register(3, refresh), 0)
                .unwrap()
                .devices_changed
        );
        let gone = view
            .bind(ALICE, &register(4, RegisterChange::RemoveAll), 0)
            .unwrap();
        assert!(gone.bindings.is_empty() && gone.devices_changed);
        assert!(!view.is_signed_in(ALICE, 0));
    }

    #[test]
    fn bindings_survive_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registrations.json");
        let p = Presence::new();
        p.user("alice")
            .update(0, |l| l.push(binding("sip:a@127.0.0.1:1", 10_000)));
        p.user("bob")
            .update(0, |l| l.push(binding("sip:b@127.0.0.1:1", 500)));
        assert!(p.save(&path).unwrap() > 0);

        let restored = Presence::new();
        assert_eq!(restored.load(&path, 1_000).unwrap(), 1);
        assert!(restored.user("alice").is_signed_in(1_000));
        assert!(!restored.user("bob").is_signed_in(1_000));
        assert_eq!(
            Presence::new()
                .load(&dir.path().join("none.json"), 0)
                .unwrap(),
            0
        );
    }

    #[test]
    fn expire_drops_lapsed_bindings() {
        let p = Presence::new();
        p.user("a").update(0, |l| l.push(binding("sip:a@h", 100)));
        assert_eq!(p.binding_count(50), 1);
        assert_eq!(p.expire(100), vec![("a".into(), 0)]);
        assert_eq!(p.binding_count(0), 0);
    }
}
