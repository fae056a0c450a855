//! The daemon answering calls itself, over real UDP on loopback: RTP in
//! and out, voicemail files, menus, messages as early media.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use media::g711::Law;
use media::rtp::{classify, Datagram, RtpSender};
use switchboard::server::Daemon;
use switchboard_tests::sip::{HeaderName, Message, Method, NameAddr};
use switchboard_tests::{media_number, short_prompt, test_config, Rtp, Ua};
use tokio::net::UdpSocket;

fn sdp_port(message: &Message) -> u16 {
    let sdp = std::str::from_utf8(message.body()).unwrap();
    let line = sdp.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn contact_of(message: &Message) -> String {
    message
        .values(HeaderName::Contact)
        .next()
        .and_then(NameAddr::parse)
        .unwrap()
        .uri
        .to_string()
}

/// The caller's INFO (CSeq 2) with a DTMF body, in the dialog of `ok`.
fn dtmf_info(
    trunk: &Ua,
    invite: &Message,
    ok: &Message,
    content_type: &str,
    body: &[u8],
) -> Message {
    let mut info = Message::request(Method::Info, &contact_of(ok));
    info.push(
        HeaderName::Via,
        &format!(
            "SIP/2.0/UDP {};branch=z9hG4bKinfo-{};rport",
            trunk.addr,
            invite.call_id().unwrap()
        ),
    );
    info.push(HeaderName::From, invite.header(HeaderName::From).unwrap());
    info.push(HeaderName::To, ok.header(HeaderName::To).unwrap());
    info.push(HeaderName::CallId, invite.call_id().unwrap());
    info.push(HeaderName::CSeq, "2 INFO");
    info.push(HeaderName::MaxForwards, "70");
    info.push(HeaderName::ContentType, content_type);
    info.set_body(body.to_vec().into());
    info
}

/// Calls +15550900 from the trunk with `rtp`'s offer; returns the invite
/// and the 200.
async fn call(trunk: &mut Ua, rtp: &Rtp) -> (Message, Message) {
    let mut invite = trunk.invite("+15550900", "+15551234567");
    invite.set_body(rtp.offer().into_bytes().into());
    trunk.send(&invite).await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    (invite, ok)
}

#[tokio::test]
async fn a_voicemail_records_what_the_caller_says_until_hash_and_stores_it() {
    let dir = tempfile::tempdir().unwrap();
    let greeting = short_prompt(dir.path(), "greeting.wav");
    let extra = media_number(
        "action = \"voicemail\"",
        &format!("[numbers.voicemail]\ngreeting = \"{greeting}\"\n"),
    );
    let daemon = Daemon::start(test_config(dir.path(), &extra))
        .await
        .unwrap();
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let mut rtp = Rtp::bind().await;
    let (invite, ok) = call(&mut trunk, &rtp).await;
    assert_eq!(ok.header(HeaderName::ContentType), Some("application/sdp"));
    let port = sdp_port(&ok);
    // The greeting and the beep, in 20 ms packets, then quiet: recording.
    let from = rtp.until_prompts_done().await;
    assert_eq!(from.port(), port, "RTP comes from the port in the SDP");
    rtp.send_tone(from, 440.0, 1500).await;
    rtp.send_digit(from, '#').await;
    // "Thank you, goodbye", then the daemon hangs up.
    let bye = trunk.expect_request(Method::Bye).await;
    trunk.respond(&bye, 200, None, None).await;
    let _ = (invite, contact_of(&ok));

    let mailbox = dir.path().join("voicemail").join("+15550900");
    let mut wavs: Vec<_> = std::fs::read_dir(&mailbox)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    assert_eq!(wavs.len(), 1, "one message in {}", mailbox.display());
    let wav = wavs.pop().unwrap();
    let samples = media::wav::read_file(&wav).unwrap();
    // 1.5 s of tone (75 packets), within one packet.
    let seconds = samples.len() as f32 / 8000.0;
    assert!((1.48..=1.52).contains(&seconds), "{seconds} s recorded");
    // The tone's frequency, by zero crossings.
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count() as f32;
    let hz = crossings / 2.0 / seconds;
    assert!((400.0..=480.0).contains(&hz), "{hz} Hz");
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wav.with_extension("json")).unwrap()).unwrap();
    assert_eq!(meta["number"], "+15550900");
    assert_eq!(meta["call_id"], ok.call_id().unwrap());
    assert!(meta["caller"].as_str().unwrap().contains("+15551234567"));
    assert!(meta["started"].as_str().unwrap().ends_with('Z'));
    daemon.stop().await;
}

#[tokio::test]
async fn hanging_up_during_the_greeting_leaves_no_message() {
    let dir = tempfile::tempdir().unwrap();
    let extra = media_number("action = \"voicemail\"", "");
    let daemon = Daemon::start(test_config(dir.path(), &extra))
        .await
        .unwrap();
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let rtp = Rtp::bind().await;
    let (invite, ok) = call(&mut trunk, &rtp).await;
    // The default greeting names the line: sound comes.
    let (_, samples, _) = rtp.recv().await.unwrap();
    assert_eq!(samples.len(), 160);
    trunk
        .in_dialog(
            Method::Bye,
            &contact_of(&ok),
            invite.header(HeaderName::From).unwrap(),
            ok.header(HeaderName::To).unwrap(),
            invite.call_id().unwrap(),
            2,
        )
        .await;
    assert_eq!(trunk.expect_response(200).await.status(), Some(200));
    daemon.stop().await;
    let mailbox = dir.path().join("voicemail").join("+15550900");
    let left: Vec<_> = std::fs::read_dir(&mailbox)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing left: {left:?}");
}

#[tokio::test]
async fn a_menu_key_by_rfc4733_leads_to_a_message_then_the_daemon_hangs_up() {
    let dir = tempfile::tempdir().unwrap();
    let menu = short_prompt(dir.path(), "menu.wav");
    let bye = short_prompt(dir.path(), "bye.wav");
    let extra = media_number(
        "action = \"ivr\"",
        &format!(
            "[numbers.ivr]\ngreeting = \"{menu}\"\nfallback = {{ action = \"hangup\" }}\n\
             [numbers.ivr.options]\n\"9\" = {{ action = \"message\", prompt = \"{bye}\" }}\n"
        ),
    );
    let daemon = Daemon::start(test_config(dir.path(), &extra))
        .await
        .unwrap();
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let mut rtp = Rtp::bind().await;
    let _ = call(&mut trunk, &rtp).await;
    let from = rtp.until_prompts_done().await;
    rtp.send_digit(from, '9').await;
    // The message plays, then BYE.
    let from_again = rtp.until_prompts_done().await;
    assert_eq!(from_again, from);
    let bye_req = trunk.expect_request(Method::Bye).await;
    trunk.respond(&bye_req, 200, None, None).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_message_is_early_media_then_480() {
    let dir = tempfile::tempdir().unwrap();
    let closed = short_prompt(dir.path(), "closed.wav");
    let extra = media_number(&format!("action = \"message\"\nprompt = \"{closed}\""), "");
    let daemon = Daemon::start(test_config(dir.path(), &extra))
        .await
        .unwrap();
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let rtp = Rtp::bind().await;
    let mut invite = trunk.invite("+15550900", "+15551234567");
    invite.set_body(rtp.offer().into_bytes().into());
    trunk.send(&invite).await;
    let progress = trunk.expect_response(183).await;
    assert_eq!(
        progress.header(HeaderName::ContentType),
        Some("application/sdp")
    );
    rtp.until_prompts_done().await;
    assert_eq!(trunk.final_response().await.status(), Some(480));
    daemon.stop().await;
}

#[tokio::test]
async fn a_missing_prompt_is_refused_at_load_with_its_path_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let extra = media_number(
        "action = \"message\"\nprompt = \"/nonexistent/closed.wav\"",
        "",
    );
    let config = test_config(dir.path(), &extra);
    let err = switchboard::media_runtime::PromptStore::load(&config.directory, &config.origin)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("numbers[2].outside.prompt"), "{err}");
    assert!(err.contains("/nonexistent/closed.wav"), "{err}");
    assert!(Daemon::start(config).await.is_err());
}

/// A call to a menu whose "1" rings alice, bridged by the relay once she
/// answers with PCMA; `server_extra` goes in `[server]`.
struct Bridged {
    daemon: Daemon,
    _dir: tempfile::TempDir,
    phone: Ua,
    trunk: Ua,
    caller_rtp: Rtp,
    invite: Message,
    ok: Message,
    /// Where the daemon sends the caller's RTP from.
    from: SocketAddr,
    relay_port: u16,
    phone_rtp: UdpSocket,
}

async fn bridged(server_extra: &str) -> Bridged {
    let dir = tempfile::tempdir().unwrap();
    let menu = short_prompt(dir.path(), "menu.wav");
    let extra = media_number(
        "action = \"ivr\"",
        &format!(
            "[numbers.ivr]\ngreeting = \"{menu}\"\n\
             [numbers.ivr.options]\n\"1\" = {{ action = \"ring\", users = [\"alice\"] }}\n"
        ),
    );
    let text = switchboard_tests::config_text_with_server(dir.path(), server_extra, &extra);
    let config =
        switchboard::settings::Config::parse(&text, std::path::Path::new("t.toml"), dir.path())
            .unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let server = daemon.udp_addr.unwrap();
    let mut phone = Ua::bind("127.0.0.1", server).await;
    assert_eq!(
        phone
            .register("alice", "alice-pw", None, 300)
            .await
            .status(),
        Some(200)
    );
    let mut trunk = Ua::bind("127.0.0.1", server).await;
    let caller_rtp = Rtp::bind().await;
    let (invite, ok) = call(&mut trunk, &caller_rtp).await;
    let from = caller_rtp.until_prompts_done().await;
    // "1" by SIP INFO this time.
    let info = dtmf_info(
        &trunk,
        &invite,
        &ok,
        "application/dtmf-relay",
        b"Signal=1\r\nDuration=160\r\n",
    );
    trunk.send(&info).await;
    assert_eq!(trunk.expect_response(200).await.status(), Some(200));

    // alice rings, offered the relay's port; she answers with PCMA.
    let at_phone = phone.expect_request(Method::Invite).await;
    let relay_port = sdp_port(&at_phone);
    assert_ne!(relay_port, from.port(), "a second port, toward the leg");
    let phone_rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let phone_port = phone_rtp.local_addr().unwrap().port();
    let answer = format!(
        "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {phone_port} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
    );
    phone
        .respond(&at_phone, 200, Some("alice-tag"), Some(&answer))
        .await;
    assert_eq!(
        phone.expect_request(Method::Ack).await.method(),
        Some(&Method::Ack)
    );
    Bridged {
        daemon,
        _dir: dir,
        phone,
        trunk,
        caller_rtp,
        invite,
        ok,
        from,
        relay_port,
        phone_rtp,
    }
}

#[tokio::test]
async fn a_menu_key_rings_a_user_and_the_relay_bridges_them_pcmu_to_pcma() {
    let Bridged {
        daemon,
        _dir,
        mut phone,
        mut trunk,
        mut caller_rtp,
        invite,
        ok,
        from,
        relay_port,
        phone_rtp,
    } = bridged("").await;

    // The caller's PCMU reaches alice as PCMA from the relay's port...
    caller_rtp.send_tone(from, 500.0, 200).await;
    let mut buf = [0u8; 2048];
    let (n, relay_from) =
        tokio::time::timeout(Duration::from_secs(2), phone_rtp.recv_from(&mut buf))
            .await
            .expect("relayed RTP at the phone")
            .unwrap();
    assert_eq!(relay_from.port(), relay_port);
    let Datagram::Rtp(p) = classify(&buf[..n]) else {
        panic!("RTP")
    };
    assert_eq!(p.payload_type, 8, "transcoded to PCMA");
    let mut pcm = Vec::new();
    Law::A.decode_into(&p.payload, &mut pcm);
    assert!(
        pcm.iter().any(|s| s.unsigned_abs() > 2000),
        "the tone, not silence"
    );
    // ...and alice's PCMA reaches the caller as PCMU.
    let mut sender = RtpSender::new(3, 1, 0);
    let tone: Vec<i16> = (0..160)
        .map(|i| if i % 16 < 8 { 6000 } else { -6000 })
        .collect();
    let mut alaw = Vec::new();
    Law::A.encode_into(&tone, &mut alaw);
    for _ in 0..5 {
        phone_rtp
            .send_to(&sender.packet(8, &alaw, 160), relay_from)
            .await
            .unwrap();
    }
    let mut got_tone = false;
    for _ in 0..30 {
        let Some((_, samples, _)) = caller_rtp.recv().await else {
            break;
        };
        if samples.iter().any(|s| s.unsigned_abs() > 4000) {
            got_tone = true;
            break;
        }
    }
    assert!(got_tone, "alice's audio reached the caller");
    // The caller hangs up: alice gets the BYE.
    trunk
        .in_dialog(
            Method::Bye,
            &contact_of(&ok),
            invite.header(HeaderName::From).unwrap(),
            ok.header(HeaderName::To).unwrap(),
            invite.call_id().unwrap(),
            3,
        )
        .await;
    let bye = phone.expect_request(Method::Bye).await;
    phone.respond(&bye, 200, None, None).await;
    daemon.stop().await;
}

/// A menu whose "5" plays a message and hangs up; returns the daemon,
/// the trunk, the caller's RTP, the call, and where the menu's RTP comes from.
async fn menu_with_5(
    dir: &std::path::Path,
    in_band: bool,
) -> (Daemon, Ua, Rtp, Message, Message, SocketAddr) {
    let menu = short_prompt(dir, "menu.wav");
    let bye = short_prompt(dir, "bye.wav");
    let extra = media_number(
        "action = \"ivr\"",
        &format!(
            "[numbers.ivr]\ngreeting = \"{menu}\"\nfallback = {{ action = \"hangup\" }}\n\
             [numbers.ivr.options]\n\"5\" = {{ action = \"message\", prompt = \"{bye}\" }}\n"
        ),
    );
    let daemon = Daemon::start(test_config(dir, &extra)).await.unwrap();
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let rtp = Rtp::bind().await;
    let mut invite = trunk.invite("+15550900", "+15551234567");
    let offer = if in_band {
        rtp.offer_without_events()
    } else {
        rtp.offer()
    };
    invite.set_body(offer.into_bytes().into());
    trunk.send(&invite).await;
    let ok = trunk.expect_response(200).await;
    trunk.ack_2xx(&invite, &ok).await;
    let from = rtp.until_prompts_done().await;
    (daemon, trunk, rtp, invite, ok, from)
}

#[tokio::test]
async fn an_in_band_tone_is_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, mut trunk, mut rtp, _, _, from) = menu_with_5(dir.path(), true).await;
    // The key's two tones, 100 ms, in the audio itself.
    let tone = media::dtmf::tone('5', 100, 6000.0);
    for chunk in tone.chunks(160) {
        let mut codes = Vec::new();
        Law::Mu.encode_into(chunk, &mut codes);
        let packet = rtp.sender.packet(0, &codes, 160);
        rtp.socket.send_to(&packet, from).await.unwrap();
    }
    rtp.until_prompts_done().await;
    let bye = trunk.expect_request(Method::Bye).await;
    trunk.respond(&bye, 200, None, None).await;
    daemon.stop().await;
}

#[tokio::test]
async fn an_info_with_application_dtmf_is_a_key_and_gets_200() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, mut trunk, rtp, invite, ok, _) = menu_with_5(dir.path(), false).await;
    let info = dtmf_info(&trunk, &invite, &ok, "application/dtmf", b"5");
    trunk.send(&info).await;
    assert_eq!(trunk.expect_response(200).await.status(), Some(200));
    rtp.until_prompts_done().await;
    let bye = trunk.expect_request(Method::Bye).await;
    trunk.respond(&bye, 200, None, None).await;
    daemon.stop().await;
}

#[tokio::test]
async fn a_caller_hanging_up_mid_message_keeps_what_was_said() {
    let dir = tempfile::tempdir().unwrap();
    let greeting = short_prompt(dir.path(), "greeting.wav");
    let extra = media_number(
        "action = \"voicemail\"",
        &format!("[numbers.voicemail]\ngreeting = \"{greeting}\"\n"),
    );
    let daemon = Daemon::start(test_config(dir.path(), &extra))
        .await
        .unwrap();
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let mut rtp = Rtp::bind().await;
    let (invite, ok) = call(&mut trunk, &rtp).await;
    let from = rtp.until_prompts_done().await;
    rtp.send_tone(from, 300.0, 1200).await;
    trunk
        .in_dialog(
            Method::Bye,
            &contact_of(&ok),
            invite.header(HeaderName::From).unwrap(),
            ok.header(HeaderName::To).unwrap(),
            invite.call_id().unwrap(),
            2,
        )
        .await;
    assert_eq!(trunk.expect_response(200).await.status(), Some(200));
    daemon.stop().await;
    let mailbox = dir.path().join("voicemail").join("+15550900");
    let wav = std::fs::read_dir(&mailbox)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "wav"))
        .expect("the message is kept");
    let seconds = media::wav::read_file(&wav).unwrap().len() as f32 / 8000.0;
    assert!((1.0..=1.4).contains(&seconds), "{seconds} s");
}

#[tokio::test]
async fn a_wrong_key_replays_the_menu_then_no_key_leads_to_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let menu = short_prompt(dir.path(), "menu.wav");
    let closing = short_prompt(dir.path(), "closing.wav");
    let extra = media_number(
        "action = \"ivr\"",
        &format!(
            "[numbers.ivr]\ngreeting = \"{menu}\"\ntimeout = 1\nretries = 1\n\
             fallback = {{ action = \"message\", prompt = \"{closing}\" }}\n\
             [numbers.ivr.options]\n\"1\" = {{ action = \"voicemail\" }}\n"
        ),
    );
    let daemon = Daemon::start(test_config(dir.path(), &extra))
        .await
        .unwrap();
    let mut trunk = Ua::bind("127.0.0.1", daemon.udp_addr.unwrap()).await;
    let mut rtp = Rtp::bind().await;
    let _ = call(&mut trunk, &rtp).await;
    let from = rtp.until_prompts_done().await;
    // '7' is no option: "not a valid option" and the menu again (sound
    // comes back), and the one retry is spent.
    rtp.send_digit(from, '7').await;
    rtp.until_prompts_done().await;
    // No key for the timeout: the fallback message, then the daemon hangs up.
    rtp.until_prompts_done().await;
    let bye = trunk.expect_request(Method::Bye).await;
    trunk.respond(&bye, 200, None, None).await;
    daemon.stop().await;
    // The fallback was a message, not voicemail: no mailbox was touched.
    assert!(!dir.path().join("voicemail").exists());
}

#[tokio::test]
async fn a_bridged_phone_that_stops_sending_rtp_is_hung_up_after_the_liveness_timeout() {
    let Bridged {
        daemon,
        _dir,
        mut phone,
        mut trunk,
        mut caller_rtp,
        from,
        ..
    } = bridged("liveness_timeout = 10").await;
    #[allow(clippy::disallowed_methods)]
    let bridged_at = std::time::Instant::now();
    // The caller keeps talking and both answer their probes; alice's phone
    // sends no RTP at all (its media died, its signalling did not).
    let ended = tokio::time::timeout(Duration::from_secs(16), async {
        let mut byes = 0;
        let mut talk = tokio::time::interval(Duration::from_millis(500));
        while byes < 2 {
            tokio::select! {
                _ = talk.tick() => caller_rtp.send_tone(from, 500.0, 40).await,
                Some(m) = phone.recv_within(Duration::from_secs(16)) => {
                    if matches!(m.method(), Some(Method::Options | Method::Bye)) {
                        phone.respond(&m, 200, None, None).await;
                        byes += usize::from(m.method() == Some(&Method::Bye));
                    }
                }
                Some(m) = trunk.recv_within(Duration::from_secs(16)) => {
                    if matches!(m.method(), Some(Method::Options | Method::Bye)) {
                        trunk.respond(&m, 200, None, None).await;
                        byes += usize::from(m.method() == Some(&Method::Bye));
                    }
                }
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "a BYE to both sides");
    let after = bridged_at.elapsed();
    assert!(
        after >= Duration::from_secs(9),
        "not before the timeout: {after:?}"
    );
    assert_eq!(daemon.presence.user("alice").active_calls(), 0);
    daemon.stop().await;
}
