//! Round trips of every universal type through `AnyConnection`, NULLs and microseconds included.

use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use serde_json::json;

use crate::harness::backend_test;
use cloacina::database::schema::{contexts, cron_schedules, pipeline_executions};
use cloacina::database::{UniversalBool, UniversalJson, UniversalTimestamp, UniversalUuid};

fn ts(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, micros: u32) -> UniversalTimestamp {
    let t = Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().expect("valid time");
    UniversalTimestamp::from(t + chrono::Duration::microseconds(i64::from(micros)))
}

backend_test!(uuid_json_and_timestamp_round_trip, |t| {
    let mut conn = t.conn();
    let id = UniversalUuid::new_v4();
    let value = json!({"n": 1.5, "s": "ünïcode ✓", "nested": {"list": [1, null, true]}, "empty": {}});
    let at = ts(2026, 11, 24, 3, 4, 5, 123_456);
    diesel::insert_into(contexts::table)
        .values((
            contexts::id.eq(id),
            contexts::value.eq(UniversalJson(value.clone())),
            contexts::created_at.eq(at),
            contexts::updated_at.eq(at),
        ))
        .execute(&mut conn)
        .expect("insert");
    let (got_id, got_value, got_at): (UniversalUuid, UniversalJson, UniversalTimestamp) = contexts::table
        .filter(contexts::id.eq(id))
        .select((contexts::id, contexts::value, contexts::created_at))
        .first(&mut conn)
        .expect("select");
    assert_eq!(got_id, id);
    assert_eq!(got_value.0, value);
    assert_eq!(got_at, at, "microseconds survive");
    assert_eq!(got_at.as_datetime().timestamp_subsec_micros(), 123_456);
});

backend_test!(nulls_round_trip_as_none, |t| {
    let mut conn = t.conn();
    let id = UniversalUuid::new_v4();
    let now = UniversalTimestamp::now();
    diesel::insert_into(pipeline_executions::table)
        .values((
            pipeline_executions::id.eq(id),
            pipeline_executions::workflow_name.eq("w"),
            pipeline_executions::workflow_version.eq("v"),
            pipeline_executions::status.eq("Pending"),
            pipeline_executions::created_at.eq(now),
            pipeline_executions::updated_at.eq(now),
        ))
        .execute(&mut conn)
        .expect("insert");
    let row: (Option<UniversalUuid>, Option<UniversalTimestamp>, Option<String>) = pipeline_executions::table
        .find(id)
        .select((pipeline_executions::context_id, pipeline_executions::started_at, pipeline_executions::error_details))
        .first(&mut conn)
        .expect("select");
    assert_eq!(row, (None, None, None));
    let missing: Option<UniversalUuid> = pipeline_executions::table
        .find(UniversalUuid::new_v4())
        .select(pipeline_executions::id)
        .first(&mut conn)
        .optional()
        .expect("q");
    assert_eq!(missing, None);
});

backend_test!(bools_round_trip_and_filter, |t| {
    let mut conn = t.conn();
    let now = UniversalTimestamp::now();
    for enabled in [true, false] {
        diesel::insert_into(cron_schedules::table)
            .values((
                cron_schedules::id.eq(UniversalUuid::new_v4()),
                cron_schedules::workflow_name.eq(if enabled { "on" } else { "off" }),
                cron_schedules::cron_expression.eq("* * * * *"),
                cron_schedules::timezone.eq("UTC"),
                cron_schedules::context.eq(UniversalJson(json!({}))),
                cron_schedules::enabled.eq(UniversalBool(enabled)),
                cron_schedules::catchup_policy.eq("skip"),
                cron_schedules::max_catchup.eq(0),
                cron_schedules::created_at.eq(now),
                cron_schedules::updated_at.eq(now),
            ))
            .execute(&mut conn)
            .expect("insert");
    }
    let on: Vec<(String, UniversalBool)> = cron_schedules::table
        .filter(cron_schedules::enabled.eq(UniversalBool(true)))
        .select((cron_schedules::workflow_name, cron_schedules::enabled))
        .load(&mut conn)
        .expect("select");
    assert_eq!(on, vec![("on".to_owned(), UniversalBool(true))]);
});

backend_test!(timestamps_order_and_compare_like_instants, |t| {
    let mut conn = t.conn();
    // Deliberately shuffled, across microsecond, second, day and year boundaries.
    let times = [
        ts(2026, 1, 1, 0, 0, 0, 1),
        ts(2025, 12, 31, 23, 59, 59, 999_999),
        ts(2026, 1, 1, 0, 0, 0, 0),
        ts(2026, 1, 1, 0, 0, 10, 0),
        ts(2026, 1, 1, 0, 0, 9, 999_999),
        ts(1999, 6, 1, 12, 0, 0, 500_000),
    ];
    for at in times {
        diesel::insert_into(contexts::table)
            .values((
                contexts::id.eq(UniversalUuid::new_v4()),
                contexts::value.eq(UniversalJson(json!(null))),
                contexts::created_at.eq(at),
                contexts::updated_at.eq(at),
            ))
            .execute(&mut conn)
            .expect("insert");
    }
    let ordered: Vec<UniversalTimestamp> =
        contexts::table.order(contexts::created_at.asc()).select(contexts::created_at).load(&mut conn).expect("order");
    let mut expected = times.to_vec();
    expected.sort();
    assert_eq!(ordered, expected);
    let cutoff = ts(2026, 1, 1, 0, 0, 0, 1);
    let before: i64 =
        contexts::table.filter(contexts::created_at.lt(cutoff)).count().get_result(&mut conn).expect("count");
    assert_eq!(before, 3);
});
