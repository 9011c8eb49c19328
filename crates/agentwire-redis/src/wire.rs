//! The engine's two busiest connections, spoken directly in RESP2: the subscription
//! connection (`SUBSCRIBE`, `UNSUBSCRIBE` and the channel messages that come back, read in
//! place from one buffer) and the publishing connection (pipelines of `EVALSHA` APPEND
//! written straight from the encoded frames, integer replies read back).
//!
//! redis-rs turns every reply into a generic `Value` with its parser-combinator decoder,
//! copies each bulk string into a vector of its own, and copies each command's arguments
//! twice before they reach the socket; under load those were the largest shares of a node's
//! CPU per event beyond the in-process engine's. The other commands (attach, keep-alive,
//! scripts' loading on the command connection) stay on redis-rs.

use std::collections::VecDeque;
use std::io;

use redis::ConnectionAddr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// What [`Subscriber::subscribe`] and [`Subscriber::unsubscribe`] fail with: the connection
/// is gone, or Redis refused the command.
#[derive(Debug)]
pub(crate) struct Failed;

/// One command for the connection and what confirms it.
struct Request {
    bytes: Vec<u8>,
    /// Confirmations to wait for (one per channel).
    expected: usize,
    done: oneshot::Sender<Result<(), Failed>>,
}

/// Sends commands on a subscription connection; cheap to clone. Commands go out in the order
/// they are made, and each is answered in that order.
#[derive(Clone)]
pub(crate) struct Subscriber {
    requests: mpsc::UnboundedSender<Request>,
}

impl Subscriber {
    /// Subscribes to `channel`; done once Redis confirmed it (from then on, every message
    /// published to it arrives).
    pub(crate) async fn subscribe(&self, channel: &str) -> Result<(), Failed> {
        self.send("SUBSCRIBE", &[channel]).await
    }

    /// Unsubscribes from `channels`; done once Redis confirmed each.
    pub(crate) async fn unsubscribe(&self, channels: &[String]) -> Result<(), Failed> {
        if channels.is_empty() {
            return Ok(());
        }
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        self.send("UNSUBSCRIBE", &channels).await
    }

    async fn send(&self, command: &str, channels: &[&str]) -> Result<(), Failed> {
        let (done, confirmed) = oneshot::channel();
        let request = Request {
            bytes: encode(command, channels),
            expected: channels.len(),
            done,
        };
        self.requests.send(request).map_err(|_| Failed)?;
        confirmed.await.map_err(|_| Failed)?
    }
}

/// A command in RESP: an array of bulk strings.
fn encode(command: &str, args: &[&str]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(16 + command.len() + args.iter().map(|a| a.len() + 16).sum::<usize>());
    out.extend_from_slice(format!("*{}\r\n", 1 + args.len()).as_bytes());
    for part in std::iter::once(command).chain(args.iter().copied()) {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A byte stream to Redis.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// An open subscription connection: [`Connection::run`] drives it.
pub(crate) struct Connection {
    stream: Box<dyn Stream>,
    buffer: Vec<u8>,
    requests: mpsc::UnboundedReceiver<Request>,
}

/// A connection to Redis, authenticated, with its read buffer.
struct Link {
    stream: Box<dyn Stream>,
    buffer: Vec<u8>,
}

/// A reply of a [`Link`], owned.
#[derive(Debug)]
enum Owned {
    Ok,
    Integer(i64),
    Bulk(Vec<u8>),
    Error(String),
    Other,
}

impl Link {
    /// Connects to the Redis of `info` and authenticates as it says (RESP2). TCP and Unix
    /// sockets; TLS is not built in.
    async fn open(info: &redis::ConnectionInfo) -> io::Result<Link> {
        let stream: Box<dyn Stream> = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                Box::new(stream)
            }
            ConnectionAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "this kind of Redis address is not supported",
                ));
            }
        };
        let mut link = Link {
            stream,
            buffer: Vec::with_capacity(64 * 1024),
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut args = Vec::with_capacity(2);
            if let Some(user) = settings.username() {
                args.push(user);
            }
            args.push(password);
            if !matches!(link.ask(&encode("AUTH", &args)).await?, Owned::Ok) {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "Redis refused the credentials",
                ));
            }
        }
        Ok(link)
    }

    /// Sends `command` and reads its reply.
    async fn ask(&mut self, command: &[u8]) -> io::Result<Owned> {
        self.stream.write_all(command).await?;
        self.reply().await
    }

    /// Reads one reply.
    async fn reply(&mut self) -> io::Result<Owned> {
        loop {
            match parse(&self.buffer) {
                Err(()) => return Err(protocol_error()),
                Ok(Some((reply, used))) => {
                    let owned = match reply {
                        Reply::Simple(b"OK") => Owned::Ok,
                        Reply::Integer(n) => Owned::Integer(n),
                        Reply::Bulk(bytes) => Owned::Bulk(bytes.to_vec()),
                        Reply::Error(text) => {
                            Owned::Error(String::from_utf8_lossy(text).into_owned())
                        }
                        _ => Owned::Other,
                    };
                    self.buffer.drain(..used);
                    return Ok(owned);
                }
                Ok(None) => {
                    if self.buffer.capacity() - self.buffer.len() < 4096 {
                        self.buffer.reserve(64 * 1024);
                    }
                    if self.stream.read_buf(&mut self.buffer).await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
    }
}

/// Opens a subscription connection to the Redis of `info` (the database number does not
/// matter to pub/sub).
pub(crate) async fn connect(info: &redis::ConnectionInfo) -> io::Result<(Subscriber, Connection)> {
    let link = Link::open(info).await?;
    let (requests_tx, requests) = mpsc::unbounded_channel();
    Ok((
        Subscriber {
            requests: requests_tx,
        },
        Connection {
            stream: link.stream,
            buffer: link.buffer,
            requests,
        },
    ))
}

/// The publishing connection: one pipeline of `EVALSHA` commands at a time, written
/// straight into one buffer, and their replies read back in order.
pub(crate) struct Publisher {
    link: Link,
    out: Vec<u8>,
    commands: usize,
}

/// One command's reply in a [`Publisher`]'s round trip.
pub(crate) enum Answer {
    /// An integer reply.
    Integer(i64),
    /// An error reply, with its text.
    Error(String),
}

impl Publisher {
    /// Connects to the Redis of `info`, selects its database and loads `script` (whose SHA1
    /// is `hash`).
    pub(crate) async fn connect(
        info: &redis::ConnectionInfo,
        script: &str,
        hash: &str,
    ) -> io::Result<Publisher> {
        let mut link = Link::open(info).await?;
        let db = info.redis_settings().db();
        if db != 0
            && !matches!(
                link.ask(&encode("SELECT", &[&db.to_string()])).await?,
                Owned::Ok
            )
        {
            return Err(io::Error::other("Redis refused SELECT"));
        }
        match link.ask(&encode("SCRIPT", &["LOAD", script])).await? {
            Owned::Bulk(loaded) if loaded == hash.as_bytes() => {}
            other => {
                return Err(io::Error::other(format!(
                    "cannot load the script: {other:?}"
                )));
            }
        }
        Ok(Publisher {
            link,
            out: Vec::with_capacity(64 * 1024),
            commands: 0,
        })
    }

    /// Starts a command of `args` arguments (its name included); write them with
    /// [`arg`](Self::arg).
    pub(crate) fn command(&mut self, args: usize) {
        self.commands += 1;
        self.out.push(b'*');
        self.number(args as u64);
    }

    /// Writes one argument.
    pub(crate) fn arg(&mut self, bytes: &[u8]) {
        self.out.push(b'$');
        self.number(bytes.len() as u64);
        self.out.extend_from_slice(bytes);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Writes one argument made of `parts`, one after the other.
    pub(crate) fn arg_parts(&mut self, parts: &[&[u8]]) {
        self.out.push(b'$');
        self.number(parts.iter().map(|p| p.len() as u64).sum());
        for part in parts {
            self.out.extend_from_slice(part);
        }
        self.out.extend_from_slice(b"\r\n");
    }

    /// Writes arguments already in RESP (see [`args`]).
    pub(crate) fn raw(&mut self, args: &[u8]) {
        self.out.extend_from_slice(args);
    }

    /// `n` and CRLF.
    fn number(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let text = decimal(n, &mut digits);
        self.out.extend_from_slice(text);
        self.out.extend_from_slice(b"\r\n");
    }

    /// Sends the commands written since the last round trip and reads their replies, in
    /// order. On an error the connection is no longer usable.
    pub(crate) async fn round_trip(&mut self) -> io::Result<Vec<Answer>> {
        let commands = std::mem::take(&mut self.commands);
        let sent = self.link.stream.write_all(&self.out).await;
        self.out.clear();
        sent?;
        let mut answers = Vec::with_capacity(commands);
        for _ in 0..commands {
            answers.push(match self.link.reply().await? {
                Owned::Integer(n) => Answer::Integer(n),
                Owned::Error(text) => Answer::Error(text),
                _ => return Err(protocol_error()),
            });
        }
        Ok(answers)
    }
}

/// `parts` as RESP bulk strings, one after the other: arguments of a command, written ahead
/// for [`Publisher::raw`].
pub(crate) fn args(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

impl Connection {
    /// Sends the commands [`Subscriber`]s make and hands each channel message to `on_message`
    /// (channel, payload), until the connection fails or ends. Requests still waiting then
    /// fail.
    pub(crate) async fn run(mut self, mut on_message: impl FnMut(&[u8], &[u8])) -> io::Error {
        let mut waiting: VecDeque<(usize, oneshot::Sender<Result<(), Failed>>)> = VecDeque::new();
        let mut start = 0;
        let error = loop {
            tokio::select! {
                request = self.requests.recv() => {
                    let Some(request) = request else {
                        break io::Error::other("every subscriber is gone");
                    };
                    if let Err(error) = self.stream.write_all(&request.bytes).await {
                        let _ = request.done.send(Err(Failed));
                        break error;
                    }
                    waiting.push_back((request.expected, request.done));
                }
                read = read_more(&mut self.stream, &mut self.buffer, &mut start) => {
                    match read {
                        Ok(0) => break io::ErrorKind::UnexpectedEof.into(),
                        Ok(_) => {}
                        Err(error) => break error,
                    }
                    let mut failed = false;
                    loop {
                        match parse(&self.buffer[start..]) {
                            Ok(Some((reply, used))) => {
                                start += used;
                                if !handle(reply, &mut waiting, &mut on_message) {
                                    failed = true;
                                    break;
                                }
                            }
                            Ok(None) => break,
                            Err(()) => {
                                failed = true;
                                break;
                            }
                        }
                    }
                    if failed {
                        break protocol_error();
                    }
                }
            }
        };
        for (_, done) in waiting {
            let _ = done.send(Err(Failed));
        }
        // Requests made after the end fail as their sender is dropped with `self`.
        error
    }
}

/// Reads more into `buffer`, first dropping what was parsed (before `start`).
async fn read_more(
    stream: &mut Box<dyn Stream>,
    buffer: &mut Vec<u8>,
    start: &mut usize,
) -> io::Result<usize> {
    if *start > 0 {
        buffer.drain(..*start);
        *start = 0;
    }
    if buffer.capacity() - buffer.len() < 16 * 1024 {
        buffer.reserve(64 * 1024);
    }
    stream.read_buf(buffer).await
}

/// Acts on one reply of the running connection; false when it breaks the protocol (a
/// confirmation nobody waits for).
fn handle(
    reply: Reply<'_>,
    waiting: &mut VecDeque<(usize, oneshot::Sender<Result<(), Failed>>)>,
    on_message: &mut impl FnMut(&[u8], &[u8]),
) -> bool {
    match reply {
        Reply::Push {
            kind: b"message",
            channel,
            payload,
        } => {
            on_message(channel, payload);
            true
        }
        Reply::Push {
            kind: b"subscribe" | b"unsubscribe",
            ..
        } => {
            let Some((expected, _)) = waiting.front_mut() else {
                return false;
            };
            *expected = expected.saturating_sub(1);
            if *expected == 0
                && let Some((_, done)) = waiting.pop_front()
            {
                let _ = done.send(Ok(()));
            }
            true
        }
        Reply::Error(_) => match waiting.pop_front() {
            Some((_, done)) => {
                let _ = done.send(Err(Failed));
                true
            }
            None => false,
        },
        // Nothing else is asked for on this connection.
        Reply::Simple(_)
        | Reply::Integer(_)
        | Reply::Bulk(_)
        | Reply::Push { .. }
        | Reply::Other => false,
    }
}

fn protocol_error() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "unexpected reply from Redis")
}

/// One RESP2 reply, borrowed from the read buffer.
#[derive(Debug, PartialEq, Eq)]
enum Reply<'a> {
    /// `+...`
    Simple(&'a [u8]),
    /// `-...`
    Error(&'a [u8]),
    /// `:...`
    Integer(i64),
    /// `$...` at the top level (a null one is empty).
    Bulk(&'a [u8]),
    /// An array of three bulk strings or integers: a channel message or a confirmation.
    Push {
        kind: &'a [u8],
        channel: &'a [u8],
        payload: &'a [u8],
    },
    /// Any other reply.
    Other,
}

/// The line starting at `at` (without its CRLF), and where the next begins; `None` when the
/// buffer ends first.
fn line(buffer: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let rest = buffer.get(at..)?;
    // A line holds no LF of its own (bulk strings are read by length, not by line): the
    // first LF ends it; a line that does not end in CRLF fails to parse as a number.
    let end = memchr::memchr(b'\n', rest)?;
    let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
    Some((line, at + end + 1))
}

/// A RESP integer: an optional `-` and 1 to 19 ASCII digits, within `i64`.
fn number(text: &[u8]) -> Result<i64, ()> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', digits)) => (true, digits),
        _ => (false, text),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(());
    }
    // 19 digits fit in a u64 without overflow.
    let mut magnitude: u64 = 0;
    for &digit in digits {
        if !digit.is_ascii_digit() {
            return Err(());
        }
        magnitude = magnitude * 10 + u64::from(digit - b'0');
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude).ok_or(())
    } else {
        i64::try_from(magnitude).map_err(|_| ())
    }
}

/// Parses the reply at the start of `buffer`: `Ok(None)` when it is not complete yet, else
/// the reply and its length; `Err` when it is not RESP2.
fn parse(buffer: &[u8]) -> Result<Option<(Reply<'_>, usize)>, ()> {
    let Some((head, mut at)) = line(buffer, 0) else {
        return Ok(None);
    };
    let (&kind, rest) = head.split_first().ok_or(())?;
    match kind {
        b'+' => Ok(Some((Reply::Simple(rest), at))),
        b'-' => Ok(Some((Reply::Error(rest), at))),
        b':' => Ok(Some((Reply::Integer(number(rest)?), at))),
        b'$' => match bulk(buffer, rest, at)? {
            Some((bytes, next)) => Ok(Some((Reply::Bulk(bytes), next))),
            None => Ok(None),
        },
        b'*' => {
            let count = number(rest)?;
            let mut items: [&[u8]; 3] = [b""; 3];
            for i in 0..count.max(0) {
                let Some((item, next)) = line(buffer, at) else {
                    return Ok(None);
                };
                let (&item_kind, item_rest) = item.split_first().ok_or(())?;
                let (value, next) = match item_kind {
                    b':' => (item_rest, next),
                    b'$' => match bulk(buffer, item_rest, next)? {
                        Some(found) => found,
                        None => return Ok(None),
                    },
                    // Nested arrays and the rest: not on this connection.
                    _ => return Err(()),
                };
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| items.get_mut(i)) {
                    *slot = value;
                }
                at = next;
            }
            if count == 3 {
                let [kind, channel, payload] = items;
                Ok(Some((
                    Reply::Push {
                        kind,
                        channel,
                        payload,
                    },
                    at,
                )))
            } else {
                Ok(Some((Reply::Other, at)))
            }
        }
        _ => Err(()),
    }
}

/// A bulk string of the length `digits` whose bytes start at `at`: the bytes and where the
/// next reply begins; `None` when the buffer ends first (a null bulk string is empty).
fn bulk<'a>(buffer: &'a [u8], digits: &[u8], at: usize) -> Result<Option<(&'a [u8], usize)>, ()> {
    let len = number(digits)?;
    if len < 0 {
        return Ok(Some((b"", at)));
    }
    let len = usize::try_from(len).map_err(|_| ())?;
    let end = at.checked_add(len).ok_or(())?;
    let next = end.checked_add(2).ok_or(())?;
    let Some(crlf) = buffer.get(end..next) else {
        return Ok(None);
    };
    if crlf != b"\r\n" {
        return Err(());
    }
    Ok(Some((&buffer[at..end], next)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_read_in_place_and_a_partial_one_waits() {
        let text = b"*3\r\n$7\r\nmessage\r\n$8\r\naw:{u}:c\r\n$5\r\na|b\r\n\r\n+OK\r\n";
        let (reply, used) = parse(text).unwrap().unwrap();
        assert_eq!(
            reply,
            Reply::Push {
                kind: b"message",
                channel: b"aw:{u}:c",
                payload: b"a|b\r\n"
            }
        );
        assert_eq!(
            parse(&text[used..]).unwrap(),
            Some((Reply::Simple(b"OK"), 5))
        );
        for cut in 0..used {
            assert_eq!(parse(&text[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn confirmations_and_errors_are_told_apart() {
        let text = b"*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
        let (reply, used) = parse(text).unwrap().unwrap();
        assert_eq!(used, text.len());
        assert_eq!(
            reply,
            Reply::Push {
                kind: b"subscribe",
                channel: b"c",
                payload: b"1"
            }
        );
        assert_eq!(
            parse(b"-ERR no\r\n").unwrap(),
            Some((Reply::Error(b"ERR no"), 9))
        );
        assert_eq!(
            parse(b"*2\r\n$1\r\na\r\n$-1\r\n").unwrap(),
            Some((Reply::Other, 16))
        );
    }

    #[test]
    fn what_is_not_resp_is_refused() {
        assert!(parse(b"hello\r\n").is_err());
        assert!(parse(b"*1\r\n$3\r\nabcd\r\n").is_err());
        assert!(parse(b"*x\r\n").is_err());
        assert!(parse(b"\r\n").is_err());
        assert!(parse(b"*1\r\n*1\r\n:1\r\n").is_err());
    }

    #[test]
    fn integers_and_bulk_strings_at_the_top() {
        assert_eq!(parse(b":42\r\n").unwrap(), Some((Reply::Integer(42), 5)));
        assert_eq!(
            parse(b"$2\r\nab\r\n").unwrap(),
            Some((Reply::Bulk(b"ab"), 8))
        );
        assert_eq!(parse(b"$2\r\nab").unwrap(), None);
        let mut digits = [0u8; 20];
        assert_eq!(decimal(0, &mut digits), b"0");
        assert_eq!(decimal(u64::MAX, &mut digits), b"18446744073709551615");
    }

    #[test]
    fn integers_are_read_exactly() {
        for n in [0, 1, -1, 42, i64::MAX, i64::MIN, 1_000_000_007] {
            assert_eq!(number(n.to_string().as_bytes()), Ok(n), "{n}");
        }
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b" 1",
            b"1 ",
            b"9223372036854775808",
            b"-9223372036854775809",
            b"99999999999999999999",
            b"1x",
            b"\xff",
        ] {
            assert_eq!(number(bad), Err(()), "{bad:?}");
        }
        // What `str::parse` accepts and refuses alike, leading zeros included.
        assert_eq!(number(b"007"), Ok(7));
        assert_eq!(number(b"-0"), Ok(0));
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        assert_eq!(
            args(&[b"EVALSHA", b"", b"2"]),
            b"$7\r\nEVALSHA\r\n$0\r\n\r\n$1\r\n2\r\n"
        );
        assert_eq!(
            encode("SUBSCRIBE", &["aw:{é}:c"]),
            "*2\r\n$9\r\nSUBSCRIBE\r\n$9\r\naw:{é}:c\r\n".as_bytes()
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::{Reply, parse};

    /// A reply as the tests write it, owned; [`Expected::of`] reads a parsed one back.
    #[derive(Clone, Debug, PartialEq, Eq)]
    enum Expected {
        Simple(Vec<u8>),
        Error(Vec<u8>),
        Integer(i64),
        Bulk(Vec<u8>),
        Push(Vec<u8>, Vec<u8>, Vec<u8>),
        Other,
    }

    impl Expected {
        fn of(reply: &Reply<'_>) -> Expected {
            match reply {
                Reply::Simple(text) => Expected::Simple(text.to_vec()),
                Reply::Error(text) => Expected::Error(text.to_vec()),
                Reply::Integer(n) => Expected::Integer(*n),
                Reply::Bulk(bytes) => Expected::Bulk(bytes.to_vec()),
                Reply::Push {
                    kind,
                    channel,
                    payload,
                } => Expected::Push(kind.to_vec(), channel.to_vec(), payload.to_vec()),
                Reply::Other => Expected::Other,
            }
        }
    }

    /// An element of an array reply: a bulk string (`None`: the null one) or an integer.
    #[derive(Clone, Debug)]
    enum Item {
        Bulk(Option<Vec<u8>>),
        Integer(i64),
    }

    impl Item {
        fn write(&self, out: &mut Vec<u8>) {
            match self {
                Item::Bulk(None) => out.extend_from_slice(b"$-1\r\n"),
                Item::Bulk(Some(bytes)) => {
                    out.extend_from_slice(format!("${}\r\n", bytes.len()).as_bytes());
                    out.extend_from_slice(bytes);
                    out.extend_from_slice(b"\r\n");
                }
                Item::Integer(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            }
        }

        /// What the parser gives for it inside an array.
        fn value(&self) -> Vec<u8> {
            match self {
                Item::Bulk(bytes) => bytes.clone().unwrap_or_default(),
                Item::Integer(n) => n.to_string().into_bytes(),
            }
        }
    }

    /// A valid RESP2 reply of the kinds Redis sends on these connections: its bytes and
    /// what parsing it gives.
    #[derive(Clone, Debug)]
    struct Written {
        bytes: Vec<u8>,
        expected: Expected,
    }

    /// A line's text: anything but CR and LF.
    fn line_text() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            any::<u8>().prop_filter("no CR or LF", |b| *b != b'\r' && *b != b'\n'),
            0..24,
        )
    }

    /// Bulk bytes: anything, CRLF and `|` included.
    fn bulk_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec(
                prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'|'), Just(b'$'), Just(b'*')],
                0..16
            ),
        ]
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            proptest::option::weighted(0.9, bulk_bytes()).prop_map(Item::Bulk),
            any::<i64>().prop_map(Item::Integer),
        ]
    }

    fn written() -> impl Strategy<Value = Written> {
        prop_oneof![
            line_text().prop_map(|text| {
                let mut bytes = b"+".to_vec();
                bytes.extend_from_slice(&text);
                bytes.extend_from_slice(b"\r\n");
                Written {
                    bytes,
                    expected: Expected::Simple(text),
                }
            }),
            line_text().prop_map(|text| {
                let mut bytes = b"-".to_vec();
                bytes.extend_from_slice(&text);
                bytes.extend_from_slice(b"\r\n");
                Written {
                    bytes,
                    expected: Expected::Error(text),
                }
            }),
            any::<i64>().prop_map(|n| Written {
                bytes: format!(":{n}\r\n").into_bytes(),
                expected: Expected::Integer(n),
            }),
            proptest::option::weighted(0.9, bulk_bytes()).prop_map(|bytes| {
                let item = Item::Bulk(bytes);
                let mut out = Vec::new();
                item.write(&mut out);
                Written {
                    bytes: out,
                    expected: Expected::Bulk(item.value()),
                }
            }),
            // A channel message or a (un)subscribe confirmation.
            (
                prop_oneof![
                    Just(b"message".to_vec()),
                    Just(b"subscribe".to_vec()),
                    Just(b"unsubscribe".to_vec())
                ],
                item(),
                item(),
            )
                .prop_map(|(kind, channel, payload)| {
                    let mut out = b"*3\r\n".to_vec();
                    Item::Bulk(Some(kind.clone())).write(&mut out);
                    channel.write(&mut out);
                    payload.write(&mut out);
                    Written {
                        bytes: out,
                        expected: Expected::Push(kind, channel.value(), payload.value()),
                    }
                }),
            // Arrays of any other length, and the null array.
            proptest::collection::vec(item(), 0..6)
                .prop_filter("three items is a push", |items| items.len() != 3)
                .prop_map(|items| {
                    let mut out = format!("*{}\r\n", items.len()).into_bytes();
                    for item in &items {
                        item.write(&mut out);
                    }
                    Written {
                        bytes: out,
                        expected: Expected::Other,
                    }
                }),
            Just(Written {
                bytes: b"*-1\r\n".to_vec(),
                expected: Expected::Other
            }),
        ]
    }

    /// Parses `bytes` as they arrive in the pieces that `cuts` make (sorted offsets),
    /// the way a connection reads: what is complete is parsed, the rest waits for more.
    fn parse_in_pieces(bytes: &[u8], cuts: &[usize]) -> Result<Vec<Expected>, ()> {
        let mut buffer = Vec::new();
        let mut start = 0;
        let mut replies = Vec::new();
        let mut from = 0;
        for &to in cuts.iter().chain(std::iter::once(&bytes.len())) {
            let to = to.clamp(from, bytes.len());
            buffer.extend_from_slice(&bytes[from..to]);
            from = to;
            while let Some((reply, used)) = parse(&buffer[start..])? {
                assert!(used > 0 && start + used <= buffer.len());
                replies.push(Expected::of(&reply));
                start += used;
            }
        }
        // Everything was consumed.
        assert_eq!(start, buffer.len());
        Ok(replies)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// No input panics the parser; what it parses lies within the buffer.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut at = 0;
            while let Ok(Some((_, used))) = parse(&bytes[at..]) {
                prop_assert!(used > 0 && at + used <= bytes.len());
                at += used;
            }
        }

        /// Near-RESP input (its tokens shuffled and cut) never panics either.
        #[test]
        fn resp_like_bytes_never_panic(parts in proptest::collection::vec(prop_oneof![
            Just(b"*".to_vec()), Just(b"$".to_vec()), Just(b":".to_vec()), Just(b"+".to_vec()),
            Just(b"-".to_vec()), Just(b"\r\n".to_vec()), Just(b"\n".to_vec()), Just(b"-1".to_vec()),
            Just(b"3".to_vec()), Just(b"0".to_vec()), Just(b"9223372036854775807".to_vec()),
            Just(b"18446744073709551615".to_vec()), Just(b"-9223372036854775808".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..4),
        ], 0..40)) {
            let bytes = parts.concat();
            let mut at = 0;
            while let Ok(Some((_, used))) = parse(&bytes[at..]) {
                prop_assert!(used > 0 && at + used <= bytes.len());
                at += used;
            }
        }

        /// A stream of valid replies parses to the same replies whole and cut at any points.
        #[test]
        fn a_reply_stream_parses_the_same_in_any_pieces(
            replies in proptest::collection::vec(written(), 1..8),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
        ) {
            let bytes: Vec<u8> = replies.iter().flat_map(|r| r.bytes.clone()).collect();
            let expected: Vec<Expected> = replies.iter().map(|r| r.expected.clone()).collect();
            prop_assert_eq!(parse_in_pieces(&bytes, &[]), Ok(expected.clone()));
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.sort_unstable();
            prop_assert_eq!(parse_in_pieces(&bytes, &cuts), Ok(expected.clone()));
            // And byte by byte.
            let every: Vec<usize> = (0..bytes.len()).collect();
            prop_assert_eq!(parse_in_pieces(&bytes, &every), Ok(expected));
        }
    }
}
