//! The mail outbox: an SMTP outage delays mail and loses none; each mail is
//! sent once, also with several instances; permanent refusals are dead; mails
//! are delivered several at a time.

use std::time::Duration;

use crate::support::{Backend, SmtpSink, TestApp, TestFleet, TestSetup, PASSWORD};

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

/// One instance delivers several mails at once, each over a connection of its
/// own: the relay answers the end of a message only once a second connection is
/// open, so a sender that delivers one mail at a time never has two open (it
/// waits 5 s each time instead).
#[actix_web::test]
async fn mails_are_delivered_several_at_a_time() {
    let relay = SmtpSink::start().await;
    relay.hold_until_open(2, Duration::from_secs(5));
    let mut setup = TestSetup::new(Backend::Sqlite);
    setup.smtp_sink = Some(relay.clone());
    let app = setup.spawn().await;
    let emails: Vec<String> = (0..2)
        .map(|i| format!("several{i}-{}@example.com", uuid::Uuid::new_v4().simple()))
        .collect();
    for e in &emails {
        assert_eq!(app.register(e, PASSWORD).await.status, 202);
    }
    for e in &emails {
        relay.wait_for(e).await;
    }
    assert_eq!(relay.most_sessions_at_once(), 2);
}

/// Mails to one address are delivered one after the other, in the order they
/// were queued, while other addresses' go beside them: registering twice (the
/// second registration voids the first link) mails the link that works last.
/// The relay holds each message up to a second for a second connection, which
/// mails to one address never open.
#[actix_web::test]
async fn mails_to_one_address_keep_their_order() {
    let relay = SmtpSink::start().await;
    relay.hold_until_open(2, Duration::from_secs(1));
    let mut setup = TestSetup::new(Backend::Sqlite);
    setup.smtp_sink = Some(relay.clone());
    let app = setup.spawn().await;
    let email = format!("order-{}@example.com", uuid::Uuid::new_v4().simple());
    for _ in 0..2 {
        assert_eq!(app.register(&email, PASSWORD).await.status, 202);
    }
    the_second_link_works_and_came_alone(&app, &relay, &email).await;
}

/// The second link mailed to `email` verifies it (it voided the first), and
/// the relay never had two sessions open at once.
async fn the_second_link_works_and_came_alone(app: &TestApp, relay: &SmtpSink, email: &str) {
    let last = app.verification_token(email, 2).await;
    let res = app
        .post(
            "/api/v1/auth/verify-email",
            serde_json::json!({"token": last}),
        )
        .await;
    assert_eq!(
        res.status, 200,
        "the link mailed last is the one that works"
    );
    assert_eq!(relay.most_sessions_at_once(), 1);
}

/// Mails waiting behind an earlier one to the same address count among the
/// eight an instance may hold: twenty mails to one address, delivered one at a
/// time (the relay holds each up to a second), are never all claimed at once,
/// so their leases do not run out while they wait.
#[actix_web::test]
async fn mails_waiting_behind_one_address_count_among_those_claimed() {
    let relay = SmtpSink::start().await;
    relay.hold_until_open(2, Duration::from_secs(1));
    let mut setup = TestSetup::new(Backend::Sqlite).env("RATE_LIMIT_REGISTER", "1000");
    setup.smtp_sink = Some(relay.clone());
    let app = setup.spawn().await;
    let email = format!("queued-{}@example.com", uuid::Uuid::new_v4().simple());
    for _ in 0..20 {
        assert_eq!(app.register(&email, PASSWORD).await.status, 202);
    }
    let mut most = 0;
    for _ in 0..30 {
        most = most.max(app.probe().mail_claimed().await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(most >= 1, "nothing was claimed");
    assert!(most <= 8, "{most} claimed at once");
}

/// Across instances too, one address gets its mails in order: the second
/// registration, on another instance, is queued while the first link is being
/// delivered (the relay holds it up to a second for a second connection).
/// The other instance waits for that delivery instead of opening a second
/// connection, and the link mailed last is the one that works.
#[actix_web::test]
async fn mails_to_one_address_keep_their_order_across_instances() {
    let apps = TestFleet::spawn(2).await;
    let relay = &apps.smtp;
    relay.hold_until_open(2, Duration::from_secs(1));
    let email = format!("order-{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(apps[0].register(&email, PASSWORD).await.status, 202);
    for _ in 0..200 {
        if relay.sessions_open() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        relay.sessions_open(),
        1,
        "the first link is being delivered"
    );
    assert_eq!(apps[1].register(&email, PASSWORD).await.status, 202);
    the_second_link_works_and_came_alone(&apps[1], relay, &email).await;
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
