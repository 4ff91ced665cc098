//! A TCP proxy a test puts in front of Postgres or Redis to take the
//! dependency away and give it back, without touching the shared server.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Forwards `127.0.0.1:<port>` to an upstream; stopped on drop.
#[derive(Debug)]
pub struct TcpProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    cuts: watch::Sender<u64>,
    refusing: Arc<AtomicBool>,
    blackholed: watch::Sender<bool>,
    _stop: DropGuard,
}

impl TcpProxy {
    /// Starts forwarding to `upstream` (host:port).
    pub async fn start(upstream: impl Into<String>) -> Self {
        let upstream = upstream.into();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cuts, _) = watch::channel(0);
        let refusing = Arc::new(AtomicBool::new(false));
        let (blackholed, _) = watch::channel(false);
        let stop = CancellationToken::new();
        let (accepting, cut_signal, refuse) = (stop.clone(), cuts.clone(), refusing.clone());
        let hole = blackholed.clone();
        tokio::spawn(async move {
            loop {
                let mut inbound = tokio::select! {
                    () = accepting.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(_) => continue,
                    },
                };
                if refuse.load(Ordering::SeqCst) {
                    // Accept-and-close looks like a server that is down.
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = cut_signal.subscribe();
                let mut hole = hole.subscribe();
                let stopping = accepting.clone();
                tokio::spawn(async move {
                    if *hole.borrow_and_update() {
                        // Open, and silent for good: a half-open peer.
                        stopping.cancelled().await;
                        return;
                    }
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    // Dropping both sockets is the cut.
                    let silenced = tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => false,
                        _ = cut.changed() => false,
                        _ = hole.wait_for(|on| *on) => true,
                        () = stopping.cancelled() => false,
                    };
                    if silenced {
                        // Both sockets stay open and nothing crosses them.
                        stopping.cancelled().await;
                    }
                });
            }
        });
        Self {
            addr,
            cuts,
            refusing,
            blackholed,
            _stop: stop.drop_guard(),
        }
    }

    /// Closes every connection open through the proxy; new ones still work.
    pub fn cut(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }

    /// Takes the upstream away: open connections are cut and new ones are
    /// closed at once, until [`TcpProxy::restore`].
    pub fn take_down(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.cut();
    }

    /// Lets connections through again (a blackholed connection stays
    /// silent: its peer must notice on its own, as after a real partition).
    pub fn restore(&self) {
        self.refusing.store(false, Ordering::SeqCst);
        self.blackholed.send_replace(false);
    }

    /// Stops forwarding without closing anything: open connections and new
    /// ones stay open and silent, like a peer behind a network partition
    /// (half-open connections), until [`TcpProxy::restore`] (for new ones).
    pub fn blackhole(&self) {
        self.blackholed.send_replace(true);
    }
}
