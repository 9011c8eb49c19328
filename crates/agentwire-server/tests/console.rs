//! The dev console's routes over loopback: the page, its scripts, its headers, next to the
//! WebSocket endpoint it talks to. (The page itself runs in chromium in
//! clients/typescript/test/browser.test.mjs.)

mod common;

use std::time::Duration;

use agentwire_server::{DemoAgent, Server, console_router};
use common::*;

async fn serve_with_console() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let server = Server::builder(validator())
        .handler(DemoAgent::new(Duration::ZERO))
        .build();
    let app = server.router().merge(console_router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        server
            .serve_app(listener, app, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    (addr, stop)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[tokio::test]
async fn the_page_and_its_modules_are_served_next_to_the_websocket() {
    let (addr, _stop) = serve_with_console().await;

    let (status, head, body) = http_get(addr, "/", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(body.contains("agentwire dev console"));
    assert!(body.contains(r#"src="console/console.js""#));
    let csp = header(&head, "content-security-policy").expect("CSP");
    assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self' ws: wss:"));
    assert_eq!(header(&head, "x-content-type-options"), Some("nosniff"));

    let (status, head, body) = http_get(addr, "/console/console.js", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(body.contains(r#"from "./client/index.js""#));

    let (status, _, body) = http_get(addr, "/console/client/index.js", &[]).await;
    assert_eq!(status, 200);
    assert!(body.contains("export { AgentwireClient, connect }"));
    let (status, head, _) = http_get(addr, "/console/console.css", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&head, "content-type"),
        Some("text/css; charset=utf-8")
    );

    for missing in [
        "/console/nope.js",
        "/console/../Cargo.toml",
        "/console/client/",
    ] {
        let (status, _, _) = http_get(addr, missing, &[]).await;
        assert_eq!(status, 404, "{missing}");
    }

    // The WebSocket endpoint and the operations endpoints are still there.
    let (status, _) = health(addr).await;
    assert_eq!(status, 200);
    let offer = agentwire_auth::testing::offer_header(&token("ada"));
    let (mut ws, response) = connect_raw(&format!("ws://{addr}/ws"), Some(&offer), None)
        .await
        .expect("connect");
    assert_eq!(response.headers()["sec-websocket-protocol"], "jwt-auth");
    assert_eq!(next_json(&mut ws).await["payload"]["user_id"], "ada");
    let events = run_agent(
        &mut ws,
        &serde_json::json!({"type": "start_agent", "payload": {"user_request": "hi"}}),
    )
    .await;
    assert_eq!(events.len(), 5);
}
