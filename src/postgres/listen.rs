//! A dedicated session that LISTENs on one channel and hands each
//! notification's payload to its caller, reconnecting with back-off until
//! shutdown. Notifications sent while no session listened are lost, so the
//! caller also hears of every (re)connect and can make up for them.

use std::time::Duration;

use futures::{StreamExt, stream};
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;

use super::{PostgresConfig, connect, describe, detect_dead_peers, session_config};
use crate::backoff::Backoff;

/// How long connecting the listening session may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts to listen again.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// What a listening session hears.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard<'a> {
    /// The session (re)connected and listens: anything notified before
    /// was not heard.
    Listening,
    /// A notification's payload.
    Payload(&'a str),
}

/// Listens on `channel` (a plain lower-case identifier) until `shutdown`,
/// calling `heard` for each notification and after each (re)connect. The
/// session is named `application` in `pg_stat_activity`.
pub async fn listen(
    postgres: &PostgresConfig,
    channel: &str,
    application: &str,
    mut heard: impl FnMut(Heard<'_>) + Send,
    shutdown: &CancellationToken,
) {
    let mut backoff = Backoff::new(MAX_PAUSE);
    while !shutdown.is_cancelled() {
        let session = session(postgres, channel, application, &mut heard, &mut backoff);
        let error = tokio::select! {
            () = shutdown.cancelled() => return,
            error = session => error,
        };
        let pause = backoff.next_pause();
        tracing::warn!(%channel, %error, retry_in = ?pause, "listening session ended; reconnecting");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One listening session; returns why it ended.
async fn session(
    postgres: &PostgresConfig,
    channel: &str,
    application: &str,
    heard: &mut (impl FnMut(Heard<'_>) + Send),
    backoff: &mut Backoff,
) -> String {
    let mut config = match session_config(postgres) {
        Ok(config) => config,
        Err(error) => return format!("bad ORDERLY_DATABASE_URL: {error}"),
    };
    config.application_name(application);
    // A partitioned server must end the session, not leave it silently deaf.
    detect_dead_peers(&mut config);
    config.connect_timeout(CONNECT_TIMEOUT);
    let (client, mut connection) = match connect(&config, postgres).await {
        Ok(connected) => connected,
        Err(error) => return describe(&error),
    };
    let (payloads, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (ended, mut ended_rx) = tokio::sync::oneshot::channel();
    let listened = channel.to_owned();
    // The connection must be polled for notifications to arrive.
    let driver = tokio::spawn(async move {
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) if n.channel() == listened => {
                    let _ = payloads.send(n.payload().to_owned());
                }
                Ok(_) => {}
                Err(error) => {
                    let _ = ended.send(describe(&error));
                    return;
                }
            }
        }
        let _ = ended.send("connection closed".to_owned());
    });
    if let Err(error) = client.batch_execute(&format!("LISTEN {channel}")).await {
        driver.abort();
        return describe(&error);
    }
    backoff.reset();
    tracing::debug!(%channel, "listening");
    heard(Heard::Listening);
    let reason = loop {
        tokio::select! {
            Some(payload) = received.recv() => heard(Heard::Payload(&payload)),
            reason = &mut ended_rx => {
                break reason.unwrap_or_else(|_| "connection task ended".to_owned());
            }
        }
    };
    // What arrived before the session ended is still news.
    while let Ok(payload) = received.try_recv() {
        heard(Heard::Payload(&payload));
    }
    drop(client);
    reason
}
