//! After migrating, each backend exposes exactly the tables and columns `schema.rs` declares, and
//! the two backends agree on nullability.

use std::collections::BTreeMap;

use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};

use cloacina::database::schema::{self, TABLES};
use cloacina::database::AnyConnection;

/// Column names of each table as `schema.rs` declares them, read from Diesel's own SQL.
fn declared_columns() -> BTreeMap<&'static str, Vec<String>> {
    macro_rules! columns {
        ($($table:ident),*) => {{
            let mut map = BTreeMap::new();
            $(
                #[cfg(feature = "sqlite")]
                let sql = diesel::debug_query::<diesel::sqlite::Sqlite, _>(&schema::$table::table.select(schema::$table::all_columns)).to_string();
                #[cfg(not(feature = "sqlite"))]
                let sql = diesel::debug_query::<diesel::pg::Pg, _>(&schema::$table::table.select(schema::$table::all_columns)).to_string();
                let list = sql.trim_start_matches("SELECT ").split(" FROM").next().unwrap_or_default().to_owned();
                let cols = list.split(", ").map(|c| c.rsplit('.').next().unwrap_or_default().trim_matches(['"', '`']).to_owned()).collect();
                map.insert(stringify!($table), cols);
            )*
            map
        }};
    }
    cloacina::for_each_table!(columns)
}

#[derive(QueryableByName, Debug, PartialEq)]
struct Column {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Integer)]
    nullable: i32,
}

/// (name, nullable) of every column of `table` as the database has it, in declaration order.
fn actual_columns(conn: &mut AnyConnection, table: &str, schema: Option<&str>) -> Vec<(String, bool)> {
    let _ = schema; // only PostgreSQL has schemas
    let rows: Vec<Column> = match conn {
        #[cfg(feature = "postgres")]
        AnyConnection::Postgres(_) => diesel::sql_query(
            "SELECT column_name::text AS name, CASE WHEN is_nullable = 'YES' THEN 1 ELSE 0 END AS nullable \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind::<Text, _>(schema.unwrap_or("public"))
        .bind::<Text, _>(table)
        .load(conn)
        .expect("information_schema"),
        #[cfg(feature = "sqlite")]
        AnyConnection::Sqlite(_) => diesel::sql_query(format!(
            "SELECT name, CASE WHEN \"notnull\" = 1 OR pk = 1 THEN 0 ELSE 1 END AS nullable FROM pragma_table_info('{table}') ORDER BY cid"
        ))
        .load(conn)
        .expect("pragma_table_info"),
    };
    rows.into_iter().map(|c| (c.name, c.nullable == 1)).collect()
}

fn check(db: &crate::harness::TestDb) -> BTreeMap<String, Vec<(String, bool)>> {
    let declared = declared_columns();
    assert_eq!(declared.len(), TABLES.len());
    let mut conn = db.conn();
    let mut all = BTreeMap::new();
    for table in TABLES {
        let actual = actual_columns(&mut conn, table, db.db.schema());
        let names: Vec<String> = actual.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, declared[table], "{} table {table} differs from schema.rs", db.db.backend());
        all.insert(table.to_owned(), actual);
    }
    all
}

crate::harness::backend_test!(tables_match_schema_rs, |t| {
    check(&t);
});

#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[test]
fn both_backends_agree_on_nullability() {
    let sqlite = check(&crate::harness::TestDb::sqlite());
    let postgres = check(&crate::harness::TestDb::postgres());
    assert_eq!(sqlite, postgres);
}

crate::harness::backend_test!(db_copy_moves_every_column_of_every_table, |t| {
    let copied = cloacina::ops::copy::copied_columns();
    assert_eq!(copied.iter().map(|(table, _)| *table).collect::<Vec<_>>(), TABLES.to_vec());
    let mut conn = t.conn();
    for (table, columns) in copied {
        let actual: Vec<String> = actual_columns(&mut conn, table, t.db.schema()).into_iter().map(|c| c.0).collect();
        assert_eq!(columns.to_vec(), actual, "db copy's columns of {table}");
    }
});
