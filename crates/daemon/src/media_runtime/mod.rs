//! The media runtime: one task per session the engine opens, each with its
//! own RTP socket and a [`media::session::Session`] ticked every 20 ms,
//! on a thread (and tokio runtime) of its own, so that hundreds of 20 ms
//! timers and their packets never wait behind the engine's turn, nor it
//! behind them.
//! It carries out the engine's [`MediaCommand`]s and reports
//! [`MediaEvent`]s back on the engine's input channel. It decides nothing
//! about calls.

pub mod prompts;
pub mod voicemail;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::media::{MediaCommand, MediaEvent, MediaId};
use media::session::{Session, SessionConfig, SessionEvent};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::server::EngineInput;
pub use prompts::PromptStore;

/// What every session task shares.
#[derive(Clone)]
pub(crate) struct MediaCtx {
    pub(crate) inputs: mpsc::Sender<EngineInput>,
    pub(crate) prompts: Arc<PromptStore>,
    pub(crate) data_dir: PathBuf,
    /// The address RTP sockets bind (the SIP listener's).
    pub(crate) bind_ip: IpAddr,
    pub(crate) shutdown: CancellationToken,
    /// A side that sends no RTP for this long is gone (`liveness_timeout`).
    pub(crate) rtp_timeout: Duration,
}

/// The sessions in progress, by id.
pub(crate) struct MediaRuntime {
    sessions: HashMap<MediaId, mpsc::UnboundedSender<MediaCommand>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ctx: MediaCtx,
    /// The media thread's runtime, and what lets it end.
    handle: tokio::runtime::Handle,
    done: Option<std::sync::mpsc::Sender<()>>,
}

impl MediaRuntime {
    /// Starts the media thread.
    pub(crate) fn start(ctx: MediaCtx) -> std::io::Result<MediaRuntime> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (done, stop) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("switchboard-media".into())
            .spawn(move || {
                // Runs the sessions until the daemon has waited for them.
                runtime.block_on(async move {
                    let _ = tokio::task::spawn_blocking(move || stop.recv()).await;
                });
            })?;
        Ok(MediaRuntime {
            sessions: HashMap::new(),
            tasks: Vec::new(),
            ctx,
            handle,
            done: Some(done),
        })
    }

    /// Waits for every session to end (at shutdown: each finishes its
    /// recording first), then lets the media thread go.
    pub(crate) async fn wait(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }

    /// Carries out one command (never waits: the engine's turn goes on).
    pub(crate) fn command(&mut self, command: MediaCommand) {
        match command {
            MediaCommand::Open {
                session,
                port,
                remote,
                law,
                telephone_event,
            } => {
                let (tx, rx) = mpsc::unbounded_channel();
                self.sessions.insert(session, tx);
                let config = SessionConfig {
                    law,
                    remote: remote.unwrap_or(SocketAddr::new(self.ctx.bind_ip, 0)),
                    telephone_event,
                    ssrc: fastrand::u32(..),
                    first_seq: fastrand::u16(..),
                    first_timestamp: fastrand::u32(..),
                };
                let addr = SocketAddr::new(self.ctx.bind_ip, port);
                self.tasks.retain(|t| !t.is_finished());
                self.tasks.push(self.handle.spawn(run_session(
                    session,
                    addr,
                    config,
                    remote.is_some(),
                    rx,
                    self.ctx.clone(),
                )));
            }
            other => {
                let id = session_of(&other);
                let close = matches!(other, MediaCommand::Close { .. });
                if let Some(tx) = self.sessions.get(&id) {
                    let _ = tx.send(other);
                }
                if close {
                    self.sessions.remove(&id);
                }
            }
        }
    }
}

fn session_of(command: &MediaCommand) -> MediaId {
    match command {
        MediaCommand::Open { session, .. }
        | MediaCommand::CheckMailbox { session, .. }
        | MediaCommand::Remote { session, .. }
        | MediaCommand::Play { session, .. }
        | MediaCommand::StopPlaying { session }
        | MediaCommand::Record { session, .. }
        | MediaCommand::StopRecording { session }
        | MediaCommand::PrepareBridge { session, .. }
        | MediaCommand::Bridge { session, .. }
        | MediaCommand::Close { session } => *session,
    }
}

/// Packets of 20 ms.
const PACKET: Duration = Duration::from_millis(20);

/// How often a session looks whether its sides still send RTP.
const INACTIVITY_CHECK: Duration = Duration::from_secs(1);

/// When one side of a session last sent RTP, and whether its silence was
/// reported (once: the engine ends the call on it). Time is passed in.
#[derive(Clone, Copy, Debug)]
struct Heard {
    last: Instant,
    reported: bool,
}

impl Heard {
    fn new(now: Instant) -> Heard {
        Heard {
            last: now,
            reported: false,
        }
    }

    fn packet(&mut self, now: Instant) {
        self.last = now;
    }

    /// Whether the side has just been silent for `timeout` (true once).
    fn silent(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.reported || now.saturating_duration_since(self.last) < timeout {
            return false;
        }
        self.reported = true;
        true
    }
}

async fn run_session(
    id: MediaId,
    addr: SocketAddr,
    config: SessionConfig,
    mut remote_known: bool,
    mut commands: mpsc::UnboundedReceiver<MediaCommand>,
    ctx: MediaCtx,
) {
    let report = |event: MediaEvent| {
        let inputs = ctx.inputs.clone();
        async move {
            let _ = inputs.send(EngineInput::Media(event)).await;
        }
    };
    let socket = match UdpSocket::bind(addr).await {
        Ok(s) => s,
        Err(e) => {
            report(MediaEvent::Failed {
                session: id,
                reason: format!("binding RTP {addr}: {e}"),
            })
            .await;
            return;
        }
    };
    let span = tracing::debug_span!("media", session = id, port = addr.port());
    let _enter = span.enter();
    let mut session = Session::new(config);
    let mut recording: Option<voicemail::InProgress> = None;
    let mut ticker = tokio::time::interval(PACKET);
    // A late tick is caught up, not pushed back: the packets stay on the
    // 20 ms grid their timestamps promise (Delay would let every hiccup
    // shift the whole stream for good).
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 2048];
    let mut leg_buf = vec![0u8; 2048];
    // The second socket, toward a leg the caller is bridged to.
    let mut leg: Option<(UdpSocket, Option<SocketAddr>)> = None;
    let mut relay: Option<media::relay::Relay> = None;
    let mut leg_latched = false;
    let mut current_play = 0u32;
    // Media inactivity (the caller's, and the bridged leg's once bridged).
    let mut caller_heard = Heard::new(crate::clock::now());
    let mut leg_heard: Option<Heard> = None;
    let mut inactivity = tokio::time::interval(INACTIVITY_CHECK);
    loop {
        let leg_recv = async {
            match &leg {
                Some((s, _)) => s.recv_from(&mut leg_buf).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ctx.shutdown.cancelled() => break,
            _ = inactivity.tick() => {
                let now = crate::clock::now();
                let timeout = ctx.rtp_timeout;
                if caller_heard.silent(now, timeout) {
                    report(MediaEvent::Inactive { session: id, leg: false }).await;
                }
                if leg_heard.as_mut().is_some_and(|h| h.silent(now, timeout)) {
                    report(MediaEvent::Inactive { session: id, leg: true }).await;
                }
            }
            _ = ticker.tick(), if relay.is_none() => {
                let (to, packet) = session.tick();
                if remote_known {
                    let _ = socket.try_send_to(&packet, to);
                }
            }
            received = socket.recv_from(&mut buf) => {
                if let Ok((n, from)) = received {
                    if from == session.remote() || !remote_known {
                        caller_heard.packet(crate::clock::now());
                    }
                    match (&mut relay, &leg) {
                        (Some(r), Some((leg_socket, Some(to)))) => {
                            // Only from the caller's latched address.
                            if from == session.remote() || !remote_known {
                                if let Some(out) = r.forward(media::relay::Direction::AToB, &buf[..n]) {
                                    let _ = leg_socket.try_send_to(&out, *to);
                                }
                            }
                        }
                        (Some(_), _) => {}
                        (None, _) => session.receive(from, &buf[..n]),
                    }
                    remote_known = true;
                }
            }
            received = leg_recv => {
                if let Ok((n, from)) = received {
                    // Symmetric RTP toward the leg too: its first packet's
                    // source wins over its SDP, and nothing after that.
                    let accepted = match leg.as_mut() {
                        Some((_, to)) if !leg_latched => {
                            *to = Some(from);
                            leg_latched = true;
                            true
                        }
                        Some((_, to)) => *to == Some(from),
                        None => false,
                    };
                    if !accepted {
                        continue;
                    }
                    if let Some(heard) = leg_heard.as_mut() {
                        heard.packet(crate::clock::now());
                    }
                    if let Some(r) = relay.as_mut() {
                        if let Some(out) = r.forward(media::relay::Direction::BToA, &leg_buf[..n]) {
                            let _ = socket.try_send_to(&out, session.remote());
                        }
                    }
                }
            }
            command = commands.recv() => {
                let Some(command) = command else { break };
                match command {
                    MediaCommand::Close { .. } => break,
                    MediaCommand::Remote { remote, law, telephone_event, .. } => {
                        session.set_remote(remote, law, telephone_event);
                        remote_known = true;
                    }
                    MediaCommand::Play { sounds, play, .. } => {
                        current_play = play;
                        for sound in &sounds {
                            for audio in ctx.prompts.resolve(sound) {
                                session.play(audio);
                            }
                        }
                        if !session.is_playing() {
                            // Nothing to play (an empty sound list): done at once.
                            report(MediaEvent::PromptsDone { session: id, play }).await;
                        }
                    }
                    MediaCommand::StopPlaying { .. } => session.stop_playing(),
                    MediaCommand::CheckMailbox { number, max_messages, .. } => {
                        let held = voicemail::count(&ctx.data_dir, &number);
                        let full = held >= max_messages as usize;
                        report(MediaEvent::Mailbox { session: id, full }).await;
                    }
                    MediaCommand::Record { id: message, meta, silence, .. } => {
                        match voicemail::InProgress::start(&ctx.data_dir, &message, &meta) {
                            Ok(r) => {
                                recording = Some(r);
                                let limit = silence.as_millis() as usize * 8;
                                session.record(limit);
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot record a voicemail"),
                        }
                    }
                    MediaCommand::StopRecording { .. } => {
                        let event = finish(&mut session, recording.take(), id).await;
                        report(event).await;
                    }
                    MediaCommand::PrepareBridge { port, .. } => {
                        let addr = SocketAddr::new(ctx.bind_ip, port);
                        match UdpSocket::bind(addr).await {
                            Ok(s) => leg = Some((s, None)),
                            Err(e) => {
                                report(MediaEvent::Failed {
                                    session: id,
                                    reason: format!("binding the relay's RTP {addr}: {e}"),
                                })
                                .await;
                            }
                        }
                    }
                    MediaCommand::Bridge { remote, law, telephone_event, .. } => {
                        session.stop_playing();
                        leg_heard = Some(Heard::new(crate::clock::now()));
                        if let Some((_, to)) = leg.as_mut() {
                            *to = remote.or(*to);
                        }
                        let a = media::relay::Side {
                            law: session.law(),
                            telephone_event: session.telephone_event(),
                        };
                        let b = media::relay::Side { law, telephone_event };
                        relay = Some(media::relay::Relay::new(
                            a,
                            b,
                            media::rtp::RtpSender::new(fastrand::u32(..), fastrand::u16(..), fastrand::u32(..)),
                            media::rtp::RtpSender::new(fastrand::u32(..), fastrand::u16(..), fastrand::u32(..)),
                        ));
                        tracing::debug!(?remote, ?law, "bridged");
                    }
                    MediaCommand::Open { .. } => {}
                }
            }
        }
        if let Some(r) = recording.as_mut() {
            if let Err(e) = r.append(&session.take_recorded()) {
                tracing::warn!(error = %e, "voicemail write failed; the message ends here");
                let event = finish(&mut session, recording.take(), id).await;
                report(event).await;
            }
        }
        while let Some(event) = session.poll_event() {
            let event = match event {
                SessionEvent::Digit(digit) => MediaEvent::Digit { session: id, digit },
                SessionEvent::PromptsDone => MediaEvent::PromptsDone {
                    session: id,
                    play: current_play,
                },
                SessionEvent::Silence => MediaEvent::Silence { session: id },
            };
            report(event).await;
        }
    }
    // A caller who hung up mid-message keeps what was said.
    if recording.is_some() {
        let _ = finish(&mut session, recording.take(), id).await;
    }
}

/// Ends a recording: the rest of its audio, trimmed, synced and renamed
/// (or removed) on the blocking pool, so that the fsync never holds up the
/// other sessions' packets.
async fn finish(
    session: &mut Session,
    recording: Option<voicemail::InProgress>,
    id: MediaId,
) -> MediaEvent {
    let dropped = MediaEvent::Recorded {
        session: id,
        kept: false,
        tenths: 0,
    };
    let Some(mut recording) = recording else {
        return dropped;
    };
    let _ = recording.append(&session.take_recorded());
    let (sound, quiet) = session.recorded_sound();
    session.stop_recording();
    match tokio::task::spawn_blocking(move || recording.finish(sound, quiet)).await {
        Ok(Ok((kept, seconds))) => MediaEvent::Recorded {
            session: id,
            kept,
            tenths: (seconds * 10.0) as u32,
        },
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "finishing a voicemail failed");
            dropped
        }
        Err(e) => {
            tracing::warn!(error = %e, "finishing a voicemail failed");
            dropped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_is_silent_once_after_the_timeout_since_its_last_packet() {
        let start = crate::clock::now();
        let timeout = Duration::from_secs(10);
        let mut heard = Heard::new(start);
        assert!(!heard.silent(start + Duration::from_secs(9), timeout));
        heard.packet(start + Duration::from_secs(9));
        assert!(!heard.silent(start + Duration::from_secs(18), timeout));
        assert!(heard.silent(start + Duration::from_secs(19), timeout));
        assert!(
            !heard.silent(start + Duration::from_secs(30), timeout),
            "reported once"
        );
    }
}
