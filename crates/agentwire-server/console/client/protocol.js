// Type helpers over the generated frame types.
/** The agentwire protocol version this client speaks. */
export const PROTOCOL_VERSION = 1;
/** The subprotocol marker offered next to the token (`jwt-auth`). */
export const MARKER_PROTOCOL = "jwt-auth";
/** The subprotocols offered for `token`: the marker and `jwt.<token>`. */
export function subprotocols(token) {
    return [MARKER_PROTOCOL, `jwt.${token}`];
}
/** Whether `frame` is on the user's stream (has a `seq`). */
export function isStreamFrame(frame) {
    return typeof frame.seq === "number";
}
