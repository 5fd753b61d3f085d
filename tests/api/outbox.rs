//! The mail outbox: an SMTP outage delays mail and loses none; each mail is
//! sent once, also with several instances; permanent refusals are dead.

use std::time::Duration;

use crate::support::{Backend, SmtpSink, TestFleet, TestSetup, PASSWORD};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn relay_on(setup: TestSetup, port: u16) -> TestSetup {
    setup
        .without_smtp()
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", &port.to_string())
        .env("SMTP_TLS", "none")
        .env("MAIL_RETRY_BASE_MS", "100")
}

#[actix_web::test]
async fn an_smtp_outage_delays_mail_and_loses_none() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let port = free_port();
        let app = relay_on(TestSetup::new(backend), port).spawn().await;
        let emails: Vec<String> = (0..5)
            .map(|i| format!("o{i}-{}@example.com", uuid::Uuid::new_v4().simple()))
            .collect();
        for e in &emails {
            assert_eq!(app.register(e, PASSWORD).await.status, 202);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let stats = app.services.mailer.stats().await.unwrap();
        assert_eq!(
            stats.pending, 5,
            "{backend:?}: queued while the relay is down"
        );

        let relay = SmtpSink::start_on(port).await;
        for e in &emails {
            relay.wait_for(e).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        for e in &emails {
            assert_eq!(relay.count_to(e), 1, "{backend:?}: {e} exactly once");
        }
        assert_eq!(app.services.mailer.stats().await.unwrap().pending, 0);
    }
}

#[actix_web::test]
async fn three_instances_send_each_mail_once() {
    let apps = TestFleet::spawn(3).await;
    let relay = &apps.smtp;
    let emails: Vec<String> = (0..12)
        .map(|i| format!("m{i}-{}@example.com", uuid::Uuid::new_v4().simple()))
        .collect();
    let regs = emails
        .iter()
        .enumerate()
        .map(|(i, e)| apps[i % 3].register(e, PASSWORD));
    for r in futures_util::future::join_all(regs).await {
        assert_eq!(r.status, 202);
    }
    for e in &emails {
        relay.wait_for(e).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(relay.all().len(), 12);
}

#[actix_web::test]
async fn a_permanent_refusal_is_dead_and_blocks_nothing() {
    let app = TestSetup::new(Backend::Sqlite)
        .env("MAIL_RETRY_BASE_MS", "100")
        .spawn()
        .await;
    assert_eq!(
        app.register("bounce-me@example.com", PASSWORD).await.status,
        202
    );
    let email = app.verified_user().await;
    for _ in 0..50 {
        if app.services.mailer.stats().await.unwrap().dead == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = app.services.mailer.stats().await.unwrap();
    assert_eq!((stats.dead, stats.pending), (1, 0));
    assert_eq!(app.smtp().count_to(&email), 1);
}
