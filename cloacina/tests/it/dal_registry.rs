//! `workflow_registry` and `workflow_packages`.

use std::time::Duration;

use serde_json::json;

use crate::harness::backend_test;
use cloacina::dal::workflow_packages::{self as packages, NewPackage};
use cloacina::dal::workflow_registry as registry;
use cloacina::database::{JsonText, UniversalTimestamp};
use cloacina::models::PackageStatus;

backend_test!(registry_upsert_keeps_first_seen_and_moves_last_seen, |t| {
    let mut conn = t.conn();
    let t0 = UniversalTimestamp::now();
    let t1 = t0.plus(Duration::from_secs(60));
    let graph = json!({"tasks": ["a", "b"], "edges": [["a", "b"]]});
    registry::record_seen(&mut conn, "etl", "abc123", &JsonText::from(&graph), t0).expect("first");
    let first = registry::get(&mut conn, "etl", "abc123").expect("get").expect("recorded");
    registry::record_seen(&mut conn, "etl", "abc123", &JsonText::from(&json!({"ignored": true})), t1).expect("again");
    let again = registry::get(&mut conn, "etl", "abc123").expect("get").expect("recorded");
    assert_eq!(first.id, again.id);
    assert_eq!((again.first_seen_at, again.last_seen_at), (t0.as_datetime(), t1.as_datetime()));
    assert_eq!(again.graph, graph, "a version's graph never changes");
    registry::record_seen(&mut conn, "etl", "def456", &JsonText::from(&graph), t1).expect("new version");
    let all = registry::list(&mut conn).expect("list");
    assert_eq!(all.iter().map(|w| w.version.as_str()).collect::<Vec<_>>(), ["abc123", "def456"]);
    assert!(registry::get(&mut conn, "etl", "nope").expect("get").is_none());
});

backend_test!(packages_store_bytes_with_their_hash_and_are_immutable, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    let new = NewPackage {
        package_name: "etl".into(),
        version: "1.0.0".into(),
        description: Some("nightly".into()),
        content: b"abc".to_vec(),
        metadata: json!({"tasks": 2}),
        status: PackageStatus::Loaded,
        error: None,
    };
    packages::insert(&mut conn, new.clone(), now).expect("insert");
    let got = packages::get(&mut conn, "etl", "1.0.0").expect("get").expect("row");
    let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!((got.content_sha256.as_str(), got.status), (sha, PackageStatus::Loaded));
    assert_eq!(packages::content(&mut conn, "etl", "1.0.0").expect("content").as_deref(), Some(&b"abc"[..]));
    assert_eq!(packages::by_sha(&mut conn, sha).expect("by sha").len(), 1);
    assert!(packages::insert(&mut conn, new, now).is_err(), "same name and version is refused");
    // The status changes only for the archive it was read from, and from the status expected.
    let (loaded, removed, failed) = (PackageStatus::Loaded, PackageStatus::Removed, PackageStatus::Failed);
    assert!(!packages::set_status(&mut conn, "etl", "1.0.0", "0000", loaded, removed, None, now).expect("set"));
    assert!(!packages::set_status(&mut conn, "etl", "1.0.0", sha, removed, failed, Some("boom"), now).expect("set"));
    assert!(packages::set_status(&mut conn, "etl", "1.0.0", sha, loaded, failed, Some("boom"), now).expect("set"));
    let failed = packages::list(&mut conn).expect("list");
    assert_eq!((failed.len(), failed[0].status, failed[0].error.as_deref()), (1, PackageStatus::Failed, Some("boom")));
    assert!(packages::delete(&mut conn, "etl", "1.0.0").expect("delete"));
    assert!(!packages::delete(&mut conn, "etl", "1.0.0").expect("delete twice"));
});
