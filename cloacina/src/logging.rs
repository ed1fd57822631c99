//! Upstream Cloacina's `cloacina::logging` helpers, for programs written against it.

/// `url` with every password replaced by `***`, for a log line (upstream's name for
/// [`crate::database::redact`]). A string that is not a database URL is not shown at all.
pub fn mask_db_url(url: &str) -> String {
    crate::database::redact(url)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_the_log() {
        let masked = super::mask_db_url("postgres://app:s3cret@db:5432/app");
        assert!(!masked.contains("s3cret"), "{masked}");
        // A build without PostgreSQL shows no PostgreSQL URL at all.
        if crate::database::Backend::Postgres.is_compiled() {
            assert!(masked.contains("@db:5432/app"), "{masked}");
        }
        let in_query = super::mask_db_url("postgres://db/app?user=app&password=s3cret");
        assert!(!in_query.contains("s3cret"), "{in_query}");
    }
}
