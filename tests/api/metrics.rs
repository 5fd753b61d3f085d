use crate::support::{Backend, TestSetup, PASSWORD};

#[actix_web::test]
async fn statsd_receives_endpoint_and_login_metrics() {
    let app = TestSetup::new(Backend::Sqlite).with_statsd().spawn().await;
    let statsd = app.statsd.clone().unwrap();
    let email = app.verified_user().await;
    assert_eq!(app.login(&email, PASSWORD).await.status, 200);
    assert_eq!(app.login(&email, "wrong password again").await.status, 401);
    assert_eq!(app.get("/api/v1/nope").await.status, 404);

    let line = statsd
        .wait_for(
            "auth.endpoint.requests:1|c",
            &[
                "endpoint:/api/v1/auth/login",
                "env:test",
                "service:suma-auth",
                "version:",
            ],
        )
        .await;
    assert!(!line.contains('@'), "no emails in tags: {line}");
    statsd.wait_for("auth.login.success:1|c", &[]).await;
    statsd
        .wait_for("auth.login.failure:1|c", &["reason:invalid_credentials"])
        .await;
    statsd
        .wait_for(
            "auth.endpoint.errors:1|c",
            &[
                "endpoint:/api/v1/auth/login",
                "status:401",
                "status_class:4xx",
            ],
        )
        .await;
    statsd
        .wait_for(
            "auth.endpoint.errors:1|c",
            &["endpoint:unmatched", "status:404"],
        )
        .await;
    statsd
        .wait_for(
            "auth.endpoint.duration:",
            &["|d", "endpoint:/api/v1/auth/login"],
        )
        .await;
    for line in statsd.lines() {
        assert!(!line.contains(&email), "{line}");
    }
}
