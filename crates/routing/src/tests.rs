//! Routing as tables of cases: one workspace, a state per row, the expected
//! plan and verdicts.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use directory::{
    Destination, NumberSpec, Strategy, TrunkSpec, UserSpec, UserStatus, WorkspaceSpec,
};
use std::sync::Arc;

use presence::{Binding, BindingTransport, Occupancy, Presence, UserRef};

use super::*;

const NOW: u64 = 1_000_000;

fn now() -> Timestamp {
    Timestamp::from_millisecond(NOW as i64).unwrap()
}

fn user(id: &str, status: UserStatus, max_calls: u32) -> UserSpec {
    UserSpec {
        id: id.into(),
        name: id.into(),
        status,
        password: "pw".into(),
        max_calls,
        ..UserSpec::default()
    }
}

/// Sales +15550100: members alice bob carol dave erin; routing alice bob dave erin.
/// dave is invited; erin may take two calls.
fn workspace() -> Directory {
    let spec = WorkspaceSpec {
        domain: "switchboard.test".into(),
        seats: 10,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1/32".into()],
            ..TrunkSpec::default()
        }],
        users: vec![
            user("alice", UserStatus::Active, 1),
            user("bob", UserStatus::Active, 1),
            user("carol", UserStatus::Active, 1),
            user("dave", UserStatus::Invited, 1),
            user("erin", UserStatus::Active, 2),
            user("frank", UserStatus::Active, 1),
        ],
        numbers: vec![NumberSpec {
            number: "+15550100".into(),
            name: "Sales".into(),
            timezone: "Europe/Paris".into(),
            members: ["alice", "bob", "carol", "dave", "erin"]
                .map(String::from)
                .to_vec(),
            strategy: Strategy::Simultaneous,
            ring: ["alice", "bob", "dave", "erin"].map(String::from).to_vec(),
            ring_timeout_secs: Some(30),
            ..NumberSpec::default()
        }],
        ..Default::default()
    };
    Directory::from_workspace(spec, Path::new("test")).unwrap()
}

fn sign_in(p: &Presence, id: &str, until: u64) {
    p.user(id).update(0, |l| {
        l.push(Binding {
            contact: format!("sip:{id}@127.0.0.1:5080"),
            expires_at_ms: until,
            call_id: "c".into(),
            cseq: 1,
            source: "127.0.0.1:5080".parse().unwrap(),
            transport: BindingTransport::Udp,
            instance: None,
            reg_id: None,
        })
    });
}

fn ids(dir: &Directory, users: &[UserIdx]) -> Vec<String> {
    users.iter().map(|&u| dir.user(u).id.clone()).collect()
}

fn ringing(dir: &Directory, p: &Arc<Presence>, dialled: &str) -> Result<Vec<String>, u16> {
    let plan = decide(
        dir,
        &p.view(dir),
        &IncomingCall {
            dialled,
            caller: None,
        },
        now(),
    );
    match plan.first_tier() {
        Some(tier) => {
            assert_eq!(plan.tiers.len(), 1, "one tier for a simultaneous number");
            assert_eq!(plan.then, Destination::DEFAULT_NO_ANSWER);
            Ok(ids(dir, &tier.users))
        }
        None => Err(plan.hangup_status().unwrap()),
    }
}

fn take_calls(dir: &Directory, p: &Arc<Presence>, id: &str, n: u32) {
    let view = p.view(dir);
    let who = UserRef {
        idx: dir.user_index(id).unwrap(),
        id,
    };
    for holder in 0..n {
        view.take(who, u64::from(holder), u64::MAX);
    }
}

#[test]
fn number_forms_normalise_to_the_same_line() {
    let dir = workspace();
    let p = Arc::new(Presence::new());
    sign_in(&p, "alice", NOW + 1);
    for dialled in [
        "+15550100",
        "15550100",
        "+1 555-0100",
        "+1.555.0100",
        "(1) 5550100",
    ] {
        assert_eq!(
            ringing(&dir, &p, dialled),
            Ok(vec!["alice".into()]),
            "{dialled}"
        );
    }
    for dialled in ["+15550199", "alice", "", "+"] {
        assert_eq!(ringing(&dir, &p, dialled), Err(404), "{dialled}");
    }
}

#[test]
fn each_gate_as_a_table() {
    struct Case {
        name: &'static str,
        signed_in: &'static [&'static str],
        calls: &'static [(&'static str, u32)],
        rings: Result<&'static [&'static str], u16>,
        /// The verdicts of alice, bob, carol, dave, erin (members, in order).
        gates: [Option<Gate>; 5],
    }
    use Gate::*;
    const INVITED: Option<Gate> = Some(NotActive);
    const OUT: Option<Gate> = Some(NotSignedIn);
    let cases = [
        Case {
            name: "nobody signed in",
            signed_in: &[],
            calls: &[],
            rings: Err(480),
            gates: [OUT, OUT, OUT, INVITED, OUT],
        },
        Case {
            name: "everyone routed and free rings",
            signed_in: &["alice", "bob", "carol", "dave", "erin", "frank"],
            calls: &[],
            rings: Ok(&["alice", "bob", "erin"]),
            gates: [None, None, Some(NotInRouting), INVITED, None],
        },
        Case {
            name: "assigned but not routed never rings",
            signed_in: &["carol"],
            calls: &[],
            rings: Err(480),
            gates: [OUT, OUT, Some(NotInRouting), INVITED, OUT],
        },
        Case {
            name: "not assigned never rings",
            signed_in: &["frank"],
            calls: &[],
            rings: Err(480),
            gates: [OUT, OUT, OUT, INVITED, OUT],
        },
        Case {
            name: "invited never rings, even signed in",
            signed_in: &["dave"],
            calls: &[],
            rings: Err(480),
            gates: [OUT, OUT, OUT, INVITED, OUT],
        },
        Case {
            name: "busy user skipped, others ring",
            signed_in: &["alice", "bob"],
            calls: &[("alice", 1)],
            rings: Ok(&["bob"]),
            gates: [Some(Busy), None, OUT, INVITED, OUT],
        },
        Case {
            name: "everyone busy is 486",
            signed_in: &["alice", "bob"],
            calls: &[("alice", 1), ("bob", 1)],
            rings: Err(486),
            gates: [Some(Busy), Some(Busy), OUT, INVITED, OUT],
        },
        Case {
            name: "max_calls 2 still rings with one call",
            signed_in: &["erin"],
            calls: &[("erin", 1)],
            rings: Ok(&["erin"]),
            gates: [OUT, OUT, OUT, INVITED, None],
        },
        Case {
            name: "max_calls 2 busy with two",
            signed_in: &["erin", "carol"],
            calls: &[("erin", 2)],
            rings: Err(486),
            gates: [OUT, OUT, Some(NotInRouting), INVITED, Some(Busy)],
        },
        Case {
            name: "a busy user who is signed out counts as signed out",
            signed_in: &[],
            calls: &[("alice", 1)],
            rings: Err(480),
            gates: [OUT, OUT, OUT, INVITED, OUT],
        },
    ];
    let dir = workspace();
    let number = find_number(&dir, "+15550100").unwrap();
    for case in cases {
        let p = Arc::new(Presence::new());
        for id in case.signed_in {
            sign_in(&p, id, NOW + 60_000);
        }
        for (id, n) in case.calls {
            take_calls(&dir, &p, id, *n);
        }
        let expected = case
            .rings
            .map(|list| list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(ringing(&dir, &p, "+15550100"), expected, "{}", case.name);
        // The call's plan and explain's are one: same verdicts, same tiers.
        let view = p.view(&dir);
        let call = decide(
            &dir,
            &view,
            &IncomingCall {
                dialled: "+15550100",
                caller: None,
            },
            now(),
        );
        let explained = explain(&dir, &view, number, now());
        assert_eq!(call, explained, "{}", case.name);
        let gates: Vec<Option<Gate>> = call.verdicts(&dir).iter().map(|v| v.stopped_by).collect();
        assert_eq!(gates, case.gates, "{}", case.name);
    }
}

#[test]
fn expired_binding_is_signed_out() {
    let dir = workspace();
    let p = Arc::new(Presence::new());
    sign_in(&p, "alice", NOW);
    assert_eq!(ringing(&dir, &p, "+15550100"), Err(480));
}

#[test]
fn explain_names_the_first_gate_for_every_member() {
    let dir = workspace();
    let p = Arc::new(Presence::new());
    for id in ["alice", "bob", "carol", "dave"] {
        sign_in(&p, id, NOW + 60_000);
    }
    take_calls(&dir, &p, "bob", 1);
    let number = find_number(&dir, "+15550100").unwrap();
    let verdicts: Vec<(String, Option<Gate>)> = explain(&dir, &p.view(&dir), number, now())
        .verdicts(&dir)
        .into_iter()
        .map(|v| (dir.user(v.user).id.clone(), v.stopped_by))
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("alice".into(), None),
            ("bob".into(), Some(Gate::Busy)),
            ("carol".into(), Some(Gate::NotInRouting)),
            ("dave".into(), Some(Gate::NotActive)),
            ("erin".into(), Some(Gate::NotSignedIn)),
        ]
    );
}

#[test]
fn a_user_outside_their_own_hours_is_skipped_on_every_number() {
    let mut spec_users = vec![
        user("alice", UserStatus::Active, 1),
        user("bob", UserStatus::Active, 1),
    ];
    // alice works Monday mornings in Tokyo only.
    let mut hours = directory::HoursSpec::default();
    hours.days[0] = vec!["09:00-12:00".into()];
    spec_users[0].timezone = Some("Asia/Tokyo".into());
    spec_users[0].hours = Some(hours);
    let spec = WorkspaceSpec {
        domain: "switchboard.test".into(),
        seats: 2,
        users: spec_users,
        numbers: vec![NumberSpec {
            number: "+15550100".into(),
            name: "Sales".into(),
            timezone: "Europe/Paris".into(),
            members: vec!["alice".into(), "bob".into()],
            ring: vec!["alice".into(), "bob".into()],
            ..NumberSpec::default()
        }],
        ..WorkspaceSpec::default()
    };
    let dir = Directory::from_workspace(spec, Path::new("test")).unwrap();
    let p = Arc::new(Presence::new());
    let far = 4_102_444_800_000; // 2100
    sign_in(&p, "alice", far);
    sign_in(&p, "bob", far);
    let view = p.view(&dir);
    let number = find_number(&dir, "+15550100").unwrap();
    let at = |s: &str| s.parse::<Timestamp>().unwrap();
    // Monday 2026-12-07 10:00 in Tokyo is 01:00 UTC: alice works.
    let plan = explain(&dir, &view, number, at("2026-12-07T01:00:00Z"));
    assert_eq!(ids(&dir, &plan.tiers[0].users), ["alice", "bob"]);
    // Monday 15:00 in Tokyo: outside her hours, bob alone.
    let plan = explain(&dir, &view, number, at("2026-12-07T06:00:00Z"));
    assert_eq!(ids(&dir, &plan.tiers[0].users), ["bob"]);
    assert_eq!(
        plan.verdicts(&dir)[0].stopped_by,
        Some(Gate::OutsideUserHours)
    );
    assert_eq!(Gate::OutsideUserHours.as_str(), "outside_user_hours");
}

/// The Sales workspace with a trunk out, extensions, a second line for
/// alice (her default), and the French dialling rule.
fn dialling_workspace() -> Directory {
    let mut users = vec![
        user("alice", UserStatus::Active, 1),
        user("bob", UserStatus::Active, 1),
        user("carol", UserStatus::Active, 1),
        user("frank", UserStatus::Active, 1),
    ];
    users[0].extension = Some("101".into());
    users[0].default_number = Some("+15550200".into());
    users[1].extension = Some("102".into());
    let line = |number: &str, members: &[&str]| NumberSpec {
        number: number.into(),
        name: number.into(),
        timezone: "Europe/Paris".into(),
        members: members.iter().map(|m| m.to_string()).collect(),
        strategy: Strategy::Simultaneous,
        ring: members.iter().map(|m| m.to_string()).collect(),
        ..NumberSpec::default()
    };
    let spec = WorkspaceSpec {
        domain: "switchboard.test".into(),
        seats: 10,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["127.0.0.1/32".into()],
            outbound: Some(directory::OutboundSpec {
                address: "127.0.0.1:5070".into(),
                ..Default::default()
            }),
        }],
        users,
        numbers: vec![
            line("+15550100", &["alice", "bob", "carol"]),
            line("+15550200", &["alice"]),
        ],
        outbound: directory::OutboundRulesSpec {
            country_code: Some("+33".into()),
            national_prefix: Some("0".into()),
            deny: Some(vec!["+1900*".into()]),
            emergency: Some(vec!["112".into(), "15".into()]),
            ..Default::default()
        },
        ..Default::default()
    };
    Directory::from_workspace(spec, Path::new("test")).unwrap()
}

#[test]
fn what_a_user_dials_goes_where_it_should_or_says_why_not() {
    use dial::{dial, Dialled, Refusal};
    let dir = dialling_workspace();
    let p = Arc::new(Presence::new());
    for id in ["alice", "bob", "carol", "frank"] {
        sign_in(&p, id, NOW + 60_000);
    }
    let idx = |id: &str| dir.user_index(id).unwrap();
    let line = |n: &str| dir.number_index(n).unwrap();
    let view = p.view(&dir);
    let from = |who: &str, dialled: &str| dial(&dir, &view, idx(who), dialled, now());

    // Out, from the default line, then from the second line by prefix.
    assert_eq!(
        from("alice", "0612345678"),
        Ok(Dialled::External {
            to: "+33612345678".into(),
            line: line("+15550200")
        })
    );
    assert_eq!(
        from("alice", "*2*0612345678"),
        Ok(Dialled::External {
            to: "+33612345678".into(),
            line: line("+15550100")
        })
    );
    assert_eq!(from("alice", "*3*0612345678"), Err(Refusal::NoSuchLine));
    assert_eq!(
        from("frank", "*2*112"),
        Ok(Dialled::Emergency {
            to: "112".into(),
            line: None
        }),
        "an emergency call goes out whatever line was asked for"
    );
    // A denied number is refused as such even without a line.
    assert!(matches!(
        from("frank", "+19005550100"),
        Err(Refusal::Denied { .. })
    ));
    assert_eq!(from("frank", "0612345678"), Err(Refusal::NoLine));
    assert_eq!(
        from("alice", "+1 900 555 0100"),
        Err(Refusal::Denied {
            pattern: Some("+1900*".into())
        })
    );
    // Colleagues by id or extension, our own numbers, and nobody.
    assert_eq!(from("alice", "102"), Ok(Dialled::User(idx("bob"))));
    assert_eq!(from("alice", "bob"), Ok(Dialled::User(idx("bob"))));
    assert_eq!(from("alice", "101"), Err(Refusal::Yourself));
    assert_eq!(
        from("frank", "+15550100"),
        Ok(Dialled::Number(line("+15550100")))
    );
    assert_eq!(from("frank", "nobody"), Err(Refusal::NoSuchDestination));

    // Busy: a busy colleague is refused with 486, a busy caller too, but an
    // emergency call goes out whatever the caller's state or lines.
    take_calls(&dir, &p, "bob", 1);
    let view = p.view(&dir);
    let refusal = dial(&dir, &view, idx("alice"), "102", now()).unwrap_err();
    assert_eq!((refusal.status(), refusal.reason()), (486, "User busy"));
    let refusal = dial(&dir, &view, idx("bob"), "0612345678", now()).unwrap_err();
    assert_eq!(refusal, Refusal::CallerBusy);
    assert_eq!(
        dial(&dir, &view, idx("bob"), "15", now()),
        Ok(Dialled::Emergency {
            to: "15".into(),
            line: Some(line("+15550100"))
        })
    );
    assert_eq!(
        dial(&dir, &view, idx("frank"), "112", now()),
        Ok(Dialled::Emergency {
            to: "112".into(),
            line: None
        })
    );
}

#[test]
fn a_caller_is_never_rung_by_their_own_call() {
    let dir = dialling_workspace();
    let p = Arc::new(Presence::new());
    for id in ["alice", "bob", "carol"] {
        sign_in(&p, id, NOW + 60_000);
    }
    let alice = dir.user_index("alice").unwrap();
    let call = IncomingCall {
        dialled: "+15550100",
        caller: Some(alice),
    };
    let plan = decide(&dir, &p.view(&dir), &call, now());
    assert_eq!(ids(&dir, &plan.tiers[0].users), ["bob", "carol"]);
    assert_eq!(
        plan.skipped,
        vec![MemberVerdict {
            user: alice,
            stopped_by: Some(Gate::Caller)
        }]
    );
}
