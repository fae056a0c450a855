//! Routing as tables of cases: one workspace, a state per row, the expected
//! decision or verdict.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use directory::{NumberSpec, Strategy, TrunkSpec, UserSpec, UserStatus, WorkspaceSpec};
use presence::{Binding, BindingTransport, Presence};

use super::*;

const NOW: u64 = 1_000_000;

fn user(id: &str, status: UserStatus, max_calls: u32) -> UserSpec {
    UserSpec {
        id: id.into(),
        name: id.into(),
        status,
        password: "pw".into(),
        max_calls,
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
            ring_timeout_secs: 30,
        }],
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
        })
    });
}

fn ids(dir: &Directory, users: &[UserIdx]) -> Vec<String> {
    users.iter().map(|&u| dir.user(u).id.clone()).collect()
}

fn ringing(dir: &Directory, p: &Presence, dialled: &str) -> Result<Vec<String>, u16> {
    match decide(dir, &p.view(dir), &IncomingCall { dialled }, NOW) {
        Decision::Ring { users, .. } => Ok(ids(dir, &users)),
        Decision::Reject { status, .. } => Err(status),
    }
}

#[test]
fn number_forms_normalise_to_the_same_line() {
    let dir = workspace();
    let p = Presence::new();
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
    }
    let cases = [
        Case {
            name: "nobody signed in",
            signed_in: &[],
            calls: &[],
            rings: Err(480),
        },
        Case {
            name: "everyone routed and free rings",
            signed_in: &["alice", "bob", "carol", "dave", "erin", "frank"],
            calls: &[],
            rings: Ok(&["alice", "bob", "erin"]),
        },
        Case {
            name: "assigned but not routed never rings",
            signed_in: &["carol"],
            calls: &[],
            rings: Err(480),
        },
        Case {
            name: "not assigned never rings",
            signed_in: &["frank"],
            calls: &[],
            rings: Err(480),
        },
        Case {
            name: "invited never rings, even signed in",
            signed_in: &["dave"],
            calls: &[],
            rings: Err(480),
        },
        Case {
            name: "busy user skipped, others ring",
            signed_in: &["alice", "bob"],
            calls: &[("alice", 1)],
            rings: Ok(&["bob"]),
        },
        Case {
            name: "everyone busy is 486",
            signed_in: &["alice", "bob"],
            calls: &[("alice", 1), ("bob", 1)],
            rings: Err(486),
        },
        Case {
            name: "max_calls 2 still rings with one call",
            signed_in: &["erin"],
            calls: &[("erin", 1)],
            rings: Ok(&["erin"]),
        },
        Case {
            name: "max_calls 2 busy with two",
            signed_in: &["erin", "carol"],
            calls: &[("erin", 2)],
            rings: Err(486),
        },
        Case {
            name: "a busy user who is signed out counts as signed out",
            signed_in: &[],
            calls: &[("alice", 1)],
            rings: Err(480),
        },
    ];
    let dir = workspace();
    for case in cases {
        let p = Presence::new();
        for id in case.signed_in {
            sign_in(&p, id, NOW + 60_000);
        }
        for (id, n) in case.calls {
            for _ in 0..*n {
                p.user(id).call_started();
            }
        }
        let expected = case
            .rings
            .map(|list| list.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(ringing(&dir, &p, "+15550100"), expected, "{}", case.name);
    }
}

#[test]
fn expired_binding_is_signed_out() {
    let dir = workspace();
    let p = Presence::new();
    sign_in(&p, "alice", NOW);
    assert_eq!(ringing(&dir, &p, "+15550100"), Err(480));
}

#[test]
fn explain_names_the_first_gate_for_every_member() {
    let dir = workspace();
    let p = Presence::new();
    for id in ["alice", "bob", "carol", "dave"] {
        sign_in(&p, id, NOW + 60_000);
    }
    p.user("bob").call_started();
    let number = find_number(&dir, "+15550100").unwrap();
    let verdicts: Vec<(String, Option<Gate>)> = explain(&dir, &p.view(&dir), number, NOW)
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
