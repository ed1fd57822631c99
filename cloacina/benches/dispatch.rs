//! The ADR's claim, measured: the cost of going through `AnyConnection` (Diesel `MultiConnection`)
//! instead of a native connection, for one typical DAL call (a context looked up by primary key).
//!
//! `cargo bench -p cloacina --bench dispatch`; run it again with
//! `--no-default-features --features sqlite` to see the single-backend build. SQLite keeps I/O out
//! of the way (the row is in the page cache), so the difference is dispatch, not the database.

use std::time::Instant;

use cloacina::database::schema::contexts;
use cloacina::database::{AnyConnection, Database, UniversalJson, UniversalTimestamp, UniversalUuid};
use diesel::prelude::*;

const CALLS: u32 = 100_000;
const RUNS: usize = 7;

/// The DAL call, written once and compiled for each connection type.
macro_rules! lookup {
    ($conn:expr, $id:expr) => {
        contexts::table.find($id).select(contexts::value).first::<UniversalJson>($conn).expect("row").0
    };
}

fn ns_per_call(mut f: impl FnMut()) -> f64 {
    let mut runs: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..CALLS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(CALLS)
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[RUNS / 2]
}

fn main() {
    let path = std::env::temp_dir().join(format!("dispatch_{}.db", uuid::Uuid::new_v4().simple()));
    let db = Database::connect(&format!("sqlite://{}", path.display())).expect("sqlite");
    let id = {
        let mut conn = db.get().expect("conn");
        let ctx = cloacina::dal::contexts::insert(&mut conn, &serde_json::json!({"k": 1}), UniversalTimestamp::now())
            .expect("insert");
        UniversalUuid::from(ctx)
    };
    let mut any = cloacina::database::establish(db.url(), &Default::default()).expect("connect");
    let any_ns = ns_per_call(|| {
        lookup!(&mut any, id);
    });
    // Irrefutable in a SQLite-only build, where `AnyConnection` has one variant.
    #[allow(irrefutable_let_patterns)]
    let AnyConnection::Sqlite(mut native) =
        cloacina::database::establish(db.url(), &Default::default()).expect("connect")
    else {
        unreachable!("a sqlite:// URL gives a SQLite connection")
    };
    let native_ns = ns_per_call(|| {
        lookup!(&mut native, id);
    });
    let build = if cfg!(feature = "postgres") { "postgres+sqlite" } else { "sqlite only" };
    println!("dispatch: SQLite primary-key lookup, {CALLS} calls x {RUNS} runs (median), build: {build}");
    println!("  through AnyConnection   {any_ns:>9.0} ns/call");
    println!("  native SqliteConnection {native_ns:>9.0} ns/call");
    println!(
        "  difference              {:>9.0} ns/call ({:+.1}%)",
        any_ns - native_ns,
        (any_ns / native_ns - 1.0) * 100.0
    );
    drop(db);
    for s in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{s}", path.display()));
    }
}
