//! A TCP proxy in front of Redis whose connections a test can cut, to see
//! the service lose its Redis connections and recover.

use std::net::SocketAddr;

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tokio_util::sync::{CancellationToken, DropGuard};

/// Forwards 127.0.0.1:<port> to a Redis; stopped on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    cuts: watch::Sender<u64>,
    _stop: DropGuard,
}

impl Proxy {
    /// Starts forwarding to `upstream` (host:port).
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (cuts, _) = watch::channel(0);
        let stop = CancellationToken::new();
        let (accepting, cut_signal) = (stop.clone(), cuts.clone());
        tokio::spawn(async move {
            loop {
                let mut inbound = tokio::select! {
                    _ = accepting.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => socket,
                        Err(_) => continue,
                    },
                };
                let upstream = upstream.clone();
                let mut cut = cut_signal.subscribe();
                let stopping = accepting.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    // Dropping both sockets is the cut.
                    tokio::select! {
                        _ = copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                        _ = stopping.cancelled() => {}
                    }
                });
            }
        });
        Self {
            addr,
            cuts,
            _stop: stop.drop_guard(),
        }
    }

    /// Closes every connection open through the proxy; new ones still work.
    pub fn cut(&self) {
        self.cuts.send_modify(|generation| *generation += 1);
    }
}
