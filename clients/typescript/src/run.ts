// A run as a handle: its events as they arrive, and its outcome as a promise.

import { Emitter, type Listener, type Unsubscribe } from "./emitter.js";
import { AgentwireError } from "./errors.js";
import type { AgentCompletedFrame, AgentErrorFrame } from "./generated/outbound.js";
import type { FrameOf, StreamFrame, StreamType } from "./protocol.js";

/** Where a run stands. */
export type RunStatus =
  /** The request is queued or sent; no event of the run has arrived yet. */
  | "pending"
  /** Events are arriving. */
  | "running"
  /** `agent_completed` arrived. */
  | "completed"
  /** `agent_error` arrived, the request was refused, or the client cannot follow the run. */
  | "failed";

/** A successful run's outcome. */
export interface RunResult {
  /** `agent_completed.payload.result`: any JSON. */
  readonly result: unknown;
  /** `agent_completed.payload.duration_ms`. */
  readonly durationMs: number;
  /** The run's id. */
  readonly runId: string;
  /** The terminal frame. */
  readonly frame: AgentCompletedFrame;
  /** Every event of the run, in `seq` order. */
  readonly events: readonly StreamFrame[];
}

/** The listeners of a {@link RunHandle}: one per stream type, and `event` for all. */
export type RunEventMap = { [K in StreamType]: FrameOf<K> } & { event: StreamFrame };

/** What the client lends a run: sending its cancel. */
export interface RunOwner {
  /** Sends `cancel_agent` for `runId`. */
  sendCancel(runId: string): void;
}

/**
 * One run the client started ({@link AgentwireClient.startAgent}): its events as they arrive
 * (listeners, or `for await`), and {@link result}, settled by the terminal event.
 *
 * `result` resolves with `agent_completed`; it rejects with an {@link AgentwireError}: source
 * `agent` with the agent's code for `agent_error` (`cancelled` after {@link cancel}), source
 * `server` when the request was refused (`invalid_payload`, `too_many_runs`,
 * `rate_limited`, ...), or source `client` when the client can no longer vouch for the
 * run's events (`stream_reset`, `closed`, `reconnect_failed`, `aborted`).
 */
export class RunHandle {
  /** The `message_id` of the request; every event of the run carries it as `reply_to`. */
  readonly messageId: string;
  /** Settled by the terminal event (see the class description). */
  readonly result: Promise<RunResult>;
  readonly #events: StreamFrame[] = [];
  readonly #emitter: Emitter<RunEventMap>;
  readonly #owner: RunOwner;
  readonly #waiters = new Set<() => void>();
  #runId: string | undefined;
  #status: RunStatus = "pending";
  #error: AgentwireError | undefined;
  #cancelRequested = false;
  #resolve!: (result: RunResult) => void;
  #reject!: (error: AgentwireError) => void;
  /** @internal Whether the request went out on a connection (not only queued). */
  sent = false;

  /** Made by {@link AgentwireClient.startAgent} and {@link AgentwireClient.sendMessage}. */
  constructor(messageId: string, owner: RunOwner, onListenerError: (error: unknown) => void) {
    this.messageId = messageId;
    this.#owner = owner;
    this.#emitter = new Emitter(onListenerError);
    this.result = new Promise<RunResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    // An application that never looks at `result` must not get an unhandled rejection.
    this.result.catch(() => {});
  }

  /** The run's id, once its first event arrived. */
  get runId(): string | undefined {
    return this.#runId;
  }

  /** Where the run stands. */
  get status(): RunStatus {
    return this.#status;
  }

  /** Whether the run is over (completed or failed). */
  get done(): boolean {
    return this.#status === "completed" || this.#status === "failed";
  }

  /** The run's events so far, in `seq` order. */
  get events(): readonly StreamFrame[] {
    return this.#events;
  }

  /** Calls `listener` for each later event of type `type` (`event`: every event). */
  on<K extends keyof RunEventMap>(type: K, listener: Listener<RunEventMap[K]>): Unsubscribe {
    return this.#emitter.on(type, listener);
  }

  /**
   * Asks the server to stop the run (`cancel_agent`); it ends with `agent_error` code
   * `cancelled`, which rejects {@link result}. Before the run's first event, the cancel is
   * sent as soon as its id is known. Does nothing once the run is over.
   */
  cancel(): void {
    if (this.done || this.#cancelRequested) return;
    this.#cancelRequested = true;
    if (this.#runId !== undefined) this.#owner.sendCancel(this.#runId);
  }

  /** Every event of the run, from the first, then each as it arrives, until the terminal
   * one; throws the run's error when it fails without a terminal event. */
  async *[Symbol.asyncIterator](): AsyncGenerator<StreamFrame, void, undefined> {
    let index = 0;
    for (;;) {
      while (index < this.#events.length) {
        yield this.#events[index++]!;
      }
      if (this.done) {
        if (this.#error && this.#error.source !== "agent") throw this.#error;
        return;
      }
      await new Promise<void>((wake) => this.#waiters.add(wake));
    }
  }

  /** @internal An event of this run arrived (in stream order). */
  deliver(frame: StreamFrame): void {
    if (this.done) return;
    if (this.#runId === undefined && frame.run_id !== undefined) {
      this.#runId = frame.run_id;
      if (this.#cancelRequested) this.#owner.sendCancel(frame.run_id);
    }
    this.#status = "running";
    this.#events.push(frame);
    this.#emitter.emit(frame.type as StreamType, frame as never);
    this.#emitter.emit("event", frame);
    if (frame.type === "agent_completed") {
      this.#finish("completed");
      this.#resolve(completed(frame, this.#events));
    } else if (frame.type === "agent_error") {
      const error = agentError(frame);
      this.#error = error;
      this.#finish("failed");
      this.#reject(error);
    } else {
      this.#wake();
    }
  }

  /** @internal The run failed without a terminal event. */
  fail(error: AgentwireError): void {
    if (this.done) return;
    this.#error = error;
    this.#finish("failed");
    this.#reject(error);
  }

  #finish(status: RunStatus): void {
    this.#status = status;
    this.#wake();
    this.#emitter.clear();
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }
}

function completed(frame: AgentCompletedFrame, events: readonly StreamFrame[]): RunResult {
  return {
    result: frame.payload.result,
    durationMs: frame.payload.duration_ms,
    runId: frame.run_id,
    frame,
    events,
  };
}

function agentError(frame: AgentErrorFrame): AgentwireError {
  const p = frame.payload;
  return new AgentwireError(p.code, p.message, {
    source: "agent",
    runId: frame.run_id,
    recoverable: p.recoverable,
    frame,
    ...(frame.reply_to === undefined ? {} : { replyTo: frame.reply_to }),
  });
}
