// Compile-time checks of the public types (`npm test` type-checks this file; it does not run).
// Each `@ts-expect-error` must be an error, or the check fails.
import {
  type AgentwireClient,
  AgentwireError,
  type ErrorCode,
  type FrameOf,
  type InboundFrame,
  type RunHandle,
  type StreamFrame,
} from "agentwire-client";

declare const client: AgentwireClient;
declare const run: RunHandle;

client.on("tool_completed", (frame) => {
  const status: "ok" | "error" = frame.payload.status;
  const seq: number = frame.seq;
  const result: unknown = frame.payload.result;
  void [status, seq, result];
});
client.on("connection_established", (frame) => {
  const epoch: string = frame.payload.stream.epoch;
  // @ts-expect-error control frames have no seq
  void frame.seq.toFixed();
  void epoch;
});
client.on("*", (frame) => {
  if (frame.type === "agent_thinking") {
    const reasoning: string = frame.payload.reasoning;
    void reasoning;
  }
});
// @ts-expect-error not a server frame type
client.on("start_agent", () => {});
client.onLifecycle("reset", ({ reason, epoch }) => void [reason.length, epoch.length]);
// @ts-expect-error not a lifecycle event
client.onLifecycle("agent_started", () => {});

run.on("agent_completed", (frame: FrameOf<"agent_completed">) => void frame.payload.duration_ms);
run.on("event", (frame: StreamFrame) => void frame.run_id);
void run.result.then(({ result, durationMs }) => void [result, durationMs.toFixed()]);

const refusal: InboundFrame = { type: "cancel_agent", payload: { run_id: "run_1" } };
// @ts-expect-error start_agent needs user_request
const incomplete: InboundFrame = { type: "start_agent", payload: {} };
void [refusal, incomplete];

function describe(error: unknown): string {
  if (!(error instanceof AgentwireError)) return "other";
  const code: ErrorCode = error.code;
  switch (code) {
    case "token_expired":
    case "stream_reset":
    case "slow_consumer":
      return code;
    default:
      return `${error.source}:${code}`;
  }
}
void describe;
