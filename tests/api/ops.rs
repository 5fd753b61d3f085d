use crate::support::{Backend, TestApp, TestSetup};

#[actix_web::test]
async fn health_and_ready() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        let app = TestApp::spawn(backend).await;
        assert_eq!(app.get("/health").await.status, 200);
        let ready = app.get("/ready").await;
        assert_eq!(ready.status, 200, "{backend:?}");
        assert_eq!(ready.json()["status"], "ready");
    }
}

#[actix_web::test]
async fn ready_names_a_dependency_that_is_down() {
    // Nothing listens on port 1: Redis is configured but down.
    let app = TestSetup::new(Backend::Sqlite)
        .env("REDIS_ENDPOINT", "redis://127.0.0.1:1")
        .spawn()
        .await;
    let res = app.get("/ready").await;
    assert_eq!(res.status, 503);
    assert_eq!(res.code(), "not_ready");
    assert!(res.json()["detail"].as_str().unwrap().contains("redis"));
    assert!(!res.json()["detail"].as_str().unwrap().contains("database"));
    assert_eq!(app.get("/health").await.status, 200);
}

#[actix_web::test]
async fn ready_with_a_live_redis() {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let app = TestSetup::new(Backend::Sqlite)
        .env("REDIS_ENDPOINT", &url)
        .spawn()
        .await;
    assert_eq!(app.get("/ready").await.status, 200);
}

#[actix_web::test]
async fn jwks_serves_the_signing_key() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let jwks = app.get("/.well-known/jwks.json").await.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["e"], "AQAB");
    assert!(key["n"].as_str().unwrap().len() > 300);
    assert!(key["kid"].is_string());
}

#[actix_web::test]
async fn openapi_describes_every_mounted_route() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status, 200);
    let doc = res.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in suma_auth::http::routes::MOUNTED {
        let op = &doc["paths"][*path][*method];
        assert!(
            op.is_object(),
            "{method} {path} is mounted but not in openapi.json"
        );
        assert!(op["responses"].is_object());
    }
    // And nothing documented is missing from the server.
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, suma_auth::http::routes::MOUNTED.len());
    // Every mounted route answers something other than "no such route".
    for (method, path) in suma_auth::http::routes::MOUNTED {
        let req = match *method {
            "get" => app.client.get(app.url(path)),
            "post" => app.client.post(app.url(path)),
            "delete" => app.client.delete(app.url(path)),
            "put" => app.client.put(app.url(path)),
            other => panic!("unexpected method {other}"),
        };
        let res = app.send(req, None).await;
        assert_ne!(res.code(), "not_found", "{method} {path}");
        assert_ne!(res.code(), "method_not_allowed", "{method} {path}");
    }
}

#[actix_web::test]
async fn postgres_migrations_are_recorded_like_golang_migrate() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let db = app._db.as_ref().unwrap();
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    let row = client
        .query_one("SELECT version, dirty FROM schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        suma_auth::storage::postgres::migrate::latest()
    );
    assert!(!row.get::<_, bool>(1));
}

#[actix_web::test]
async fn several_instances_starting_together_migrate_once() {
    let db = crate::support::TestDatabase::create().await;
    let starts = (0..4).map(|_| {
        TestSetup::new(Backend::Sqlite) // replaced by DATABASE_URL below
            .env("DATABASE_URL", &db.url)
            .spawn()
    });
    let apps = futures_util::future::join_all(starts).await;
    for app in &apps {
        assert_eq!(app.get("/ready").await.status, 200);
    }
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_web::rt::spawn(conn);
    let rows = client
        .query("SELECT version, dirty FROM schema_migrations", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].get::<_, bool>(1));
}
