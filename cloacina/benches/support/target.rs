//! A fresh database for a benchmark or soak: a SQLite file in the temporary directory, or a new
//! schema on the PostgreSQL server of `CLOACINA_TEST_POSTGRES_URL`; removed by `cleanup`.

#![allow(dead_code)] // each includer uses its own part

pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) schema: Option<String>,
    pub(crate) cleanup: Box<dyn FnOnce()>,
}

/// A fresh database of `backend` (`sqlite` or `postgres`).
pub(crate) fn target(backend: &str) -> Target {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    if backend == "sqlite" {
        let path = std::env::temp_dir().join(format!("{name}.db"));
        let url = format!("sqlite://{}", path.display());
        return Target {
            url,
            schema: None,
            cleanup: Box::new(move || {
                for s in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{s}", path.display()));
                }
            }),
        };
    }
    let url = std::env::var("CLOACINA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let drop_url = url.clone();
    let schema = name.clone();
    Target {
        url,
        schema: Some(name),
        cleanup: Box::new(move || {
            use diesel::connection::SimpleConnection;
            let parsed = cloacina::database::DatabaseUrl::parse(&drop_url).expect("url");
            if let Ok(mut c) = cloacina::database::establish(&parsed, &Default::default()) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
            }
        }),
    }
}
