//! Raw mode: one WebSocket connection, any frame out, every frame in, nothing interpreted.

use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use agentwire_events::{ConnectionEstablished, Frame, Payload, parse_outbound};
use agentwire_state::{CloseCode, CloseInfo};
use futures_util::{SinkExt, Stream, StreamExt, TryFutureExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::{Frame as WsFrame, Utf8Bytes};
use tokio_tungstenite::tungstenite::{Bytes, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::credentials::Credentials;
use crate::error::Error;
use crate::transport::{self, Response, Target, TlsSetting};

/// How long [`RawConnection::connect`] may take, and how long a close waits for its answer.
const PATIENCE: Duration = Duration::from_secs(30);

/// A received text frame, without a copy: derefs to `str`.
#[derive(Clone, PartialEq, Eq)]
pub struct Text(Utf8Bytes);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A frame received in raw mode.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawMessage {
    /// A text frame (an agentwire server sends only these, and control frames).
    Text(Text),
    /// A binary frame.
    Binary(Vec<u8>),
    /// A ping (answered automatically with the next read or write).
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The peer's close frame: its code and reason, `None` when it had no code.
    Close(Option<CloseInfo>),
}

/// One WebSocket connection in raw mode, for test harnesses and tools: send any text or binary
/// frame (invalid JSON, invalid UTF-8, oversized, ...) and read exactly what comes back.
///
/// Nothing is interpreted: no heartbeat, no refresh, no reconnect. Pings are answered by the
/// WebSocket layer as frames are read or written.
///
/// ```no_run
/// use agentwire_client::{Credentials, RawConnection, RawMessage};
///
/// # async fn negative() -> Result<(), agentwire_client::Error> {
/// let (mut raw, _response) =
///     RawConnection::connect("ws://127.0.0.1:8080/ws", &Credentials::subprotocol("eyJ...")).await?;
/// let established = raw.read_established().await?;
/// raw.send_text(r#"{"type": "ping",, "message_id": "m1"}"#).await?;
/// let reply = raw.recv_frame().await?; // error {code: invalid_json, line, column}
/// raw.send_binary(vec![1, 2, 3]).await?;
/// assert!(matches!(raw.recv().await?, Some(RawMessage::Close(Some(close))) if close.code().as_u16() == 1003));
/// # Ok(()) }
/// ```
pub struct RawConnection {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl fmt::Debug for RawConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawConnection").finish_non_exhaustive()
    }
}

impl RawConnection {
    pub(crate) fn new(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> RawConnection {
        RawConnection { ws }
    }

    /// Connects to `url` (every step of [`transport`](crate::transport), at most 30 s) and
    /// returns the connection and the upgrade response, whatever its subprotocol answer.
    /// `connection_established` is not read: [`read_established`](Self::read_established)
    /// does that.
    ///
    /// # Errors
    ///
    /// As [`Client::connect`](crate::Client::connect) before the first frame.
    pub async fn connect(
        url: &str,
        credentials: &Credentials,
    ) -> Result<(RawConnection, Response), Error> {
        let target = Target::parse(url)?;
        transport::open(&target, credentials, &TlsSetting::Default, PATIENCE).await
    }

    /// Sends a text frame.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the write fails.
    pub fn send_text(
        &mut self,
        text: impl Into<String>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        self.send(Message::text(text.into()))
    }

    /// Sends a text frame with exactly these bytes, UTF-8 or not (to test how a server
    /// handles invalid UTF-8).
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the write fails.
    pub fn send_text_bytes(
        &mut self,
        bytes: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        let frame = WsFrame::message(Bytes::from(bytes.into()), OpCode::Data(Data::Text), true);
        self.send(Message::Frame(frame))
    }

    /// Sends a binary frame.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the write fails.
    pub fn send_binary(
        &mut self,
        bytes: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        self.send(Message::binary(bytes.into()))
    }

    /// Sends a WebSocket ping.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the write fails.
    pub fn send_ping(
        &mut self,
        payload: impl Into<Vec<u8>>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        self.send(Message::Ping(Bytes::from(payload.into())))
    }

    /// Sends a close frame (without waiting for the answer; [`close`](Self::close) waits).
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the write fails.
    pub fn send_close(
        &mut self,
        close: Option<CloseInfo>,
    ) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        self.send(Message::Close(close.map(Into::into)))
    }

    fn send(&mut self, message: Message) -> impl Future<Output = Result<(), Error>> + Send + '_ {
        SinkExt::send(&mut self.ws, message).map_err(Error::from_ws)
    }

    /// The next frame; `Ok(None)` once the connection has ended (after the close handshake,
    /// or when the peer dropped it). The connection is also a [`Stream`] of these.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] on a read error or a WebSocket protocol violation by the
    /// server.
    pub async fn recv(&mut self) -> Result<Option<RawMessage>, Error> {
        self.next().await.transpose()
    }

    /// The tokio-tungstenite stream underneath, for a hot loop that wants no layer between
    /// it and the socket (`agentwire load` reads and writes its frames this way). Its types
    /// are tokio-tungstenite 0.29's.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    /// The next text frame, skipping pings and pongs.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] at a close frame (1005 when it had no code),
    /// [`Error::ConnectionLost`] when the connection ends without one,
    /// [`Error::InvalidFrame`] (`unexpected_frame`) at a binary frame.
    pub async fn recv_text(&mut self) -> Result<Text, Error> {
        loop {
            match self.recv().await? {
                Some(RawMessage::Text(text)) => return Ok(text),
                Some(RawMessage::Ping(_) | RawMessage::Pong(_)) => {}
                Some(RawMessage::Binary(bytes)) => {
                    return Err(Error::InvalidFrame {
                        code: "unexpected_frame",
                        message: format!("a binary frame of {} bytes", bytes.len()),
                    });
                }
                Some(RawMessage::Close(close)) => {
                    return Err(Error::Closed {
                        close: close.unwrap_or(CloseInfo::code_only(CloseCode::NoStatusReceived)),
                        error: None,
                    });
                }
                None => return Err(Error::lost("the connection ended without a close frame")),
            }
        }
    }

    /// The next text frame, read strictly as an agentwire outbound frame
    /// ([`parse_outbound`]).
    ///
    /// # Errors
    ///
    /// As [`recv_text`](Self::recv_text), and [`Error::InvalidFrame`] (`invalid_json`,
    /// `invalid_frame`) when the parser refuses the frame.
    pub async fn recv_frame(&mut self) -> Result<Frame, Error> {
        let text = self.recv_text().await?;
        parse_frame(&text)
    }

    /// Reads the first frame of a session: `connection_established`. When the server refused
    /// the credentials instead (an `error` frame, then a close), the error carries both.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] with the `error` frame (4401 and the reason for an authentication
    /// failure), [`Error::InvalidFrame`] when the first frame is something else.
    pub async fn read_established(&mut self) -> Result<(Frame, ConnectionEstablished), Error> {
        let frame = self.recv_frame().await?;
        match frame.payload() {
            Payload::ConnectionEstablished(established) => {
                let established = established.clone();
                Ok((frame, established))
            }
            Payload::ErrorReply(reply) => {
                let reply = reply.clone();
                // The close follows the error frame at once.
                let close = tokio::time::timeout(Duration::from_secs(5), async {
                    loop {
                        match self.recv().await {
                            Ok(Some(RawMessage::Close(close))) => return close,
                            Ok(Some(_)) => {}
                            Ok(None) | Err(_) => return None,
                        }
                    }
                })
                .await
                .ok()
                .flatten();
                Err(match close {
                    Some(close) => Error::Closed {
                        close,
                        error: Some(Box::new(reply)),
                    },
                    None => Error::Refused {
                        reply: Box::new(reply),
                    },
                })
            }
            other => Err(Error::InvalidFrame {
                code: "unexpected_frame",
                message: format!(
                    "the first frame is {}, not connection_established",
                    other.message_type().as_str()
                ),
            }),
        }
    }

    /// Sends a close frame and reads until the server's answer (at most 30 s); returns the
    /// answer's code and reason.
    ///
    /// # Errors
    ///
    /// [`Error::ConnectionLost`] when the connection ends without a close frame,
    /// [`Error::Timeout`] when no answer comes.
    pub async fn close(&mut self, close: CloseInfo) -> Result<Option<CloseInfo>, Error> {
        self.send_close(Some(close)).await?;
        tokio::time::timeout(PATIENCE, async {
            loop {
                match self.recv().await? {
                    Some(RawMessage::Close(close)) => return Ok(close),
                    Some(_) => {}
                    None => return Err(Error::lost("the connection ended without a close frame")),
                }
            }
        })
        .await
        .map_err(|_| Error::Timeout {
            what: "the server's close frame",
        })?
    }
}

/// The frames received, as [`recv`](RawConnection::recv) reads them.
impl Stream for RawConnection {
    type Item = Result<RawMessage, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let message = match ready!(self.ws.poll_next_unpin(cx)) {
                None => return Poll::Ready(None),
                Some(Err(e)) => return Poll::Ready(Some(Err(Error::from_ws(e)))),
                Some(Ok(message)) => message,
            };
            return Poll::Ready(Some(Ok(match message {
                Message::Text(text) => RawMessage::Text(Text(text)),
                Message::Binary(bytes) => RawMessage::Binary(bytes.to_vec()),
                Message::Ping(bytes) => RawMessage::Ping(bytes.to_vec()),
                Message::Pong(bytes) => RawMessage::Pong(bytes.to_vec()),
                Message::Close(frame) => RawMessage::Close(frame.map(CloseInfo::from)),
                // Never produced by reads.
                Message::Frame(_) => continue,
            })));
        }
    }
}

/// Reads one outbound frame strictly.
pub(crate) fn parse_frame(text: &str) -> Result<Frame, Error> {
    parse_outbound(text).map_err(|e| Error::InvalidFrame {
        code: e.code(),
        message: e.message().to_owned(),
    })
}
