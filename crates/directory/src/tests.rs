#![allow(clippy::unwrap_used)]

use std::path::Path;

use crate::*;

#[test]
fn passwords_stay_out_of_debug_output() {
    let ws = WorkspaceSpec {
        domain: "example.test".into(),
        seats: 1,
        users: vec![UserSpec {
            id: "alice".into(),
            name: "Alice".into(),
            password: "hunter2".into(),
            ..UserSpec::default()
        }],
        ..WorkspaceSpec::default()
    };
    let directory = Directory::from_workspace(ws.clone(), Path::new("t")).unwrap();
    let shown = format!("{directory:?}");
    assert!(shown.contains("alice"));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<redacted>"));
    assert!(!format!("{:?}", ws.users[0]).contains("hunter2"));
}

#[test]
fn from_workspace_reports_the_same_keys_against_its_origin() {
    let ws = WorkspaceSpec {
        domain: "example.test".into(),
        seats: 1,
        users: vec![UserSpec {
            id: "alice".into(),
            password: "x".into(),
            ..UserSpec::default()
        }],
        numbers: vec![NumberSpec {
            number: "+15550100".into(),
            timezone: "UTC".into(),
            members: vec!["alice".into()],
            ring: vec!["bob".into()],
            ..NumberSpec::default()
        }],
        ..WorkspaceSpec::default()
    };
    let errors = Directory::from_workspace(ws, Path::new("admin-api")).unwrap_err();
    assert_eq!(errors.0.len(), 1, "{errors}");
    assert_eq!(errors.0[0].file, Path::new("admin-api"));
    assert_eq!(errors.0[0].key, "numbers[0].routing.ring[0]");
    assert_eq!(
        errors.0[0].to_string(),
        "admin-api: numbers[0].routing.ring[0]: `bob` is not a member of this number \
         (add it to numbers[0].members first)"
    );
}

#[test]
fn from_workspace_builds_100k_users_and_10k_numbers() {
    const USERS: usize = 100_000;
    const NUMBERS: usize = 10_000;
    let zones = ["Europe/Paris", "America/New_York", "Asia/Tokyo", "UTC"];
    let users = (0..USERS)
        .map(|i| UserSpec {
            id: format!("user{i}"),
            name: format!("User {i}"),
            status: if i % 10 == 0 {
                UserStatus::Invited
            } else {
                UserStatus::Active
            },
            password: format!("secret{i}"),
            max_calls: 1,
            ..UserSpec::default()
        })
        .collect();
    let numbers = (0..NUMBERS)
        .map(|n| {
            // Ten members per number, the first three routed.
            let members: Vec<String> = (0..10).map(|k| format!("user{}", n * 10 + k)).collect();
            NumberSpec {
                number: format!("+1555{n:07}"),
                name: format!("Line {n}"),
                timezone: zones[n % zones.len()].into(),
                ring: members[..3].to_vec(),
                members,
                strategy: if n % 2 == 0 {
                    Strategy::Simultaneous
                } else {
                    Strategy::Cascade
                },
                ring_timeout_secs: Some(20),
                ..NumberSpec::default()
            }
        })
        .collect();
    let ws = WorkspaceSpec {
        domain: "big.test".into(),
        seats: USERS as u32,
        trunks: vec![TrunkSpec {
            name: "carrier".into(),
            sources: vec!["10.0.0.0/8".into()],
            ..TrunkSpec::default()
        }],
        users,
        numbers,
        ..Default::default()
    };
    let dir = Directory::from_workspace(ws, Path::new("bench")).unwrap();
    assert_eq!(dir.users().len(), USERS);
    assert_eq!(dir.numbers().len(), NUMBERS);
    let last = dir.user_index("user99999").unwrap();
    assert_eq!(last, UserIdx(99_999));
    let n = dir.number_index("+15550009999").unwrap();
    assert_eq!(n, NumberIdx(9_999));
    let number = dir.number(n);
    assert_eq!(
        number.routing.ring,
        [UserIdx(99_990), UserIdx(99_991), UserIdx(99_992)]
    );
    assert!(number.is_member(last));
    assert_eq!(number.timezone_name, zones[9_999 % zones.len()]);
    let e164 = normalize_e164("+1 555 000 9999").unwrap();
    assert_eq!(dir.number_index(e164.as_str()), Some(n));
}
