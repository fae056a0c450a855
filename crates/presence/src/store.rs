//! Durable registrations: a snapshot plus an append-only journal.
//!
//! Writing every binding on every change would cost the whole table per
//! REGISTER; the journal costs one line per changed user instead. A line
//! holds the user's complete binding list, so replay is "last line per user
//! wins" and a line cut short by a crash is simply ignored. At open, and when
//! the journal outgrows the snapshot, the two are folded into a new snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Binding, Presence, StoreError};

const SNAPSHOT: &str = "registrations.json";
const JOURNAL: &str = "registrations.journal";
/// The journal is folded into the snapshot once it passes this size and is
/// larger than the snapshot.
const MIN_COMPACT_BYTES: u64 = 8 << 20;

#[derive(Serialize, Deserialize)]
struct JournalLine {
    user: String,
    bindings: Vec<Binding>,
}

/// The registrations files of one data directory.
#[derive(Debug)]
pub struct RegistrationStore {
    snapshot: PathBuf,
    journal_path: PathBuf,
    journal: File,
    journal_bytes: u64,
    snapshot_bytes: u64,
}

impl RegistrationStore {
    /// Loads the snapshot and replays the journal into `presence` (expired
    /// bindings dropped), then compacts. Returns the store and the number of
    /// live bindings restored.
    pub fn open(
        dir: &Path,
        presence: &Presence,
        now_ms: u64,
    ) -> Result<(RegistrationStore, usize), StoreError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        fs::create_dir_all(dir).map_err(io(dir))?;
        let snapshot = dir.join(SNAPSHOT);
        let journal_path = dir.join(JOURNAL);
        Self::read(dir, presence, now_ms)?;
        presence.take_changed();
        let restored = presence.binding_count(now_ms);
        let snapshot_bytes = presence.save(&snapshot)?;
        // Append mode: after `compact` truncates the file, writes must land
        // at the new end, not at the old offset (which would leave a run of
        // NUL bytes that replay cannot read past).
        let journal = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)
            .map_err(io(&journal_path))?;
        journal.set_len(0).map_err(io(&journal_path))?;
        Ok((
            RegistrationStore {
                snapshot,
                journal_path,
                journal,
                journal_bytes: 0,
                snapshot_bytes,
            },
            restored,
        ))
    }

    /// Loads the snapshot and replays the journal into `presence`, writing
    /// nothing (for a reader beside a running daemon, such as `explain`).
    /// Returns the number of live bindings.
    pub fn read(dir: &Path, presence: &Presence, now_ms: u64) -> Result<usize, StoreError> {
        let snapshot = dir.join(SNAPSHOT);
        let journal_path = dir.join(JOURNAL);
        presence.load(&snapshot, now_ms)?;
        match File::open(&journal_path) {
            Ok(file) => {
                for line in BufReader::new(file).lines() {
                    let Ok(line) = line else { break };
                    // A line cut short by a crash ends the replay: nothing after it was acknowledged.
                    let Ok(entry) = serde_json::from_str::<JournalLine>(&line) else {
                        break;
                    };
                    let live: Vec<Binding> = entry
                        .bindings
                        .into_iter()
                        .filter(|b| b.restorable(now_ms))
                        .collect();
                    presence
                        .user(&entry.user)
                        .update(now_ms, |list| *list = live);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StoreError::Io {
                    path: journal_path,
                    source,
                })
            }
        }
        Ok(presence.binding_count(now_ms))
    }

    /// Appends the users changed since the last flush and syncs the journal.
    /// Returns how many users were written, and the error of a compaction
    /// that failed after them (they are durable all the same: the journal
    /// keeps them until a compaction succeeds).
    pub fn flush(
        &mut self,
        presence: &Presence,
    ) -> Result<(usize, Option<StoreError>), StoreError> {
        let changed = presence.take_changed();
        if changed.is_empty() {
            return Ok((0, None));
        }
        let mut out = Vec::with_capacity(changed.len() * 256);
        for user in &changed {
            let line = JournalLine {
                user: user.to_string(),
                bindings: presence.user(user).snapshot().as_ref().clone(),
            };
            serde_json::to_writer(&mut out, &line).map_err(|source| StoreError::Format {
                path: self.journal_path.clone(),
                source,
            })?;
            out.push(b'\n');
        }
        let written = self
            .journal
            .write_all(&out)
            .and_then(|()| self.journal.sync_data());
        if let Err(source) = written {
            // Not durable yet: keep them for the next attempt, and cut off
            // what part of this write landed (a torn line that the next
            // write would extend is a line replay cannot read, and replay
            // stops there). Append mode: later writes go to the new end.
            for user in &changed {
                presence.mark_changed(user);
            }
            let _ = self.journal.set_len(self.journal_bytes);
            return Err(StoreError::Io {
                path: self.journal_path.clone(),
                source,
            });
        }
        self.journal_bytes += out.len() as u64;
        let mut compaction = None;
        if self.journal_bytes > MIN_COMPACT_BYTES.max(self.snapshot_bytes) {
            compaction = self.compact(presence).err();
        }
        Ok((changed.len(), compaction))
    }

    /// Writes a full snapshot and empties the journal.
    pub fn compact(&mut self, presence: &Presence) -> Result<(), StoreError> {
        self.snapshot_bytes = presence.save(&self.snapshot)?;
        let io = |source| StoreError::Io {
            path: self.journal_path.clone(),
            source,
        };
        self.journal.set_len(0).map_err(io)?;
        self.journal.sync_all().map_err(io)?;
        self.journal_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::BindingTransport;

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
    fn changes_after_a_compaction_replay_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let p = Presence::new();
        let (mut store, _) = RegistrationStore::open(dir.path(), &p, 0).unwrap();
        p.user("alice")
            .update(0, |l| l.push(binding("sip:a@h:1", 10_000)));
        p.mark_changed("alice");
        store.flush(&p).unwrap();
        store.compact(&p).unwrap();
        p.user("bob")
            .update(0, |l| l.push(binding("sip:b@h:1", 10_000)));
        p.mark_changed("bob");
        store.flush(&p).unwrap();
        // A crash here: no compaction at shutdown.
        drop(store);
        let journal = fs::read(dir.path().join(JOURNAL)).unwrap();
        assert!(!journal.contains(&0), "no hole left by the truncation");
        let restored = Presence::new();
        let (_, count) = RegistrationStore::open(dir.path(), &restored, 1_000).unwrap();
        assert_eq!(count, 2);
        assert!(restored.user("bob").is_signed_in(1_000));
    }

    #[test]
    fn journal_replays_over_the_snapshot_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = Presence::new();
        let (mut store, restored) = RegistrationStore::open(dir.path(), &p, 0).unwrap();
        assert_eq!(restored, 0);
        p.user("alice")
            .update(0, |l| l.push(binding("sip:a@h:1", 10_000)));
        p.mark_changed("alice");
        p.user("bob")
            .update(0, |l| l.push(binding("sip:b@h:1", 10_000)));
        p.mark_changed("bob");
        assert_eq!(store.flush(&p).unwrap().0, 2);
        // bob signs out; then a crash tears the next line.
        p.user("bob").update(0, |l| l.clear());
        p.mark_changed("bob");
        store.flush(&p).unwrap();
        drop(store);
        let mut journal = OpenOptions::new()
            .append(true)
            .open(dir.path().join(JOURNAL))
            .unwrap();
        journal.write_all(b"{\"user\":\"carol\",\"bind").unwrap();

        let restored = Presence::new();
        let (_, count) = RegistrationStore::open(dir.path(), &restored, 1_000).unwrap();
        assert_eq!(count, 1);
        assert!(restored.user("alice").is_signed_in(1_000));
        assert!(!restored.user("bob").is_signed_in(1_000));
        assert!(!restored.user("carol").is_signed_in(1_000));
        // Opening compacted: the journal is empty, the snapshot holds alice.
        assert_eq!(fs::metadata(dir.path().join(JOURNAL)).unwrap().len(), 0);
        let again = Presence::new();
        RegistrationStore::open(dir.path(), &again, 1_000).unwrap();
        assert!(again.user("alice").is_signed_in(1_000));
    }

    #[test]
    fn a_binding_made_over_tls_does_not_outlive_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let p = Presence::new();
        let (mut store, _) = RegistrationStore::open(dir.path(), &p, 0).unwrap();
        p.user("alice").update(0, |l| {
            let mut tls = binding("sips:a@h:1", 10_000);
            tls.transport = BindingTransport::Tls {
                connection: Some(3),
            };
            l.push(tls);
            l.push(binding("sip:a@h:2", 10_000));
        });
        p.mark_changed("alice");
        store.flush(&p).unwrap();
        store.compact(&p).unwrap();
        drop(store);
        // The snapshot and, after a crash, the journal: only the UDP one.
        let restored = Presence::new();
        let (_, count) = RegistrationStore::open(dir.path(), &restored, 1_000).unwrap();
        assert_eq!(count, 1);
        let left = restored.user("alice").snapshot();
        assert_eq!(left[0].contact, "sip:a@h:2");
    }
}
