//! The steps of opening a connection, one at a time: parse the URL, resolve, TCP, TLS, the
//! HTTP upgrade (done by hand, so every answer can be reported as it came), then a
//! [`RawConnection`].
//!
//! [`Client`](crate::Client) and [`RawConnection::connect`] run these steps for you. A tool
//! that reports each step on its own (`agentwire probe`) or opens thousands of connections
//! from chosen source addresses (`agentwire load`) calls them one by one:
//!
//! ```no_run
//! use agentwire_client::transport::{self, Stream, Target};
//! use agentwire_client::Credentials;
//!
//! # async fn steps() -> Result<(), Box<dyn std::error::Error>> {
//! let target = Target::parse("ws://127.0.0.1:8080/ws")?;
//! let addr = target.resolve_all().await?[0];
//! let tcp = transport::tcp_connect(addr, None).await?;
//! let credentials = Credentials::subprotocol("eyJhbGciOi...");
//! let (mut connection, response) =
//!     transport::upgrade(Stream::plain(tcp), &target, &credentials).await?;
//! assert_eq!(response.header("sec-websocket-protocol"), Some("jwt-auth"));
//! let established = connection.recv_frame().await?; // connection_established, or an error
//! # Ok(()) }
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};
#[cfg(feature = "rustls")]
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::credentials::Credentials;
use crate::error::{Error, UpgradeError};
use crate::raw::RawConnection;

/// The largest HTTP response head read.
const MAX_HEAD: usize = 64 * 1024;
/// The most of a refusal's body kept.
const MAX_BODY: usize = 16 * 1024;

/// Where to connect, from a `ws://` or `wss://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    url: String,
    tls: bool,
    host: String,
    port: u16,
    path: String,
    authority: String,
}

impl Target {
    /// Reads a `ws://` or `wss://` URL (the port defaults to 80 or 443, the path to `/`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUrl`] for anything else, with a hint for `http(s)://`.
    ///
    /// ```
    /// use agentwire_client::transport::Target;
    ///
    /// let target = Target::parse("wss://chat.example.com/ws?tenant=a").unwrap();
    /// assert_eq!((target.is_tls(), target.port(), target.path()), (true, 443, "/ws?tenant=a"));
    /// assert!(Target::parse("https://chat.example.com/ws").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Target, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let uri: tokio_tungstenite::tungstenite::http::Uri = url
            .parse()
            .map_err(|e| invalid(format!("not a URL: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("ws") => false,
            Some("wss") => true,
            Some("http" | "https") => {
                return Err(invalid(
                    "give the WebSocket URL, ws://... or wss://..., not http(s)://".to_owned(),
                ));
            }
            _ => return Err(invalid("expected a ws:// or wss:// URL".to_owned())),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("no host".to_owned()))?;
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

    /// The URL as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether this is `wss://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The host name or address (an IPv6 address without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path and query of the request line.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The same target asking to resume the stream: the query's `epoch` and `since` are
    /// replaced by these (see docs/protocol.md, "Resume after reconnect").
    ///
    /// ```
    /// use agentwire_client::transport::Target;
    ///
    /// let target = Target::parse("ws://h/ws?tenant=a&since=1").unwrap();
    /// assert_eq!(target.with_resume("ep_1", 17).path(), "/ws?tenant=a&epoch=ep_1&since=17");
    /// ```
    #[must_use]
    pub fn with_resume(&self, epoch: &str, since: u64) -> Target {
        let (path, query) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let mut kept: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| {
                let name = p.split('=').next().unwrap_or_default();
                name != "epoch" && name != "since"
            })
            .collect();
        let epoch = format!("epoch={}", percent_encode(epoch));
        let since = format!("since={since}");
        kept.push(&epoch);
        kept.push(&since);
        Target {
            path: format!("{path}?{}", kept.join("&")),
            ..self.clone()
        }
    }

    /// Every address the host resolves to (at least one), in the resolver's order.
    ///
    /// # Errors
    ///
    /// [`Error::Resolve`] when the name does not resolve.
    pub async fn resolve_all(&self) -> Result<Vec<SocketAddr>, Error> {
        let resolve_error = |message: String| Error::Resolve {
            host: self.host.clone(),
            message,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| resolve_error(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error("the name resolved to no address".to_owned()));
        }
        Ok(addrs)
    }
}

/// Escapes what is not unreserved in a query value (ids are plain ASCII; this is a guard).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Opens a TCP connection (with `TCP_NODELAY`), from `source` when given (any port).
///
/// # Errors
///
/// The I/O error of the bind or the connect.
pub async fn tcp_connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
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

/// A byte stream to run the upgrade over: plain TCP, or TLS over TCP.
#[derive(Debug)]
pub struct Stream(pub(crate) MaybeTlsStream<TcpStream>);

impl Stream {
    /// Plain TCP (`ws://`).
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream(MaybeTlsStream::Plain(tcp))
    }

    /// The TLS handshake over `tcp`, checking the certificate against `host` (`wss://`).
    ///
    /// # Errors
    ///
    /// The I/O error of the handshake; its text carries rustls's reason (`UnknownIssuer`,
    /// `NotValidForName`, ...).
    #[cfg(feature = "rustls")]
    pub async fn tls(tcp: TcpStream, host: &str, config: TlsConfig) -> io::Result<Stream> {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(Stream(MaybeTlsStream::Rustls(tls)))
    }
}

/// The TLS configuration of `wss://` connections.
#[cfg(feature = "rustls")]
pub type TlsConfig = Arc<rustls::ClientConfig>;

/// rustls with the Mozilla roots (webpki-roots) and the aws-lc-rs provider, offering
/// HTTP/1.1 by ALPN as the upgrade needs. Built once per process.
///
/// # Errors
///
/// [`Error::Tls`] when the provider cannot be set up.
#[cfg(feature = "rustls")]
pub fn default_tls_config() -> Result<TlsConfig, Error> {
    static CONFIG: OnceLock<Result<TlsConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
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
        })
        .clone()
        .map_err(|message| Error::Tls { message })
}

/// The server's answer to the upgrade request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status (101 on success).
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// The headers, in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body of a refusal (up to 16 KiB; empty for 101).
    pub body: Vec<u8>,
    /// From an agentwire JSON refusal body `{"error": {"code", "message"}}` (or
    /// `{"code", "message"}`): the code.
    error_code: Option<String>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The stable code of an agentwire JSON refusal body (`invalid_resume_query`,
    /// `marker_missing`, ...).
    pub fn error_code(&self) -> Option<&str> {
        self.error_code.as_deref()
    }

    fn set_body(&mut self, body: Vec<u8>) {
        self.error_code = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|value| {
                let inner = value
                    .get("error")
                    .filter(|e| e.is_object())
                    .unwrap_or(&value);
                inner.get("code")?.as_str().map(str::to_owned)
            });
        self.body = body;
    }
}

/// The WebSocket settings of client connections: 4 KiB read buffer, writes sent at once (a
/// load run holds thousands of connections).
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Sends the upgrade request for `target` with `credentials` and reads the answer; on 101
/// with the right accept key, returns the connection (with any bytes that came after the
/// head) and the response. The subprotocol answer is not checked here (see
/// [`Response::header`]).
///
/// # Errors
///
/// [`UpgradeError`]: I/O, no HTTP answer, a refusal (with its body), a wrong accept key.
pub async fn upgrade(
    stream: Stream,
    target: &Target,
    credentials: &Credentials,
) -> Result<(RawConnection, Response), UpgradeError> {
    let mut stream = stream.0;
    let key = generate_key();
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
        target.path, target.authority
    );
    credentials.write_headers(&mut request);
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| UpgradeError::io(&e))?;
    drop(request);

    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 2048];
    let mut searched = 0;
    let head_len = loop {
        if let Some(at) = find_head_end(&buf[searched..]) {
            break searched + at + 4;
        }
        // The end may straddle two reads: look again from its first possible byte.
        searched = buf.len().saturating_sub(3);
        if buf.len() > MAX_HEAD {
            return Err(UpgradeError::HeadTooLarge { max: MAX_HEAD });
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| UpgradeError::io(&e))?;
        if n == 0 {
            if !buf.is_empty() && !buf.starts_with(b"HTTP/") {
                return Err(UpgradeError::NotHttp {
                    start: preview(&buf),
                });
            }
            return Err(UpgradeError::Closed {
                received: buf.len(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() >= 5 && !buf.starts_with(b"HTTP/") {
            return Err(UpgradeError::NotHttp {
                start: preview(&buf),
            });
        }
    };
    let mut response = parse_head(&buf[..head_len]).ok_or_else(|| UpgradeError::NotHttp {
        start: preview(&buf[..head_len.min(buf.len())]),
    })?;
    let tail = buf.split_off(head_len);
    if response.status != 101 {
        let body = read_body(&mut stream, &response, tail).await;
        response.set_body(body);
        return Err(UpgradeError::Refused(Box::new(response)));
    }
    if response.header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes()).as_str()) {
        return Err(UpgradeError::BadAccept(Box::new(response)));
    }
    let ws =
        WebSocketStream::from_partially_read(stream, tail, Role::Client, Some(ws_config())).await;
    Ok((RawConnection::new(ws), response))
}

/// Every step for `target`: resolve, TCP (each address in turn, like a browser), TLS for
/// `wss://` and the upgrade, all within `timeout`.
pub(crate) async fn open(
    target: &Target,
    credentials: &Credentials,
    tls: &TlsSetting,
    timeout: Duration,
) -> Result<(RawConnection, Response), Error> {
    credentials.check()?;
    let steps = async {
        let addrs = target.resolve_all().await?;
        let mut last = None;
        let mut tcp = None;
        for addr in addrs {
            match tcp_connect(addr, None).await {
                Ok(stream) => {
                    tcp = Some(stream);
                    break;
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        let tcp = match (tcp, last) {
            (Some(tcp), _) => tcp,
            (None, Some((addr, e))) => {
                return Err(Error::Connect {
                    addr,
                    kind: e.kind(),
                    message: e.to_string(),
                });
            }
            (None, None) => {
                return Err(Error::Resolve {
                    host: target.host.clone(),
                    message: "the name resolved to no address".to_owned(),
                });
            }
        };
        let stream = if target.tls {
            tls.wrap(tcp, &target.host).await?
        } else {
            Stream::plain(tcp)
        };
        Ok(upgrade(stream, target, credentials).await?)
    };
    tokio::time::timeout(timeout, steps)
        .await
        .map_err(|_| Error::Timeout {
            what: "the connection handshake",
        })?
}

/// How `wss://` connections get their TLS configuration.
#[derive(Clone, Debug, Default)]
pub(crate) enum TlsSetting {
    /// [`default_tls_config`].
    #[default]
    Default,
    /// A caller's configuration.
    #[cfg(feature = "rustls")]
    Custom(Arc<rustls::ClientConfig>),
}

impl TlsSetting {
    #[cfg(feature = "rustls")]
    async fn wrap(&self, tcp: TcpStream, host: &str) -> Result<Stream, Error> {
        let config = match self {
            TlsSetting::Default => default_tls_config()?,
            TlsSetting::Custom(config) => Arc::clone(config),
        };
        Stream::tls(tcp, host, config)
            .await
            .map_err(|e| Error::Tls {
                message: e.to_string(),
            })
    }

    #[cfg(not(feature = "rustls"))]
    async fn wrap(&self, _tcp: TcpStream, _host: &str) -> Result<Stream, Error> {
        Err(Error::TlsUnavailable)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Where `\r\n\r\n` starts (a fixed-size compare, no `memcmp` call per position).
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w[0] == b'\r' && w[1] == b'\n' && w[2] == b'\r' && w[3] == b'\n')
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
        error_code: None,
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
        assert_eq!(
            Target::parse("http://example.com/ws").unwrap_err().code(),
            "invalid_url"
        );
        assert!(Target::parse("example.com").is_err());
    }

    #[test]
    fn resume_query() {
        let t = Target::parse("ws://h/ws").unwrap();
        assert_eq!(t.with_resume("ep_a", 0).path(), "/ws?epoch=ep_a&since=0");
        let t = Target::parse("ws://h/ws?epoch=old&x=1&since=9").unwrap();
        assert_eq!(
            t.with_resume("ep a", 3).path(),
            "/ws?x=1&epoch=ep%20a&since=3"
        );
    }

    #[test]
    fn heads_and_chunks() {
        let r = parse_head(b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nX: y\r\n\r\n").unwrap();
        assert_eq!((r.status, r.reason.as_str()), (404, "Not Found"));
        assert_eq!(r.header("Content-Length"), Some("3"));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_none());
        assert_eq!(dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), b"abcde");
        let mut r = parse_head(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        r.set_body(br#"{"error":{"code":"invalid_resume_query","message":"m"}}"#.to_vec());
        assert_eq!(r.error_code(), Some("invalid_resume_query"));
        assert_eq!(
            UpgradeError::Refused(Box::new(r)).code(),
            "invalid_resume_query"
        );
    }
}
