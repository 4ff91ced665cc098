//! A TCP proxy a test puts in front of Postgres, Redis or a broker to take
//! the dependency away and give it back, or slow it down, without touching
//! the shared server.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional},
    net::{TcpListener, TcpStream},
    sync::{mpsc, watch},
    time::Instant,
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
    delay: Arc<Delay>,
    _stop: DropGuard,
}

/// How long replies are held back: `set` once [`TcpProxy::delay_replies`]
/// was called, so connections opened from then on go through the delay line.
#[derive(Debug, Default)]
struct Delay {
    set: AtomicBool,
    millis: AtomicU64,
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
        let delay = Arc::new(Delay::default());
        let delays = delay.clone();
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
                let delay = delays.set.load(Ordering::SeqCst).then(|| delays.clone());
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
                    let forward = async {
                        match delay {
                            Some(delay) => {
                                forward_delayed(&mut inbound, &mut outbound, &delay).await
                            }
                            None => copy_bidirectional(&mut inbound, &mut outbound)
                                .await
                                .map(|_| ()),
                        }
                    };
                    let silenced = tokio::select! {
                        _ = forward => false,
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
            delay,
            _stop: stop.drop_guard(),
        }
    }

    /// Holds every reply from the upstream back for `delay` (zero: none),
    /// as a slow network or server would; requests pass at once. Applies to
    /// connections opened after the first call (earlier ones are not
    /// affected, even later).
    pub fn delay_replies(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.delay.millis.store(millis, Ordering::SeqCst);
        self.delay.set.store(true, Ordering::SeqCst);
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

/// Forwards both ways like `copy_bidirectional`, each chunk of the
/// upstream's replies delivered `delay` after it arrived (order kept).
async fn forward_delayed(
    inbound: &mut TcpStream,
    outbound: &mut TcpStream,
    delay: &Delay,
) -> std::io::Result<()> {
    let (mut client_reads, mut client_writes) = inbound.split();
    let (mut upstream_reads, mut upstream_writes) = outbound.split();
    let requests = async {
        tokio::io::copy(&mut client_reads, &mut upstream_writes).await?;
        upstream_writes.shutdown().await
    };
    let (line, mut due) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let replies_in = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = upstream_reads.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let at = Instant::now() + Duration::from_millis(delay.millis.load(Ordering::SeqCst));
            if line.send((at, buffer[..read].to_vec())).is_err() {
                return Ok(());
            }
        }
    };
    let replies_out = async {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            client_writes.write_all(&chunk).await?;
        }
        client_writes.shutdown().await
    };
    tokio::try_join!(requests, replies_in, replies_out).map(|_| ())
}
