use crate::support::{redis_url, Backend, TestApp, TestSetup};

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

/// Redis connections send each command at once (`TCP_NODELAY`). A
/// multiplexed connection writes the commands of concurrent requests one
/// after another; with Nagle's algorithm each would wait for the previous
/// one's acknowledgement.
#[actix_web::test]
async fn redis_connections_send_without_delay() {
    let app = TestSetup::new(Backend::Postgres)
        .env("REDIS_ENDPOINT", &redis_url())
        .spawn()
        .await;
    let (_, pair) = app.signed_in().await;
    assert_eq!(app.me(&pair.access_token).await.status, 200);
    let port = redis::Client::open(redis_url().as_str())
        .unwrap()
        .get_connection_info()
        .addr
        .to_string()
        .rsplit(':')
        .next()
        .unwrap()
        .parse::<u16>()
        .unwrap();
    let sockets = nodelay_of_sockets_to(port);
    assert!(!sockets.is_empty(), "no connection to Redis found");
    assert!(sockets.iter().all(|on| *on), "{sockets:?}");
}

/// `TCP_NODELAY` of every TCP socket of this process connected to `port`.
fn nodelay_of_sockets_to(port: u16) -> Vec<bool> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // SAFETY: the buffers are sized as passed; a closed or reused fd
        // only makes a call fail, which skips it.
        unsafe {
            let mut addr: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(fd, (&raw mut addr).cast(), &mut len) != 0 {
                continue;
            }
            let peer_port = match i32::from(addr.ss_family) {
                libc::AF_INET => (*(&raw const addr).cast::<libc::sockaddr_in>()).sin_port,
                libc::AF_INET6 => (*(&raw const addr).cast::<libc::sockaddr_in6>()).sin6_port,
                _ => continue,
            };
            if u16::from_be(peer_port) != port {
                continue;
            }
            let mut on: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            if libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw mut on).cast(),
                &mut len,
            ) == 0
            {
                found.push(on != 0);
            }
        }
    }
    found
}
