//! The request id: echoed when the client sent a well-formed `X-Request-Id`,
//! generated otherwise; carried in a task-local so that error bodies built
//! anywhere in the request can include it.

pub const HEADER: &str = "x-request-id";

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled ("" outside a request).
pub fn current() -> String {
    REQUEST_ID.try_with(|id| id.clone()).unwrap_or_default()
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: std::future::Future>(id: String, fut: F) -> F::Output {
    REQUEST_ID.scope(id, fut).await
}

/// Accepts an incoming id of 1–128 characters from `[A-Za-z0-9._:-]`.
pub fn accept(incoming: Option<&str>) -> String {
    match incoming {
        Some(id)
            if !id.is_empty()
                && id.len() <= 128
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)) =>
        {
            id.to_string()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_good_ids_and_replaces_bad_ones() {
        assert_eq!(accept(Some("abc-123")), "abc-123");
        assert_ne!(accept(Some("bad id\r\n")), "bad id\r\n");
        assert_eq!(accept(None).len(), 36);
        assert_eq!(accept(Some(&"a".repeat(129))).len(), 36);
    }
}
