//! A test harness for an agentwire server, built on the crates alone: it mints tokens (valid,
//! expired, not yet valid), builds valid and invalid frames, drives the server over a real
//! WebSocket, records the transcript, splits it into runs, notifications and control frames,
//! and validates every run.

use std::error::Error;
use std::time::Duration;

use agentwire_server::auth::Algorithm;
use agentwire_server::auth::mint::{Claims, SigningKey, offer_header};
use agentwire_server::events::{Inbound, RunRequest, Transcript};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long the harness waits for any one answer.
const PATIENCE: Duration = Duration::from_secs(10);

/// What the harness found.
#[derive(Debug, Default)]
pub struct Report {
    /// The user the server reported in `connection_established`.
    pub user_id: String,
    /// Each refused token's case, with the `error` code and the close code it got.
    pub refusals: Vec<(&'static str, String, u16)>,
    /// Runs that passed the run validator, by id.
    pub valid_runs: Vec<String>,
    /// Runs that did not, with the rule they broke.
    pub invalid_runs: Vec<(String, String)>,
    /// The control frames' types and, for `error` frames, codes (`error:invalid_json`).
    pub control: Vec<String>,
    /// Notifications (stream events outside runs) seen meanwhile.
    pub notifications: usize,
}

impl Report {
    /// Whether everything the harness checked held.
    pub fn passed(&self) -> bool {
        self.invalid_runs.is_empty()
            && self.valid_runs.len() == 2
            && self.refusals.iter().all(|(case, code, close)| {
                *close == 4401
                    && matches!(
                        (*case, code.as_str()),
                        ("expired", "token_expired") | ("not yet valid", "token_not_yet_valid")
                    )
            })
    }
}

async fn connect(url: &str, token: &agentwire_server::auth::Token) -> Result<Ws, Box<dyn Error>> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer_header(token).parse()?);
    let (ws, _) =
        tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request)).await??;
    Ok(ws)
}

/// The next text frame (pings skipped); `Err` on close or timeout.
async fn next_text(ws: &mut Ws) -> Result<String, Box<dyn Error>> {
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await? {
            Some(Ok(Message::Text(text))) => return Ok(text.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => return Err(format!("expected a text frame, got {other:?}").into()),
        }
    }
}

/// Connects with `token`, expecting one `error` frame and a close: its code and close code.
async fn refused(
    url: &str,
    token: &agentwire_server::auth::Token,
) -> Result<(String, u16), Box<dyn Error>> {
    let mut ws = connect(url, token).await?;
    let error: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
    let code = error["payload"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    loop {
        match tokio::time::timeout(PATIENCE, ws.next()).await? {
            Some(Ok(Message::Close(Some(frame)))) => return Ok((code, u16::from(frame.code))),
            Some(Ok(_)) => {}
            other => return Err(format!("expected a close frame, got {other:?}").into()),
        }
    }
}

/// Runs the harness against the server at `url` (`ws://host:port/ws`) whose tokens are HS256
/// with `secret`.
///
/// # Errors
///
/// A connection, timeout or signing failure (what the server answered is in the [`Report`]).
pub async fn check(url: &str, secret: &str) -> Result<Report, Box<dyn Error>> {
    let key = SigningKey::hmac(Algorithm::HS256, secret)?;
    let user = "harness-user";
    let mut report = Report::default();

    // Tokens the server must refuse, minted without hand-computed unix times.
    let expired = Claims::new(user)
        .expired_for(Duration::from_secs(600))
        .sign(&key)?;
    let early = Claims::new(user)
        .not_before_in(Duration::from_secs(600))
        .sign(&key)?;
    for (case, token) in [("expired", expired), ("not yet valid", early)] {
        let (code, close) = refused(url, &token).await?;
        report.refusals.push((case, code, close));
    }

    // A session: two runs in flight at once, a ping, two invalid frames.
    let mut ws = connect(url, &Claims::new(user).sign(&key)?).await?;
    let established: Value = serde_json::from_str(&next_text(&mut ws).await?)?;
    report.user_id = established["payload"]["user_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let frames = [
        Inbound::start_agent(RunRequest::new("weather in Oslo"))
            .with_message_id("run-a")
            .to_json(),
        Inbound::user_message(RunRequest::new("and in Bergen?"))
            .with_message_id("run-b")
            .to_json(),
        Inbound::ping().with_message_id("p1").to_json(),
        // Invalid on purpose: no request text, and not JSON.
        r#"{"type": "start_agent", "message_id": "bad-1", "payload": {}}"#.to_owned(),
        "not json at all".to_owned(),
    ];
    for frame in frames {
        ws.send(Message::text(frame)).await?;
    }
    // Record until both runs ended and the three replies came.
    let mut texts = Vec::new();
    let (mut terminals, mut replies) = (0, 0);
    while terminals < 2 || replies < 3 {
        let text = next_text(&mut ws).await?;
        let value: Value = serde_json::from_str(&text)?;
        match value["type"].as_str() {
            Some("agent_completed" | "agent_error") => terminals += 1,
            Some("pong" | "error") => replies += 1,
            _ => {}
        }
        texts.push(text);
    }
    ws.close(None).await?;

    let transcript = Transcript::split_json(texts.iter().map(String::as_str))
        .map_err(|(i, e)| format!("frame {i} is not a valid outbound frame: {e}"))?;
    for (run_id, result) in transcript.validate_runs() {
        match result {
            Ok(_) => report.valid_runs.push(run_id.to_owned()),
            Err(violation) => report
                .invalid_runs
                .push((run_id.to_owned(), violation.rule().to_string())),
        }
    }
    report.control = transcript
        .control()
        .iter()
        .map(|frame| match frame.event().payload() {
            agentwire_server::Payload::ErrorReply(error) => format!("error:{}", error.code),
            _ => frame.message_type().to_string(),
        })
        .collect();
    report.notifications = transcript.notifications().len();
    Ok(report)
}
