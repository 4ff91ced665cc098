//! Reading a component's Prometheus `/metrics` endpoint.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The body of `GET /metrics` on `addr`; panics unless it answers 200.
pub async fn scrape_metrics(addr: SocketAddr) -> String {
    try_scrape_metrics(addr)
        .await
        .unwrap_or_else(|e| panic!("scrape {addr}: {e}"))
}

/// The body of `GET /metrics` on `addr`, or why it could not be read (for
/// callers that scrape components which may be down).
pub async fn try_scrape_metrics(addr: SocketAddr) -> std::io::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = "GET /metrics HTTP/1.1\r\nHost: orderly\r\nConnection: close\r\n\r\n";
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    if !response.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(response));
    }
    Ok(response)
}
