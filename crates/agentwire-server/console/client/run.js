// A run as a handle: its events as they arrive, and its outcome as a promise.
import { Emitter } from "./emitter.js";
import { AgentwireError } from "./errors.js";
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
    messageId;
    /** Settled by the terminal event (see the class description). */
    result;
    #events = [];
    #emitter;
    #owner;
    #waiters = new Set();
    #runId;
    #status = "pending";
    #error;
    #cancelRequested = false;
    #resolve;
    #reject;
    /** @internal Whether the request went out on a connection (not only queued). */
    sent = false;
    /** Made by {@link AgentwireClient.startAgent} and {@link AgentwireClient.sendMessage}. */
    constructor(messageId, owner, onListenerError) {
        this.messageId = messageId;
        this.#owner = owner;
        this.#emitter = new Emitter(onListenerError);
        this.result = new Promise((resolve, reject) => {
            this.#resolve = resolve;
            this.#reject = reject;
        });
        // An application that never looks at `result` must not get an unhandled rejection.
        this.result.catch(() => { });
    }
    /** The run's id, once its first event arrived. */
    get runId() {
        return this.#runId;
    }
    /** Where the run stands. */
    get status() {
        return this.#status;
    }
    /** Whether the run is over (completed or failed). */
    get done() {
        return this.#status === "completed" || this.#status === "failed";
    }
    /** The run's events so far, in `seq` order. */
    get events() {
        return this.#events;
    }
    /** Calls `listener` for each later event of type `type` (`event`: every event). */
    on(type, listener) {
        return this.#emitter.on(type, listener);
    }
    /**
     * Asks the server to stop the run (`cancel_agent`); it ends with `agent_error` code
     * `cancelled`, which rejects {@link result}. Before the run's first event, the cancel is
     * sent as soon as its id is known. Does nothing once the run is over.
     */
    cancel() {
        if (this.done || this.#cancelRequested)
            return;
        this.#cancelRequested = true;
        if (this.#runId !== undefined)
            this.#owner.sendCancel(this.#runId);
    }
    /** Every event of the run, from the first, then each as it arrives, until the terminal
     * one; throws the run's error when it fails without a terminal event. */
    async *[Symbol.asyncIterator]() {
        let index = 0;
        for (;;) {
            while (index < this.#events.length) {
                yield this.#events[index++];
            }
            if (this.done) {
                if (this.#error && this.#error.source !== "agent")
                    throw this.#error;
                return;
            }
            await new Promise((wake) => this.#waiters.add(wake));
        }
    }
    /** @internal An event of this run arrived (in stream order). */
    deliver(frame) {
        if (this.done)
            return;
        if (this.#runId === undefined && frame.run_id !== undefined) {
            this.#runId = frame.run_id;
            if (this.#cancelRequested)
                this.#owner.sendCancel(frame.run_id);
        }
        this.#status = "running";
        this.#events.push(frame);
        this.#emitter.emit(frame.type, frame);
        this.#emitter.emit("event", frame);
        if (frame.type === "agent_completed") {
            this.#finish("completed");
            this.#resolve(completed(frame, this.#events));
        }
        else if (frame.type === "agent_error") {
            const error = agentError(frame);
            this.#error = error;
            this.#finish("failed");
            this.#reject(error);
        }
        else {
            this.#wake();
        }
    }
    /** @internal The run failed without a terminal event. */
    fail(error) {
        if (this.done)
            return;
        this.#error = error;
        this.#finish("failed");
        this.#reject(error);
    }
    #finish(status) {
        this.#status = status;
        this.#wake();
        this.#emitter.clear();
    }
    #wake() {
        const waiters = [...this.#waiters];
        this.#waiters.clear();
        for (const wake of waiters)
            wake();
    }
}
function completed(frame, events) {
    return {
        result: frame.payload.result,
        durationMs: frame.payload.duration_ms,
        runId: frame.run_id,
        frame,
        events,
    };
}
function agentError(frame) {
    const p = frame.payload;
    return new AgentwireError(p.code, p.message, {
        source: "agent",
        runId: frame.run_id,
        recoverable: p.recoverable,
        frame,
        ...(frame.reply_to === undefined ? {} : { replyTo: frame.reply_to }),
    });
}
