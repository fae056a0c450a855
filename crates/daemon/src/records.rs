//! Call records: one row per call in SQLite (`calls.db` in the data
//! directory, WAL), written by a thread of its own from the engine's
//! `CallEnded` events, and read back for `GET /api/v1/calls/history`.
//!
//! The writer batches: it commits what arrived within a second (or every
//! 1,000 records) in one transaction, so a crash loses at most the calls
//! that ended in the last second, and SQLite's journal never leaves a
//! corrupt file. A call answered is kept in `calls_up` until it ends; what
//! is still there at the next start was up when the process died, and is
//! recorded with outcome `interrupted`. (A commit costs more than an insert: batching keeps the
//! writer's CPU per call small at every rate.) It must not be on the call path: the engine task only pushes a
//! record into a bounded queue and never waits.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use engine::{CallOutcome, CallRecord, LegOutcome, Party};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

/// Records waiting for the writer; past this, records are dropped (and
/// counted) rather than slowing the engine.
const QUEUE: usize = 65_536;
const BATCH_INTERVAL: Duration = Duration::from_secs(1);
const BATCH_MAX: usize = 1_000;

/// The columns of `calls` and `calls_up` that a record fills, in order (a
/// macro, so that the statements built from it are literals).
macro_rules! columns {
    () => {
        "call_id, direction, caller, dialled, number, started, answered, ended, duration_ms,
         talk_ms, outcome, status, answered_by, answered_device, hung_up_by, attempts, skipped,
         placed_by"
    };
}

pub const FILE_NAME: &str = "calls.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    call_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    caller TEXT NOT NULL,
    dialled TEXT NOT NULL,
    number TEXT,
    started TEXT NOT NULL,
    answered TEXT,
    ended TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    talk_ms INTEGER,
    outcome TEXT NOT NULL,
    status INTEGER NOT NULL,
    answered_by TEXT,
    answered_device TEXT,
    hung_up_by TEXT,
    attempts TEXT NOT NULL,
    skipped TEXT NOT NULL,
    placed_by TEXT
);
CREATE INDEX IF NOT EXISTS calls_by_end ON calls (ended);
CREATE INDEX IF NOT EXISTS calls_by_number ON calls (number, ended);
";

/// Opens (or creates) the database with the schema, in WAL mode.
pub fn open(data_dir: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open(data_dir.join(FILE_NAME))?;
    db.busy_timeout(Duration::from_secs(5))?;
    db.pragma_update(None, "journal_mode", "WAL")?;
    // In WAL mode NORMAL never corrupts; a power cut may lose the last commits.
    db.pragma_update(None, "synchronous", "NORMAL")?;
    db.execute_batch(SCHEMA)?;
    // Files from before outbound calls lack the column of who placed one
    // (another process may add it at the same moment: that is fine too).
    let has_placed_by = db
        .prepare("SELECT 1 FROM pragma_table_info('calls') WHERE name = 'placed_by'")?
        .exists([])?;
    if !has_placed_by {
        if let Err(e) = db.execute_batch("ALTER TABLE calls ADD COLUMN placed_by TEXT") {
            if !e.to_string().contains("duplicate column") {
                return Err(e);
            }
        }
    }
    // The calls up now: the same columns as `calls` (copied from it, so the
    // two never drift apart), rows named by their rowid.
    db.execute_batch("CREATE TABLE IF NOT EXISTS calls_up AS SELECT * FROM calls WHERE 0")?;
    Ok(db)
}

/// What the writer is given.
enum Entry {
    /// A call ended: its record.
    Ended(Box<CallRecord>),
    /// A call was answered: kept until it ends.
    Up(Box<CallRecord>),
}

/// The sending end the engine task holds.
#[derive(Clone)]
pub struct RecordSink {
    queue: mpsc::SyncSender<Entry>,
}

impl RecordSink {
    /// Queues a record for the writer; `false` when it had to be dropped.
    pub fn push(&self, record: Box<CallRecord>) -> bool {
        self.queue.try_send(Entry::Ended(record)).is_ok()
    }

    /// Queues a call just answered (its record so far); `false` when it had
    /// to be dropped.
    pub fn push_up(&self, record: Box<CallRecord>) -> bool {
        self.queue.try_send(Entry::Up(record)).is_ok()
    }
}

/// Starts the writer thread on `data_dir`; it stops once every sink is
/// dropped and the queue is written.
pub fn start_writer(data_dir: &Path) -> anyhow::Result<(RecordSink, std::thread::JoinHandle<()>)> {
    let mut db = open(data_dir).map_err(|e| {
        anyhow::anyhow!(
            "opening the call records {}: {e}",
            data_dir.join(FILE_NAME).display()
        )
    })?;
    let interrupted = record_interrupted(&mut db, crate::clock::wall()).map_err(|e| {
        anyhow::anyhow!(
            "recording the calls a crash interrupted in {}: {e}",
            data_dir.join(FILE_NAME).display()
        )
    })?;
    if interrupted > 0 {
        tracing::warn!(
            calls = interrupted,
            "calls that were up when the daemon last stopped without ending them recorded as interrupted"
        );
    }
    let (tx, rx) = mpsc::sync_channel::<Entry>(QUEUE);
    let handle = std::thread::Builder::new()
        .name("call-records".into())
        .spawn(move || write_loop(db, rx))?;
    Ok((RecordSink { queue: tx }, handle))
}

/// Moves every call left in `calls_up` (up when the process died) into
/// `calls` with outcome `interrupted`, ended at `now` (when the crash came
/// is not known; this is when it was noticed). Returns how many.
fn record_interrupted(db: &mut Connection, now: jiff::Timestamp) -> rusqlite::Result<usize> {
    let tx = db.transaction()?;
    let ended = now.to_string();
    let ms_to_now = |from: &str| {
        from.parse::<jiff::Timestamp>()
            .map(|t| now.as_millisecond().saturating_sub(t.as_millisecond()))
            .unwrap_or(0)
    };
    let left: Vec<(i64, String, Option<String>)> = {
        let mut statement = tx.prepare("SELECT rowid, started, answered FROM calls_up")?;
        let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    {
        let mut interrupted = tx.prepare(concat!(
            "INSERT INTO calls (",
            columns!(),
            ") SELECT call_id, direction, caller, dialled, number, started, answered, ?1, ?2, \
             ?3, 'interrupted', status, answered_by, answered_device, NULL, attempts, skipped, \
             placed_by FROM calls_up WHERE rowid = ?4"
        ))?;
        for (id, started, answered) in &left {
            interrupted.execute(params![
                ended,
                ms_to_now(started),
                answered.as_deref().map(ms_to_now),
                id
            ])?;
        }
    }
    tx.execute("DELETE FROM calls_up", [])?;
    tx.commit()?;
    Ok(left.len())
}

/// Where a record goes.
#[derive(Clone, Copy)]
enum Table {
    /// Calls that ended.
    Calls,
    /// Calls answered and not ended yet.
    CallsUp,
}

impl Table {
    fn insert(self) -> &'static str {
        macro_rules! insert_into {
            ($table:literal) => {
                concat!(
                    "INSERT INTO ",
                    $table,
                    " (",
                    columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                     ?15, ?16, ?17, ?18)"
                )
            };
        }
        match self {
            Table::Calls => insert_into!("calls"),
            Table::CallsUp => insert_into!("calls_up"),
        }
    }
}

fn write_loop(mut db: Connection, rx: mpsc::Receiver<Entry>) {
    let mut batch: Vec<Entry> = Vec::new();
    let mut up = CallsUp::default();
    let mut open = true;
    while open {
        // Wait for the first record of a batch, then gather for up to a
        // second from it.
        match rx.recv() {
            Ok(record) => batch.push(record),
            Err(_) => break,
        }
        let deadline = crate::clock::now() + BATCH_INTERVAL;
        while batch.len() < BATCH_MAX {
            let left = deadline.saturating_duration_since(crate::clock::now());
            if left.is_zero() {
                break;
            }
            match rx.recv_timeout(left) {
                Ok(record) => batch.push(record),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        if let Err(e) = insert(&mut db, &batch, &mut up) {
            tracing::error!(error = %e, records = batch.len(), "writing call records");
        }
        batch.clear();
    }
}

/// The rows of `calls_up` this writer made, by Call-ID.
#[derive(Default)]
struct CallsUp(std::collections::HashMap<String, i64>);

/// Writes one batch in one transaction, in order. The calls answered are
/// written to `calls_up` at the end, as the batch leaves them: a call
/// answered and ended within the batch never touches it (the commit is
/// atomic, so a crash loses both or neither), and a call answered twice
/// keeps its last record only.
fn insert(db: &mut Connection, batch: &[Entry], up: &mut CallsUp) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    let mut pending: std::collections::HashMap<&str, &CallRecord> =
        std::collections::HashMap::new();
    let mut gone = Vec::new();
    let forget = |call_id: &str, gone: &mut Vec<String>| -> rusqlite::Result<()> {
        if let Some(&row) = up.0.get(call_id) {
            tx.prepare_cached("DELETE FROM calls_up WHERE rowid = ?1")?
                .execute(params![row])?;
            gone.push(call_id.to_string());
        }
        Ok(())
    };
    for entry in batch {
        match entry {
            Entry::Ended(record) => {
                insert_record(&tx, Table::Calls, record)?;
                pending.remove(record.call_id.as_str());
                forget(&record.call_id, &mut gone)?;
            }
            Entry::Up(record) => {
                forget(&record.call_id, &mut gone)?;
                pending.insert(&record.call_id, record);
            }
        }
    }
    let mut made = Vec::with_capacity(pending.len());
    for (call_id, record) in pending {
        insert_record(&tx, Table::CallsUp, record)?;
        made.push((call_id.to_string(), tx.last_insert_rowid()));
    }
    tx.commit()?;
    // Only what was committed is remembered.
    for call_id in gone {
        up.0.remove(&call_id);
    }
    up.0.extend(made);
    Ok(())
}

/// Inserts `record` into `table`. The lists are
/// serialised straight from the record (building JSON values first cost
/// more than the insert itself).
fn insert_record(
    tx: &rusqlite::Transaction<'_>,
    table: Table,
    record: &CallRecord,
) -> rusqlite::Result<()> {
    let to_sql = |e: serde_json::Error| rusqlite::Error::ToSqlConversionFailure(Box::new(e));
    let attempts = serde_json::to_string(&attempts(record)).map_err(to_sql)?;
    let skipped = serde_json::to_string(&skipped(record)).map_err(to_sql)?;
    let row = Row::without_lists(record);
    let mut statement = tx.prepare_cached(table.insert())?;
    statement.execute(params![
        row.call_id,
        row.direction,
        row.caller,
        row.dialled,
        row.number,
        row.started,
        row.answered,
        row.ended,
        row.duration_ms,
        row.talk_ms,
        row.outcome,
        row.status,
        row.answered_by,
        row.answered_device,
        row.hung_up_by,
        attempts,
        skipped,
        row.placed_by,
    ])?;
    Ok(())
}

/// One call as stored and as the API shows it.
#[derive(Clone, Debug, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Row {
    pub call_id: String,
    /// `inbound` (from a trunk), `outbound` (a user calling out through the
    /// trunk) or `internal` (a user calling a colleague or one of the
    /// workspace's numbers).
    pub direction: String,
    /// The user who placed an outbound or internal call.
    pub placed_by: Option<String>,
    pub caller: String,
    pub dialled: String,
    /// The number dialled, when it is one of the workspace's; for an
    /// outbound call, the caller's line shown as caller ID.
    pub number: Option<String>,
    /// RFC 3339, UTC.
    pub started: String,
    pub answered: Option<String>,
    pub ended: String,
    pub duration_ms: i64,
    /// From answer to end.
    pub talk_ms: Option<i64>,
    /// `answered`, `voicemail`, `no_answer`, `busy`, `declined`,
    /// `caller_cancelled`, `rejected`, `forwarded`, `abandoned` (hung up in
    /// a menu or during a message), `not_acknowledged`, `interrupted`
    /// (answered and still up when the daemon died; `ended` is when the
    /// next start noticed).
    pub outcome: String,
    /// The final status the caller got.
    pub status: i64,
    pub answered_by: Option<String>,
    pub answered_device: Option<String>,
    /// `caller` or `callee`, for answered calls.
    pub hung_up_by: Option<String>,
    /// Every ring attempt: `{"user", "device", "result", "status"}`.
    #[schema(value_type = Vec<Object>)]
    pub attempts: serde_json::Value,
    /// Every member who did not ring: `{"user", "gate"}`.
    #[schema(value_type = Vec<Object>)]
    pub skipped: serde_json::Value,
}

impl Row {
    pub fn of(record: &CallRecord) -> Row {
        let mut row = Row::without_lists(record);
        row.attempts = serde_json::to_value(attempts(record)).unwrap_or_default();
        row.skipped = serde_json::to_value(skipped(record)).unwrap_or_default();
        row
    }

    /// Every column but `attempts` and `skipped` (left null).
    fn without_lists(record: &CallRecord) -> Row {
        let answered_attempt = record.answered_by.and_then(|i| record.rang.get(i));
        let ms = |from: jiff::Timestamp, to: jiff::Timestamp| {
            to.as_millisecond().saturating_sub(from.as_millisecond())
        };
        Row {
            call_id: record.call_id.clone(),
            direction: record.direction.as_str().into(),
            placed_by: record.caller_user.clone(),
            caller: record.caller.clone(),
            dialled: record.dialled.clone(),
            number: record.number.clone(),
            started: record.started.to_string(),
            answered: record.answered.map(|t| t.to_string()),
            ended: record.ended.to_string(),
            duration_ms: ms(record.started, record.ended),
            talk_ms: record.answered.map(|a| ms(a, record.ended)),
            outcome: outcome(record).into(),
            status: i64::from(record.outcome.caller_status()),
            answered_by: answered_attempt.map(|a| a.user.clone()),
            answered_device: answered_attempt.map(|a| a.device.clone()),
            hung_up_by: match record.outcome {
                CallOutcome::Completed {
                    hung_up_by: Party::Caller,
                } => Some("caller".into()),
                CallOutcome::Completed {
                    hung_up_by: Party::Callee,
                } => Some("callee".into()),
                _ => None,
            },
            attempts: serde_json::Value::Null,
            skipped: serde_json::Value::Null,
        }
    }
}

/// One ring attempt as stored and shown.
#[derive(Serialize)]
struct Attempt<'a> {
    user: &'a str,
    device: &'a str,
    result: &'static str,
    status: Option<u16>,
}

/// One member who did not ring, as stored and shown.
#[derive(Serialize)]
struct SkippedMember<'a> {
    user: &'a str,
    gate: &'static str,
}

fn attempts(record: &CallRecord) -> Vec<Attempt<'_>> {
    record
        .rang
        .iter()
        .map(|a| {
            let (result, status) = leg_result(a.outcome);
            Attempt {
                user: &a.user,
                device: &a.device,
                result,
                status,
            }
        })
        .collect()
}

fn skipped(record: &CallRecord) -> Vec<SkippedMember<'_>> {
    record
        .skipped
        .iter()
        .map(|s| SkippedMember {
            user: &s.user,
            gate: s.gate.as_str(),
        })
        .collect()
}

/// The outcome's stable name.
pub fn outcome(record: &CallRecord) -> &'static str {
    let answered_by = record.answered_by.and_then(|i| record.rang.get(i));
    let declined = record
        .rang
        .iter()
        .any(|a| matches!(a.outcome, LegOutcome::Refused(603 | 600)));
    match record.outcome {
        CallOutcome::Completed { .. } | CallOutcome::MaxDuration | CallOutcome::Shutdown => {
            match answered_by {
                // A user's call out is answered by the trunk; any other call
                // the trunk answered was forwarded.
                Some(a)
                    if a.user.starts_with("trunk:")
                        && record.direction != engine::Direction::Outbound =>
                {
                    "forwarded"
                }
                Some(_) => "answered",
                None if record.voicemail => "voicemail",
                None => "abandoned",
            }
        }
        CallOutcome::NotAcknowledged => "not_acknowledged",
        CallOutcome::Interrupted => "interrupted",
        CallOutcome::Rejected { status: 486 } | CallOutcome::Failed { status: 486 } => "busy",
        CallOutcome::Rejected { .. } => "rejected",
        CallOutcome::CallerCancelled if record.voicemail => "voicemail",
        CallOutcome::CallerCancelled => "caller_cancelled",
        CallOutcome::NoAnswer { .. } => "no_answer",
        CallOutcome::Failed { .. } if declined => "declined",
        CallOutcome::Failed { .. } => "no_answer",
    }
}

fn leg_result(outcome: LegOutcome) -> (&'static str, Option<u16>) {
    match outcome {
        LegOutcome::Answered => ("answered", Some(200)),
        LegOutcome::Refused(486) => ("busy", Some(486)),
        LegOutcome::Refused(s @ (603 | 600)) => ("declined", Some(s)),
        LegOutcome::Refused(s) => ("failed", Some(s)),
        LegOutcome::Cancelled => ("cancelled", None),
        LegOutcome::AnsweredTooLate => ("answered_too_late", Some(200)),
        LegOutcome::NoResponse => ("no_response", None),
        LegOutcome::Redirected { status, .. } => ("redirected", Some(status)),
    }
}

/// What `GET /api/v1/calls/history` filters on.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Calls that ended at or after this RFC 3339 instant.
    pub since: Option<jiff::Timestamp>,
    pub number: Option<String>,
    /// Calls this user placed, answered, was rung for, or was skipped on.
    pub user: Option<String>,
    pub limit: usize,
}

/// The newest calls first.
pub fn history(data_dir: &Path, query: &Query) -> rusqlite::Result<Vec<Row>> {
    let db = open(data_dir)?;
    let mut sql = String::from(
        "SELECT call_id, direction, caller, dialled, number, started, answered, ended,
            duration_ms, talk_ms, outcome, status, answered_by, answered_device, hung_up_by,
            attempts, skipped, placed_by FROM calls WHERE 1 = 1",
    );
    let mut args: Vec<String> = Vec::new();
    if let Some(since) = query.since {
        // Stored as RFC 3339 in UTC: the text orders as the instants do
        // (jiff prints whole seconds without a fraction, so compare as time).
        sql.push_str(" AND julianday(ended) >= julianday(?)");
        args.push(since.to_string());
    }
    if let Some(number) = &query.number {
        sql.push_str(" AND number = ?");
        args.push(number.clone());
    }
    if let Some(user) = &query.user {
        sql.push_str(
            " AND (answered_by = ? OR placed_by = ?
                OR EXISTS (SELECT 1 FROM json_each(calls.attempts) WHERE json_extract(value, '$.user') = ?)
                OR EXISTS (SELECT 1 FROM json_each(calls.skipped) WHERE json_extract(value, '$.user') = ?))",
        );
        args.extend([user.clone(), user.clone(), user.clone(), user.clone()]);
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?");
    args.push(query.limit.to_string());
    let mut statement = db.prepare(&sql)?;
    let rows = statement.query_map(rusqlite::params_from_iter(args.iter()), |r| {
        let json = |i: usize| -> rusqlite::Result<serde_json::Value> {
            let text: String = r.get(i)?;
            Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
        };
        Ok(Row {
            call_id: r.get(0)?,
            direction: r.get(1)?,
            caller: r.get(2)?,
            dialled: r.get(3)?,
            number: r.get(4)?,
            started: r.get(5)?,
            answered: r.get(6)?,
            ended: r.get(7)?,
            duration_ms: r.get(8)?,
            talk_ms: r.get(9)?,
            outcome: r.get(10)?,
            status: r.get(11)?,
            answered_by: r.get(12)?,
            answered_device: r.get(13)?,
            hung_up_by: r.get(14)?,
            attempts: json(15)?,
            skipped: json(16)?,
            placed_by: r.get(17)?,
        })
    })?;
    rows.collect()
}

/// How many records the file holds (for tests and `switchboard calls`).
pub fn count(data_dir: &Path) -> rusqlite::Result<u64> {
    let db = open(data_dir)?;
    db.query_row("SELECT COUNT(*) FROM calls", [], |r| r.get::<_, i64>(0))
        .optional()
        .map(|n| n.unwrap_or(0).max(0) as u64)
}

/// The database path, for messages.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use engine::{RingAttempt, Skipped};
    use routing::Gate;

    fn record(call_id: &str, outcome: CallOutcome) -> CallRecord {
        let t = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        CallRecord {
            call_id: call_id.into(),
            direction: engine::Direction::Inbound,
            caller_user: None,
            dialled: "+15550100".into(),
            number: Some("+15550100".into()),
            caller: "sip:+33612345678@127.0.0.1".into(),
            started: t("2026-12-01T10:00:00Z"),
            answered: Some(t("2026-12-01T10:00:05Z")),
            ended: t("2026-12-01T10:01:05Z"),
            rang: vec![
                RingAttempt {
                    user: "alice".into(),
                    device: "sip:alice@127.0.0.1:5062".into(),
                    outcome: LegOutcome::Answered,
                },
                RingAttempt {
                    user: "bob".into(),
                    device: "sip:bob@127.0.0.1:5063".into(),
                    outcome: LegOutcome::Cancelled,
                },
            ],
            answered_by: Some(0),
            skipped: vec![Skipped {
                user: "carol".into(),
                gate: Gate::NotSignedIn,
            }],
            voicemail: false,
            outcome,
        }
    }

    #[test]
    fn a_call_up_when_the_process_died_is_recorded_as_interrupted_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, writer) = start_writer(dir.path()).unwrap();
        let up = |id: &str| {
            let mut r = record(id, CallOutcome::Interrupted);
            r.ended = r.answered.unwrap();
            Box::new(r)
        };
        let answered = CallOutcome::Completed {
            hung_up_by: Party::Caller,
        };
        assert!(sink.push_up(up("left-up")));
        assert!(sink.push_up(up("ended")));
        // A call answered twice (a menu, then a user) within one batch.
        assert!(sink.push_up(up("twice")));
        assert!(sink.push_up(up("twice")));
        // A call answered and ended within one batch.
        assert!(sink.push_up(up("short")));
        assert!(sink.push(Box::new(record("short", answered))));
        // The writer commits within a second; this one ends after that.
        std::thread::sleep(Duration::from_millis(1300));
        assert!(sink.push(Box::new(record("ended", answered))));
        // The process dies: nothing ends "left-up" (the writer's last commit
        // is all there is).
        drop(sink);
        writer.join().unwrap();
        let all = |dir: &Path| {
            history(
                dir,
                &Query {
                    limit: 10,
                    ..Query::default()
                },
            )
            .unwrap()
        };
        assert_eq!(all(dir.path()).len(), 2, "only the calls that ended");

        let (sink, writer) = start_writer(dir.path()).unwrap();
        let rows = all(dir.path());
        assert_eq!(rows.len(), 4);
        assert_eq!(
            rows.iter().filter(|r| r.call_id == "twice").count(),
            1,
            "a call answered twice is interrupted once"
        );
        let interrupted = rows.iter().find(|r| r.call_id == "left-up").unwrap();
        assert_eq!(interrupted.outcome, "interrupted");
        assert_eq!(interrupted.status, 200);
        assert_eq!(interrupted.answered_by.as_deref(), Some("alice"));
        assert!(interrupted.talk_ms.unwrap() > 60_000, "ended when noticed");
        for id in ["ended", "short"] {
            let rows: Vec<_> = rows.iter().filter(|r| r.call_id == id).collect();
            assert_eq!(rows.len(), 1, "a call that ended is not recorded twice");
            assert_eq!(rows[0].outcome, "answered");
        }
        drop(sink);
        writer.join().unwrap();
        // Recorded once: a third start finds nothing left up.
        let (sink, writer) = start_writer(dir.path()).unwrap();
        assert_eq!(all(dir.path()).len(), 4);
        drop(sink);
        writer.join().unwrap();
    }

    #[test]
    fn records_are_written_by_the_thread_and_read_back_with_filters() {
        let dir = tempfile::tempdir().unwrap();
        let (sink, writer) = start_writer(dir.path()).unwrap();
        let answered = CallOutcome::Completed {
            hung_up_by: Party::Callee,
        };
        assert!(sink.push(Box::new(record("a", answered))));
        assert!(sink.push(Box::new(record("b", CallOutcome::Rejected { status: 486 }))));
        drop(sink);
        writer.join().unwrap();

        let all = history(
            dir.path(),
            &Query {
                limit: 10,
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].call_id, "b", "newest first");
        assert_eq!(all[0].outcome, "busy");
        let first = &all[1];
        assert_eq!(first.outcome, "answered");
        assert_eq!(first.answered_by.as_deref(), Some("alice"));
        assert_eq!(first.duration_ms, 65_000);
        assert_eq!(first.talk_ms, Some(60_000));
        assert_eq!(first.hung_up_by.as_deref(), Some("callee"));
        assert_eq!(first.skipped[0]["gate"], "not_signed_in");
        assert_eq!(first.attempts[1]["result"], "cancelled");

        let carol = Query {
            user: Some("carol".into()),
            limit: 10,
            ..Query::default()
        };
        assert_eq!(
            history(dir.path(), &carol).unwrap().len(),
            2,
            "skipped counts"
        );
        let dave = Query {
            user: Some("dave".into()),
            limit: 10,
            ..Query::default()
        };
        assert!(history(dir.path(), &dave).unwrap().is_empty());
        let later = Query {
            since: Some("2026-12-01T11:00:00Z".parse().unwrap()),
            limit: 10,
            ..Query::default()
        };
        assert!(history(dir.path(), &later).unwrap().is_empty());
        assert_eq!(count(dir.path()).unwrap(), 2);
    }

    #[test]
    fn outcomes_have_their_stable_names() {
        let mut r = record("x", CallOutcome::NoAnswer { status: 480 });
        assert_eq!(outcome(&r), "no_answer");
        r.outcome = CallOutcome::CallerCancelled;
        assert_eq!(outcome(&r), "caller_cancelled");
        r.outcome = CallOutcome::Rejected { status: 404 };
        assert_eq!(outcome(&r), "rejected");
        r.rang[0].outcome = LegOutcome::Refused(603);
        r.outcome = CallOutcome::Failed { status: 480 };
        assert_eq!(outcome(&r), "declined");
        r.answered_by = None;
        r.voicemail = true;
        r.outcome = CallOutcome::Completed {
            hung_up_by: Party::Caller,
        };
        assert_eq!(outcome(&r), "voicemail");
        r.voicemail = false;
        assert_eq!(outcome(&r), "abandoned");
        r.rang[0].user = "trunk:carrier".into();
        r.answered_by = Some(0);
        assert_eq!(outcome(&r), "forwarded");
    }
}
