//! The client side of a connection, step by step: resolve, TCP, TLS, the HTTP upgrade (done by
//! hand, so every answer can be reported as it came), then a tokio-tungstenite stream.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// An open WebSocket client connection, plain or TLS.
pub(super) type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The largest HTTP response head read.
const MAX_HEAD: usize = 64 * 1024;
/// The most of a refusal's body kept for the report.
const MAX_BODY: usize = 16 * 1024;

/// Where to connect, from a `ws://` or `wss://` URL.
#[derive(Clone, Debug)]
pub(super) struct Target {
    pub(super) url: String,
    pub(super) tls: bool,
    /// The host name or address, IPv6 without brackets.
    pub(super) host: String,
    pub(super) port: u16,
    /// Path and query of the request line.
    pub(super) path: String,
    /// The `Host` header.
    authority: String,
}

impl Target {
    pub(super) fn parse(url: &str) -> Result<Target, String> {
        let uri: tokio_tungstenite::tungstenite::http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some("http" | "https") => {
                return Err(format!(
                    "{url}: give the WebSocket URL, ws://... or wss://..., not http(s)://"
                ));
            }
            _ => return Err(format!("{url}: expected a ws:// or wss:// URL")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("{url}: no host"))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| p.starts_with('/'))
            .unwrap_or("/")
            .to_owned();
        let authority = match uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Target {
            url: url.to_owned(),
            tls,
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            path,
            authority,
        })
    }

    /// The first address the host resolves to.
    pub(super) async fn resolve(&self) -> io::Result<SocketAddr> {
        self.resolve_all().await.map(|addrs| addrs[0])
    }

    /// Every address the host resolves to (at least one), in the resolver's order.
    pub(super) async fn resolve_all(&self) -> io::Result<Vec<SocketAddr>> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await?
            .collect();
        if addrs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the name resolved to no address",
            ));
        }
        Ok(addrs)
    }
}

/// Opens a TCP connection, from `source` when given (any port).
pub(super) async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let stream = match source {
        Some(ip) => {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(addr).await?
        }
        None => TcpStream::connect(addr).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// rustls with the Mozilla roots (webpki-roots) and the aws-lc-rs provider; offers HTTP/1.1
/// by ALPN, as the upgrade needs.
pub(super) fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS handshake over `tcp`, checking the certificate against `host`.
pub(super) async fn tls_wrap(
    tcp: TcpStream,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> io::Result<MaybeTlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(MaybeTlsStream::Rustls(tls))
}

/// How the token travels in the upgrade request.
#[derive(Clone, Copy, Debug)]
pub(super) enum Credential<'a> {
    /// `Sec-WebSocket-Protocol: jwt-auth, jwt.<token>`, as a browser must.
    Offer(&'a str),
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
}

/// The server's answer to the upgrade request.
#[derive(Clone, Debug)]
pub(super) struct Response {
    pub(super) status: u16,
    pub(super) reason: String,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Why an upgrade did not give a WebSocket.
#[derive(Debug)]
pub(super) enum UpgradeError {
    /// Reading or writing failed before a full response head.
    Io(io::Error),
    /// The server closed the connection before a full response head.
    Closed { received: usize },
    /// The answer does not start like HTTP.
    NotHttp(String),
    /// The response head was larger than we read.
    HeadTooLarge,
    /// A status other than 101.
    Refused(Response),
    /// 101, with a `Sec-WebSocket-Accept` that does not match the key.
    BadAccept(Response),
}

impl std::fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpgradeError::Io(e) => write!(f, "{e}"),
            UpgradeError::Closed { received } => write!(
                f,
                "the server closed the connection after {received} bytes, before an HTTP answer"
            ),
            UpgradeError::NotHttp(start) => write!(f, "not an HTTP answer: {start:?}"),
            UpgradeError::HeadTooLarge => write!(f, "HTTP answer head over {MAX_HEAD} bytes"),
            UpgradeError::Refused(r) => write!(f, "HTTP {} {}", r.status, r.reason),
            UpgradeError::BadAccept(_) => write!(f, "101 with a wrong Sec-WebSocket-Accept"),
        }
    }
}

/// The client's WebSocket settings: 4 KiB buffers (a load run holds thousands of these).
pub(super) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Sends the upgrade request and reads the answer; on 101 with the right accept key, returns
/// the WebSocket (with any bytes that came after the head) and the response.
pub(super) async fn upgrade(
    mut stream: MaybeTlsStream<TcpStream>,
    target: &Target,
    credential: Option<Credential<'_>>,
) -> Result<(Ws, Response), UpgradeError> {
    let key = generate_key();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        target.path, target.authority
    );
    match credential {
        Some(Credential::Offer(token)) => {
            request.push_str("Sec-WebSocket-Protocol: jwt-auth, jwt.");
            request.push_str(token);
            request.push_str("\r\n");
        }
        Some(Credential::Bearer(token)) => {
            request.push_str("Authorization: Bearer ");
            request.push_str(token);
            request.push_str("\r\n");
        }
        None => {}
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(UpgradeError::Io)?;
    drop(request);

    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    let head_len = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(UpgradeError::HeadTooLarge);
        }
        let n = stream.read(&mut chunk).await.map_err(UpgradeError::Io)?;
        if n == 0 {
            if !buf.is_empty() && !buf.starts_with(b"HTTP/") {
                return Err(UpgradeError::NotHttp(preview(&buf)));
            }
            return Err(UpgradeError::Closed {
                received: buf.len(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
            return Err(UpgradeError::NotHttp(preview(&buf)));
        }
    };
    let mut response = parse_head(&buf[..head_len])
        .ok_or_else(|| UpgradeError::NotHttp(preview(&buf[..head_len.min(buf.len())])))?;
    let tail = buf.split_off(head_len);
    if response.status != 101 {
        response.body = read_body(&mut stream, &response, tail).await;
        return Err(UpgradeError::Refused(response));
    }
    if response.header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(UpgradeError::BadAccept(response));
    }
    let ws =
        WebSocketStream::from_partially_read(stream, tail, Role::Client, Some(ws_config())).await;
    Ok((ws, response))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn preview(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
}

fn parse_head(head: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    let status = parts.next()?.parse().ok()?;
    let reason = parts.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect();
    Some(Response {
        status,
        reason,
        headers,
        body: Vec::new(),
    })
}

/// The body of a refusal: `Content-Length` bytes, or (chunked or unsized) what arrives before
/// the server closes or goes quiet; at most [`MAX_BODY`].
async fn read_body(
    stream: &mut MaybeTlsStream<TcpStream>,
    response: &Response,
    mut body: Vec<u8>,
) -> Vec<u8> {
    let length = response
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok());
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let want = length.unwrap_or(MAX_BODY).min(MAX_BODY);
    let read = async {
        let mut chunk = [0u8; 2048];
        while body.len() < want {
            if chunked && find(&body, b"0\r\n\r\n").is_some() {
                break;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => body.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), read).await;
    body.truncate(want);
    if chunked { dechunk(&body) } else { body }
}

/// Decodes a chunked body as far as it is well-formed.
fn dechunk(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = raw;
    while let Some(line_end) = find(rest, b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size else { break };
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(rest.len());
        out.extend_from_slice(&rest[start..end]);
        rest = rest.get(end + 2..).unwrap_or_default();
    }
    out
}

/// What a close code means, for reports: `1006 abnormal_closure: ...`.
pub(super) fn close_meaning(code: u16) -> String {
    let code = agentwire_state::CloseCode::from_u16(code);
    format!("{} {}: {}", code.as_u16(), code.name(), code.description())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("ws://127.0.0.1:8080/ws").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (false, "127.0.0.1", 8080, "/ws")
        );
        let t = Target::parse("wss://example.com/websocket?x=1").unwrap();
        assert_eq!(
            (t.tls, t.port, t.path.as_str()),
            (true, 443, "/websocket?x=1")
        );
        assert_eq!(t.authority, "example.com");
        let t = Target::parse("ws://[::1]:9000").unwrap();
        assert_eq!((t.host.as_str(), t.path.as_str()), ("::1", "/"));
        assert_eq!(t.authority, "[::1]:9000");
        assert!(Target::parse("http://example.com/ws").is_err());
        assert!(Target::parse("example.com").is_err());
    }

    #[test]
    fn heads_and_chunks() {
        let r = parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nX: y\r\n\r\n").unwrap();
        assert_eq!((r.status, r.reason.as_str()), (404, "Not Found"));
        assert_eq!(r.header("Content-Length"), Some("3"));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_none());
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
    }
}
