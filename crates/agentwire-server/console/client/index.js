/**
 * agentwire's browser and Node client: connect with a JWT offered as a subprotocol, start
 * runs and follow their events, survive drops with resume. Types are generated from the
 * protocol's JSON Schema (docs/schema/).
 *
 * ```ts
 * import { connect } from "agentwire-client";
 *
 * const client = await connect("wss://chat.example/ws", { getToken: () => fetchToken() });
 * const run = client.startAgent("Find a flight from Oslo to Lisbon");
 * for await (const event of run) console.log(event.seq, event.type);
 * ```
 *
 * @module
 */
export { AgentwireClient, connect } from "./client.js";
export { RunHandle } from "./run.js";
export { AgentwireError, AUTH_ERROR_CODES, CLIENT_ERROR_CODES, CLOSE_CODES, closeCodeInfo, PROTOCOL_ERROR_CODES, } from "./errors.js";
export { backoffDelay, DEFAULT_RECONNECT } from "./backoff.js";
export { tokenExpiry } from "./token.js";
export { isStreamFrame, MARKER_PROTOCOL, PROTOCOL_VERSION, subprotocols } from "./protocol.js";
