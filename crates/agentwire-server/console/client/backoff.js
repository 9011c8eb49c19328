// Reconnect delays: exponential, capped, with jitter so that many clients dropped at once
// (a server restart) do not come back at the same instant.
/** The defaults of {@link ReconnectOptions}. */
export const DEFAULT_RECONNECT = {
    initialDelayMs: 500,
    maxDelayMs: 30_000,
    maxAttempts: Number.POSITIVE_INFINITY,
};
/**
 * The delay before reconnect attempt `attempt` (1 for the first): the cap doubles from
 * `initialDelayMs` up to `maxDelayMs`, and the delay is drawn uniformly from the upper half
 * of the cap ("equal jitter": never zero, never in lockstep). `random` returns [0, 1).
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
    const initial = options.initialDelayMs ?? DEFAULT_RECONNECT.initialDelayMs;
    const max = options.maxDelayMs ?? DEFAULT_RECONNECT.maxDelayMs;
    const exponent = Math.min(Math.max(attempt - 1, 0), 30);
    const cap = Math.min(max, initial * 2 ** exponent);
    return Math.round(cap / 2 + random() * (cap / 2));
}
