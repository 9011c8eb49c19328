//! The handshake's credential decisions: `Sec-WebSocket-Protocol` lines, an `Authorization`
//! value and a query string, negotiated and authenticated by a fixed validator.
//!
//! Input layout: `authorization \0 query \0 line \n line \n ...`; the low bit of the first
//! byte turns on `?token=` (the rest of the input is used as is).
#![no_main]

use std::sync::LazyLock;

use agentwire_auth::{HandshakeRequest, ProtocolOffer, Validator, testing::fixture_validator};
use libfuzzer_sys::fuzz_target;

static VALIDATOR: LazyLock<Validator> = LazyLock::new(fixture_validator);

fuzz_target!(|data: &[u8]| {
    let mut fields = data.splitn(3, |&b| b == 0);
    let (authorization, query) = (fields.next(), fields.next().map(String::from_utf8_lossy));
    let lines = fields
        .next()
        .map(|rest| rest.split(|&b| b == b'\n').collect::<Vec<_>>());
    let Ok(offer) = ProtocolOffer::parse(lines.iter().flatten().copied()) else {
        return;
    };
    let request = HandshakeRequest::new()
        .offer(offer)
        .authorization(authorization)
        .query(query.as_deref())
        .allow_query_token(data.first().is_some_and(|b| b & 1 == 1))
        .max_token_bytes(VALIDATOR.max_token_bytes());
    if let Ok(negotiation) = request.negotiate() {
        let _ = VALIDATOR.authenticate(&negotiation);
    }
});
