//! The dev console: a page that runs agentwire's TypeScript client (`clients/typescript`) in
//! a browser, to start runs and watch their events, reconnects and resumes.
//!
//! The assets are built by `npm run build:console` in `clients/typescript` into this crate's
//! `console/` folder and embedded here; a test of the client fails when they differ from a
//! fresh build.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file, served at `/console/{path}` (`index.html` at `/`).
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! assets {
    ($($path:literal => $content_type:expr),+ $(,)?) => {
        &[$(Asset {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../console/", $path)),
        }),+]
    };
}

static ASSETS: &[Asset] = assets![
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "console.js" => JS,
    "client/backoff.js" => JS,
    "client/client.js" => JS,
    "client/emitter.js" => JS,
    "client/errors.js" => JS,
    "client/index.js" => JS,
    "client/protocol.js" => JS,
    "client/run.js" => JS,
    "client/token.js" => JS,
];

/// The page loads only its own files and talks only WebSocket; no inline script.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The dev console's routes: `GET /` (the page) and `GET /console/*` (its stylesheet and
/// scripts, the TypeScript client's modules among them). `agentwire serve --dev` mounts it
/// next to [`Server::router`](crate::Server::router); an application can mount or nest it
/// the same way while it develops (the page loads its files relative to its own address).
///
/// The page connects to `ws(s)://<its host>/ws` by default; it reads a token (and another
/// URL) from its address's fragment, `#token=<jwt>`, which browsers never send to a server.
/// It holds no secret itself: mount it where a developer can reach it, not in production.
///
/// ```
/// use agentwire_server::{DemoAgent, Key, Server, Validator, console_router};
///
/// let validator = Validator::builder()
///     .key(Key::hmac(b"a secret of at least thirty-two bytes!!").unwrap())
///     .build()
///     .unwrap();
/// let server = Server::builder(validator).handler(DemoAgent::default()).build();
/// let app: axum::Router = server.router().merge(console_router());
/// ```
pub fn console_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { serve("index.html") }))
        .route(
            "/console/{*path}",
            get(|Path(path): Path<String>| async move { serve(&path) }),
        )
}

fn serve(path: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.path == path) else {
        return (StatusCode::NOT_FOUND, "no such console file\n").into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if asset.path == "index.html" {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// Every file `npm run build:console` wrote is embedded, and nothing else.
    #[test]
    fn every_built_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(folder) = stack.pop() {
            for entry in std::fs::read_dir(&folder).expect("console folder") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let relative = path.strip_prefix(&dir).expect("inside").to_string_lossy();
                    if relative != "README.md" {
                        on_disk.push(relative.replace('\\', "/"));
                    }
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        embedded.sort();
        assert_eq!(
            on_disk, embedded,
            "update ASSETS in src/console.rs to the files of console/"
        );
    }
}
