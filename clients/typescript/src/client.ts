// The connection: handshake with the subprotocol offer, frames to typed listeners and run
// handles, heartbeats, token refresh, reconnect with resume.

import { backoffDelay, type ReconnectOptions } from "./backoff.js";
import { Emitter, type Listener, type Unsubscribe } from "./emitter.js";
import { AgentwireError, closeCodeInfo } from "./errors.js";
import type { InboundFrame } from "./generated/inbound.js";
import type { ErrorFrame, OutboundFrame, PongFrame } from "./generated/outbound.js";
import {
  type ConnectionInfo,
  type FrameOf,
  type OutboundType,
  type StreamFrame,
  isStreamFrame,
  subprotocols,
} from "./protocol.js";
import { RunHandle } from "./run.js";
import { tokenExpiry } from "./token.js";

/** A WebSocket constructor: the browser's, Node's global one, or any with the same API. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;

/** Client-side liveness: a `heartbeat` at the server's interval, and a deadline for any
 * frame to come back. */
export interface HeartbeatOptions {
  /** How often to send `heartbeat`, in ms (default: the server's `heartbeat_interval_ms`). */
  intervalMs?: number;
  /** How long to wait for any frame after a `heartbeat` before the connection is presumed
   * dead and replaced, in ms (default 10 000). */
  timeoutMs?: number;
}

/** Where to resume a stream a previous page or process followed. */
export interface ResumeFrom {
  /** The stream's `epoch` (from `connection_established.payload.stream.epoch`). */
  epoch: string;
  /** The `seq` of the last stream event processed. */
  since: number;
}

/** Options of {@link connect}. Give `token` or `getToken` (or both). */
export interface ConnectOptions {
  /** The JWT to offer. */
  token?: string;
  /**
   * Returns a current JWT: called before every connection and before the token's `exp` to
   * refresh it on the open connection (`auth_refresh`). With it, a connection closed 4401
   * `token_expired` reconnects with a fresh token.
   */
  getToken?: () => string | Promise<string>;
  /** Reconnect after a drop (default: on, with {@link ReconnectOptions}'s defaults). */
  reconnect?: boolean | ReconnectOptions;
  /** Client-side heartbeats (default: on, at the server's interval). */
  heartbeat?: boolean | HeartbeatOptions;
  /** Refresh the token this long before its `exp`, in ms (default 60 000; at most half
   * of the time left). */
  refreshBeforeExpiryMs?: number;
  /** How long the first frame may take after the socket is created, in ms (default 15 000). */
  connectTimeoutMs?: number;
  /** Frames held while reconnecting, sent once connected again (default 100). */
  maxQueuedFrames?: number;
  /** Resume this stream on the first connection (e.g. saved before a page reload). */
  resume?: ResumeFrom;
  /** The WebSocket implementation (default: `globalThis.WebSocket`). */
  WebSocket?: WebSocketConstructor;
}

/** Where the client stands. */
export type ClientState =
  /** The first connection is being opened. */
  | "connecting"
  /** Connected: `connection_established` arrived. */
  | "open"
  /** The connection dropped; a new one is on its way. */
  | "reconnecting"
  /** Closed for good: by {@link AgentwireClient.close}, a fatal close, or reconnects given up. */
  | "closed";

/** The frame listeners: one per outbound type, and `*` for every frame. */
export type FrameEventMap = { [K in OutboundType]: FrameOf<K> } & { "*": OutboundFrame };

/** The connection's lifecycle, for {@link AgentwireClient.onLifecycle}. */
export interface LifecycleEventMap {
  /** `connection_established` arrived (the first time, and after each reconnect). */
  connected: { info: ConnectionInfo; reconnected: boolean };
  /** The connection ended; `willReconnect` says whether a new one follows. */
  disconnected: { error: AgentwireError; willReconnect: boolean };
  /** A reconnect is scheduled `delayMs` from now. */
  reconnecting: { attempt: number; delayMs: number; error: AgentwireError };
  /** The stream was resumed: the events `fromSeq..=toSeq` (`replayed` of them) follow. */
  resumed: { epoch: string; replayed: number; fromSeq: number; toSeq: number };
  /**
   * The stream could not be resumed (`epoch_changed`, `outside_window`, `unavailable`, or
   * `gap` when the client saw a `seq` skip): events may have been missed. Resynchronize
   * (reload the thread); runs in flight fail with `stream_reset`.
   */
  reset: { reason: string; epoch: string; previousEpoch: string | undefined; lastSeq: number };
  /** `auth_refreshed`: the connection now runs on a fresh token. */
  token_refreshed: { expiresAt: string };
  /** A problem that did not end the connection (a refused token refresh, an unreadable frame,
   * a throwing listener). */
  error: AgentwireError;
  /** The client is closed for good; `error` is undefined after {@link AgentwireClient.close}. */
  closed: { error: AgentwireError | undefined };
}

/** Counters of what the client has seen, for dashboards and tests. */
export interface ClientStats {
  /** Connections established (the first one included). */
  connections: number;
  /** Reconnects that resumed the stream. */
  resumes: number;
  /** Resets (resume refused, or a gap seen). */
  resets: number;
  /** Replayed events announced by resumes. */
  replayed: number;
  /** Stream events dropped because their `seq` was already processed. */
  duplicatesDropped: number;
}

/** Options of {@link AgentwireClient.startAgent} and {@link AgentwireClient.sendMessage}. */
export interface RunOptions {
  /** The agent to run (the server's default when absent). */
  agentName?: string;
  /** The conversation thread. */
  threadId?: string;
  /** Extra context for the agent (a JSON object). */
  context?: Record<string, unknown>;
  /** Aborting cancels the run and rejects its result with `aborted`. */
  signal?: AbortSignal;
}

const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
const DEFAULT_REFRESH_BEFORE_EXPIRY_MS = 60_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 15_000;
const DEFAULT_MAX_QUEUED_FRAMES = 100;
/** After a 4429 close, wait at least this long before reconnecting. */
const RATE_LIMITED_FLOOR_MS = 5_000;
/** How long a close event may follow an error event before 1006 is assumed. */
const ERROR_CLOSE_GRACE_MS = 1_000;
/** setTimeout's largest delay. */
const MAX_TIMER_MS = 2_147_483_647;

type Timer = ReturnType<typeof setTimeout>;
type TimerName = "connect" | "reconnect" | "refresh" | "liveness" | "heartbeat";

/**
 * Connects to an agentwire server and resolves once `connection_established` arrived.
 *
 * ```ts
 * const client = await connect("wss://chat.example/ws", { token });
 * const run = client.startAgent("Find a flight from Oslo to Lisbon");
 * run.on("tool_executing", (e) => console.log("calling", e.payload.tool_name));
 * const { result } = await run.result;
 * ```
 *
 * Rejects with an {@link AgentwireError} when the first connection fails (an authentication
 * code with close 4401, `connect_failed`, `connect_timeout`); later drops are reconnected.
 */
export function connect(url: string | URL, options: ConnectOptions): Promise<AgentwireClient> {
  const client = new AgentwireClient(url, options);
  return client.opened.then(() => client);
}

/**
 * A connection to an agentwire server that survives drops: see {@link connect}.
 *
 * Frames go to typed listeners ({@link on}); runs started with {@link startAgent} are
 * handles with their events and result. After a drop the client reconnects with jittered
 * backoff and resumes the stream with `?epoch=&since=`: each stream event is delivered
 * exactly once, in `seq` order, or the client reports `reset`.
 */
export class AgentwireClient {
  /** Resolves when the first connection is established; rejects when it fails. */
  readonly opened: Promise<void>;
  readonly #base: URL;
  readonly #options: ConnectOptions;
  readonly #WebSocket: WebSocketConstructor;
  readonly #frames: Emitter<FrameEventMap>;
  readonly #lifecycle: Emitter<LifecycleEventMap>;
  readonly #reconnect: ReconnectOptions | undefined;
  readonly #prefix: string;
  #counter = 0;
  #state: ClientState = "connecting";
  #ws: WebSocket | undefined;
  /** Bumped whenever a socket is replaced: events of older sockets are ignored. */
  #generation = 0;
  #established = false;
  #handshakeError: AgentwireError | undefined;
  #info: ConnectionInfo | undefined;
  #epoch: string | undefined;
  #lastSeq = 0;
  #resumeFrom: ResumeFrom | undefined;
  #token: string | undefined;
  #skewMs = 0;
  #attempt = 0;
  #queue: { text: string; run: RunHandle | undefined }[] = [];
  readonly #runsByMessage = new Map<string, RunHandle>();
  readonly #runsById = new Map<string, RunHandle>();
  readonly #pings = new Map<string, { resolve: (f: PongFrame) => void; reject: (e: AgentwireError) => void }>();
  #refresh: { messageId: string; token: string } | undefined;
  #timers: { [K in TimerName]?: Timer | undefined } = {};
  #stats: ClientStats = { connections: 0, resumes: 0, resets: 0, replayed: 0, duplicatesDropped: 0 };
  #settleOpened: { resolve: () => void; reject: (e: AgentwireError) => void } | undefined;

  /** Starts connecting; prefer {@link connect}, which waits for the connection. */
  constructor(url: string | URL, options: ConnectOptions) {
    this.#options = options;
    // A throwing lifecycle listener is reported asynchronously (never to itself); a throwing
    // frame or run listener is reported as a lifecycle `error`.
    this.#lifecycle = new Emitter();
    this.#frames = new Emitter((error) => this.#lifecycle.emit("error", wrapListenerError(error)));
    this.#reconnect =
      options.reconnect === false
        ? undefined
        : options.reconnect === true || options.reconnect === undefined
          ? {}
          : options.reconnect;
    this.#prefix = randomId();
    this.#resumeFrom = options.resume;
    this.opened = new Promise<void>((resolve, reject) => {
      this.#settleOpened = { resolve, reject };
    });
    this.opened.catch(() => {});
    const WebSocketImpl = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    this.#WebSocket = WebSocketImpl as WebSocketConstructor;
    let base: URL | undefined;
    let problem: string | undefined;
    try {
      base = toWebSocketUrl(url);
    } catch (error) {
      problem = `not a WebSocket URL: ${String(url)} (${String(error)})`;
    }
    if (!WebSocketImpl) {
      problem = "no WebSocket implementation: pass options.WebSocket (Node 20 needs --experimental-websocket)";
    } else if (options.token === undefined && options.getToken === undefined) {
      problem = "give options.token or options.getToken";
    }
    this.#base = base ?? new URL("ws://invalid.invalid/");
    if (problem !== undefined) {
      this.#terminate(new AgentwireError("invalid_options", problem, { source: "client" }));
      return;
    }
    this.#token = options.token;
    void this.#open();
  }

  /** Where the client stands. */
  get state(): ClientState {
    return this.#state;
  }

  /** The last `connection_established` payload (ids, limits, stream position). */
  get info(): ConnectionInfo | undefined {
    return this.#info;
  }

  /** The stream's epoch: `seq`s compare only within it. */
  get epoch(): string | undefined {
    return this.#epoch;
  }

  /** The `seq` of the last stream event processed: with {@link epoch}, where a later
   * connection resumes (save both to resume after a page reload, see {@link ConnectOptions.resume}). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** Counters of connections, resumes, resets and dropped duplicates. */
  get stats(): Readonly<ClientStats> {
    return { ...this.#stats };
  }

  /**
   * Calls `listener` for each frame of type `type` (`*`: every frame), replayed ones
   * included, until the returned function is called. Stream frames arrive once each, in
   * `seq` order.
   */
  on<K extends keyof FrameEventMap>(type: K, listener: Listener<FrameEventMap[K]>): Unsubscribe {
    return this.#frames.on(type, listener);
  }

  /** Calls `listener` on each lifecycle event `name` (connected, disconnected, reconnecting,
   * resumed, reset, token_refreshed, error, closed). */
  onLifecycle<K extends keyof LifecycleEventMap>(
    name: K,
    listener: Listener<LifecycleEventMap[K]>,
  ): Unsubscribe {
    return this.#lifecycle.on(name, listener);
  }

  /**
   * Starts a run (`start_agent`) and returns its handle. Never throws: a request that cannot
   * be sent fails the handle's `result`. While reconnecting, the request is queued and sent
   * once connected.
   */
  startAgent(request: string, options: RunOptions = {}): RunHandle {
    return this.#startRun("start_agent", "user_request", request, options);
  }

  /** Starts a chat turn (`user_message`), a run like {@link startAgent}. */
  sendMessage(text: string, options: RunOptions = {}): RunHandle {
    return this.#startRun("user_message", "message", text, options);
  }

  /** Sends `ping`; resolves with the `pong`. Rejects when the connection drops first. */
  ping(): Promise<PongFrame> {
    const messageId = this.#nextId();
    const pong = new Promise<PongFrame>((resolve, reject) => {
      this.#pings.set(messageId, { resolve, reject });
    });
    try {
      this.#sendNow({ type: "ping", message_id: messageId });
    } catch (error) {
      this.#pings.delete(messageId);
      return Promise.reject(error);
    }
    return pong;
  }

  /**
   * Sends any inbound frame as is. Throws an {@link AgentwireError}: `not_connected` when
   * closed, `queue_full`, `message_too_big`. While reconnecting the frame is queued.
   */
  send(frame: InboundFrame): void {
    this.#enqueue(JSON.stringify(frame), undefined);
  }

  /**
   * Replaces the connection now (e.g. after the network changed), resuming the stream;
   * a no-op unless open.
   */
  reconnect(): void {
    if (this.#state !== "open" || !this.#ws) return;
    this.#abandon(
      new AgentwireError("reconnect_requested", "reconnect requested by the application", {
        source: "client",
      }),
    );
  }

  /** Closes the connection for good; runs in flight fail with `closed`. */
  close(): void {
    if (this.#state === "closed") return;
    const ws = this.#ws;
    this.#generation++;
    if (ws) {
      try {
        ws.close(1000, "client closed");
      } catch {
        // Already closing.
      }
    }
    this.#shutdown(new AgentwireError("closed", "the client was closed", { source: "client" }), undefined);
  }

  // -- connection ---------------------------------------------------------------------------

  async #open(): Promise<void> {
    const generation = ++this.#generation;
    let token: string;
    try {
      token = await this.#currentToken();
    } catch (error) {
      if (generation !== this.#generation || this.#state === "closed") return;
      const failure =
        error instanceof AgentwireError
          ? error
          : new AgentwireError("token_unavailable", `getToken failed: ${String(error)}`, {
              source: "client",
              cause: error,
            });
      this.#connectionLost(failure, false);
      return;
    }
    if (generation !== this.#generation || this.#state === "closed") return;
    const url = new URL(this.#base);
    const resume = this.#epoch !== undefined ? { epoch: this.#epoch, since: this.#lastSeq } : this.#resumeFrom;
    if (resume) {
      url.searchParams.set("epoch", resume.epoch);
      url.searchParams.set("since", String(resume.since));
    }
    let ws: WebSocket;
    try {
      ws = new this.#WebSocket(url.href, subprotocols(token));
    } catch (error) {
      // The constructor refuses a token with characters a subprotocol cannot carry.
      this.#terminate(
        new AgentwireError("malformed_token", `cannot offer the token as a subprotocol: ${String(error)}`, {
          source: "client",
          cause: error,
        }),
      );
      return;
    }
    this.#ws = ws;
    this.#established = false;
    this.#handshakeError = undefined;
    let ended = false;
    ws.onmessage = (event: MessageEvent) => {
      if (generation === this.#generation) this.#onMessage(event.data);
    };
    ws.onclose = (event: CloseEvent) => {
      if (ended) return;
      ended = true;
      if (generation === this.#generation) this.#onClose(event.code, event.reason);
    };
    ws.onerror = () => {
      // A close event follows with the code; Node 20's WebSocket fires none after a failed
      // handshake, so a missing one is taken as 1006 (dropped without a close frame).
      setTimeout(() => {
        if (ended || generation !== this.#generation) return;
        ended = true;
        try {
          ws.close();
        } catch {
          // Already closing.
        }
        this.#onClose(1006, "");
      }, ERROR_CLOSE_GRACE_MS);
    };
    const timeout = this.#options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.#timers.connect = setTimeout(() => {
      if (generation !== this.#generation || this.#established) return;
      this.#abandon(
        new AgentwireError("connect_timeout", `no connection_established within ${timeout} ms from ${this.#base.href}`, {
          source: "client",
        }),
      );
    }, timeout);
  }

  async #currentToken(): Promise<string> {
    const getToken = this.#options.getToken;
    if (!getToken) return this.#token ?? "";
    const token = await getToken();
    if (typeof token !== "string" || token.length === 0) {
      throw new AgentwireError("token_unavailable", "getToken returned no token", { source: "client" });
    }
    this.#token = token;
    return token;
  }

  #onMessage(data: unknown): void {
    this.#clearTimer("liveness");
    let frame: OutboundFrame;
    try {
      if (typeof data !== "string") throw new Error("a binary frame");
      const parsed: unknown = JSON.parse(data);
      if (parsed === null || typeof parsed !== "object" || typeof (parsed as { type?: unknown }).type !== "string") {
        throw new Error("not a JSON object with a string type");
      }
      frame = parsed as OutboundFrame;
    } catch (error) {
      this.#lifecycle.emit(
        "error",
        new AgentwireError("invalid_frame", `unreadable frame from the server: ${String(error)}`, {
          source: "client",
          cause: error,
        }),
      );
      return;
    }
    if (frame.type === "connection_established") {
      this.#onEstablished(frame);
      this.#frames.emit("connection_established", frame);
      this.#frames.emit("*", frame);
      this.#flushQueue();
      return;
    }
    if (!this.#established) {
      // Before connection_established only a failed handshake's error frame comes.
      if (frame.type === "error") this.#handshakeError = AgentwireError.fromFrame(frame);
      this.#frames.emit(frame.type, frame as never);
      this.#frames.emit("*", frame);
      return;
    }
    if (isStreamFrame(frame)) {
      if (frame.seq <= this.#lastSeq) {
        this.#stats.duplicatesDropped++;
        return;
      }
      if (frame.seq > this.#lastSeq + 1 && this.#epoch !== undefined) {
        this.#reset("gap", this.#epoch, frame.seq - 1)();
      }
      this.#lastSeq = frame.seq;
    }
    this.#frames.emit(frame.type, frame as never);
    this.#frames.emit("*", frame);
    if (isStreamFrame(frame)) {
      this.#routeToRun(frame);
    } else if (frame.type === "error") {
      this.#onErrorFrame(frame);
    } else if (frame.type === "pong" && frame.reply_to !== undefined) {
      const ping = this.#pings.get(frame.reply_to);
      if (ping) {
        this.#pings.delete(frame.reply_to);
        ping.resolve(frame);
      }
    } else if (frame.type === "auth_refreshed" && this.#refresh && frame.reply_to === this.#refresh.messageId) {
      this.#token = this.#refresh.token;
      this.#refresh = undefined;
      this.#lifecycle.emit("token_refreshed", { expiresAt: frame.payload.expires_at });
      this.#scheduleRefresh();
    }
  }

  #onEstablished(frame: FrameOf<"connection_established">): void {
    const info = frame.payload;
    const reconnected = this.#stats.connections > 0;
    this.#clearTimer("connect");
    this.#established = true;
    this.#attempt = 0;
    this.#info = info;
    this.#stats.connections++;
    const serverTime = Date.parse(info.server_time);
    this.#skewMs = Number.isFinite(serverTime) ? serverTime - Date.now() : 0;
    const asked = this.#epoch !== undefined || this.#resumeFrom !== undefined;
    if (this.#epoch === undefined && this.#resumeFrom !== undefined) {
      this.#epoch = this.#resumeFrom.epoch;
      this.#lastSeq = this.#resumeFrom.since;
    }
    this.#resumeFrom = undefined;
    const resume = info.resume;
    let report: (() => void) | undefined;
    if (!asked) {
      this.#epoch = info.stream.epoch;
      this.#lastSeq = info.stream.seq;
    } else if (resume?.status === "resumed" && info.stream.epoch === this.#epoch) {
      this.#stats.resumes++;
      this.#stats.replayed += resume.replayed;
      report = () =>
        this.#lifecycle.emit("resumed", {
          epoch: info.stream.epoch,
          replayed: resume.replayed,
          fromSeq: resume.from_seq,
          toSeq: resume.to_seq,
        });
    } else {
      const reason = resume?.status === "reset" ? resume.reason : "unavailable";
      report = this.#reset(reason, info.stream.epoch, info.stream.seq);
    }
    this.#state = "open";
    this.#lifecycle.emit("connected", { info, reconnected });
    report?.();
    this.#startHeartbeat(info);
    this.#scheduleRefresh();
    const settle = this.#settleOpened;
    this.#settleOpened = undefined;
    settle?.resolve();
  }

  #onClose(code: number, reason: string): void {
    this.#ws = undefined;
    // A refused connection says why in an error frame before the close (4401, 4409).
    const error = this.#handshakeError
      ? new AgentwireError(this.#handshakeError.code, this.#handshakeError.message, {
          source: "server",
          closeCode: code,
          frame: this.#handshakeError.frame,
        })
      : AgentwireError.fromClose(code, reason);
    this.#connectionLost(error, this.#established);
  }

  /** Gives up on the current socket (no answer in time, or asked to) and replaces it. */
  #abandon(error: AgentwireError): void {
    const ws = this.#ws;
    const established = this.#established;
    this.#generation++;
    this.#ws = undefined;
    if (ws) {
      try {
        ws.close(4000, error.code);
      } catch {
        // Already closing.
      }
    }
    this.#connectionLost(error, established);
  }

  #connectionLost(error: AgentwireError, wasEstablished: boolean): void {
    this.#stopConnectionTimers();
    this.#established = false;
    for (const ping of this.#pings.values()) ping.reject(error);
    this.#pings.clear();
    this.#refresh = undefined;
    if (this.#state === "closed") return;
    if (this.#stats.connections === 0) {
      // The first connection never came up: report why, do not retry.
      const silent = error.source === "close" && (error.closeCode === 1006 || error.closeCode === 1005);
      const failure = silent
          ? new AgentwireError(
              "connect_failed",
              `could not connect to ${this.#base.href}: ${error.message} ` +
                "(unreachable, or the handshake was refused: HTTP 400/403/503 are not visible to a browser)",
              { source: "client", ...(error.closeCode === undefined ? {} : { closeCode: error.closeCode }), cause: error },
            )
          : error;
      this.#terminate(failure);
      return;
    }
    const retry =
      this.#reconnect !== undefined &&
      (error.closeCode === undefined ||
        closeCodeInfo(error.closeCode).retry ||
        // An expired token on a live connection: reconnect with a fresh one.
        (error.closeCode === 4401 && wasEstablished && this.#options.getToken !== undefined));
    if (!retry) {
      this.#terminate(error, wasEstablished);
      return;
    }
    // Once per lost connection; a failed attempt only schedules the next one.
    if (wasEstablished) this.#lifecycle.emit("disconnected", { error, willReconnect: true });
    this.#scheduleReconnect(error);
  }

  #scheduleReconnect(error: AgentwireError): void {
    const options = this.#reconnect ?? {};
    this.#attempt++;
    const maxAttempts = options.maxAttempts ?? Number.POSITIVE_INFINITY;
    if (this.#attempt > maxAttempts) {
      this.#terminate(
        new AgentwireError("reconnect_failed", `gave up after ${maxAttempts} reconnect attempts: ${error.message}`, {
          source: "client",
          cause: error,
        }),
      );
      return;
    }
    let delayMs = backoffDelay(this.#attempt, options);
    if (error.closeCode === 4429) delayMs = Math.max(delayMs, RATE_LIMITED_FLOOR_MS);
    this.#state = "reconnecting";
    this.#lifecycle.emit("reconnecting", { attempt: this.#attempt, delayMs, error });
    this.#timers.reconnect = setTimeout(() => {
      this.#timers.reconnect = undefined;
      if (this.#state === "reconnecting") void this.#open();
    }, delayMs);
  }

  /** The stream continuity is lost: adopt the new position and fail the runs in flight.
   * Returns the `reset` report, for the caller to emit when it fits. */
  #reset(reason: string, epoch: string, seq: number): () => void {
    const previousEpoch = this.#epoch;
    const lastSeq = this.#lastSeq;
    this.#epoch = epoch;
    this.#lastSeq = seq;
    this.#stats.resets++;
    const error = new AgentwireError(
      "stream_reset",
      `the stream could not be resumed (${reason}): events of runs in flight may be lost`,
      { source: "client" },
    );
    for (const run of [...this.#runsByMessage.values()]) {
      if (run.sent) this.#failRun(run, error);
    }
    return () => this.#lifecycle.emit("reset", { reason, epoch, previousEpoch, lastSeq });
  }

  /** Fatal: close for good with `error` (reported as `disconnected` too when it ended an
   * established connection). */
  #terminate(error: AgentwireError, wasEstablished = false): void {
    const ws = this.#ws;
    this.#generation++;
    if (ws) {
      try {
        ws.close(1000, "client giving up");
      } catch {
        // Already closing.
      }
    }
    if (wasEstablished) this.#lifecycle.emit("disconnected", { error, willReconnect: false });
    this.#shutdown(error, error);
  }

  #shutdown(runError: AgentwireError, reported: AgentwireError | undefined): void {
    this.#state = "closed";
    this.#ws = undefined;
    this.#stopConnectionTimers();
    this.#clearTimer("reconnect");
    for (const ping of this.#pings.values()) ping.reject(runError);
    this.#pings.clear();
    for (const run of [...this.#runsByMessage.values()]) this.#failRun(run, runError);
    this.#queue = [];
    const settle = this.#settleOpened;
    this.#settleOpened = undefined;
    settle?.reject(runError);
    this.#lifecycle.emit("closed", { error: reported });
  }

  // -- heartbeats and token refresh ---------------------------------------------------------

  #startHeartbeat(info: ConnectionInfo): void {
    const option = this.#options.heartbeat;
    if (option === false) return;
    const settings = option === true || option === undefined ? {} : option;
    const interval = settings.intervalMs ?? info.heartbeat_interval_ms;
    if (!(interval > 0)) return;
    const timeout = settings.timeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    const generation = this.#generation;
    this.#timers.heartbeat = setInterval(() => {
      if (generation !== this.#generation || this.#timers.liveness !== undefined) return;
      try {
        this.#sendNow({ type: "heartbeat" });
      } catch {
        return;
      }
      this.#timers.liveness = setTimeout(() => {
        this.#timers.liveness = undefined;
        if (generation !== this.#generation) return;
        this.#abandon(
          new AgentwireError("liveness_timeout", `no frame within ${timeout} ms after a heartbeat`, {
            source: "client",
          }),
        );
      }, timeout);
    }, interval);
  }

  #scheduleRefresh(): void {
    this.#clearTimer("refresh");
    if (!this.#options.getToken || this.#token === undefined) return;
    const exp = tokenExpiry(this.#token);
    if (exp === undefined) return;
    const left = exp - (Date.now() + this.#skewMs);
    const margin = Math.min(this.#options.refreshBeforeExpiryMs ?? DEFAULT_REFRESH_BEFORE_EXPIRY_MS, left / 2);
    const delay = Math.max(0, left - margin);
    const generation = this.#generation;
    this.#timers.refresh = setTimeout(
      () => {
        this.#timers.refresh = undefined;
        if (generation !== this.#generation || this.#state !== "open") return;
        if (delay > MAX_TIMER_MS) this.#scheduleRefresh();
        else void this.#refreshToken(generation);
      },
      Math.min(delay, MAX_TIMER_MS),
    );
  }

  async #refreshToken(generation: number): Promise<void> {
    let token: string;
    try {
      const fresh = await this.#options.getToken?.();
      if (typeof fresh !== "string" || fresh.length === 0) throw new Error("getToken returned no token");
      token = fresh;
    } catch (error) {
      this.#lifecycle.emit(
        "error",
        new AgentwireError("token_unavailable", `token refresh: getToken failed: ${String(error)}`, {
          source: "client",
          cause: error,
        }),
      );
      this.#retryRefresh(generation);
      return;
    }
    if (generation !== this.#generation || this.#state !== "open") return;
    const messageId = this.#nextId();
    this.#refresh = { messageId, token };
    try {
      this.#sendNow({ type: "auth_refresh", message_id: messageId, payload: { token } });
    } catch {
      this.#refresh = undefined;
    }
  }

  /** After a failed refresh: try again in a quarter of the time left (the server closes
   * 4401 `token_expired` at `exp`, and the reconnect fetches a fresh token). */
  #retryRefresh(generation: number): void {
    if (generation !== this.#generation || this.#token === undefined) return;
    const exp = tokenExpiry(this.#token);
    if (exp === undefined) return;
    const left = exp - (Date.now() + this.#skewMs);
    if (left < 2_000) return;
    this.#timers.refresh = setTimeout(() => {
      this.#timers.refresh = undefined;
      if (generation === this.#generation && this.#state === "open") void this.#refreshToken(generation);
    }, left / 4);
  }

  // -- runs ---------------------------------------------------------------------------------

  #startRun(type: "start_agent" | "user_message", field: string, text: string, options: RunOptions): RunHandle {
    const messageId = this.#nextId();
    const run = new RunHandle(
      messageId,
      {
        sendCancel: (runId) => {
          try {
            this.#enqueue(JSON.stringify({ type: "cancel_agent", payload: { run_id: runId } }), undefined);
          } catch (error) {
            if (error instanceof AgentwireError) this.#lifecycle.emit("error", error);
          }
        },
      },
      (error) => this.#lifecycle.emit("error", wrapListenerError(error)),
    );
    const payload: Record<string, unknown> = { [field]: text };
    if (options.agentName !== undefined) payload["agent_name"] = options.agentName;
    if (options.context !== undefined) payload["context"] = options.context;
    const frame: Record<string, unknown> = { type, message_id: messageId, payload };
    if (options.threadId !== undefined) frame["thread_id"] = options.threadId;
    this.#runsByMessage.set(messageId, run);
    const signal = options.signal;
    if (signal) {
      const onAbort = (): void => {
        run.cancel();
        this.#failRun(run, new AgentwireError("aborted", "the run was aborted", { source: "client", cause: signal.reason }));
      };
      if (signal.aborted) {
        onAbort();
        return run;
      }
      signal.addEventListener("abort", onAbort, { once: true });
      run.result.then(
        () => signal.removeEventListener("abort", onAbort),
        () => signal.removeEventListener("abort", onAbort),
      );
    }
    try {
      this.#enqueue(JSON.stringify(frame), run);
    } catch (error) {
      this.#failRun(
        run,
        error instanceof AgentwireError
          ? error
          : new AgentwireError("not_connected", String(error), { source: "client", cause: error }),
      );
    }
    return run;
  }

  #routeToRun(frame: StreamFrame): void {
    const run =
      (frame.reply_to !== undefined ? this.#runsByMessage.get(frame.reply_to) : undefined) ??
      (frame.run_id !== undefined ? this.#runsById.get(frame.run_id) : undefined);
    if (!run) return;
    if (frame.run_id !== undefined && !this.#runsById.has(frame.run_id)) this.#runsById.set(frame.run_id, run);
    run.deliver(frame);
    if (run.done) this.#forget(run);
  }

  #onErrorFrame(frame: ErrorFrame): void {
    const replyTo = frame.reply_to;
    if (replyTo === undefined) return;
    const run = this.#runsByMessage.get(replyTo);
    if (run && run.runId === undefined) {
      this.#failRun(run, AgentwireError.fromFrame(frame));
      return;
    }
    if (replyTo === this.#refresh?.messageId) {
      this.#refresh = undefined;
      this.#lifecycle.emit("error", AgentwireError.fromFrame(frame));
      this.#retryRefresh(this.#generation);
      return;
    }
    const ping = this.#pings.get(replyTo);
    if (ping) {
      this.#pings.delete(replyTo);
      ping.reject(AgentwireError.fromFrame(frame));
    }
  }

  #failRun(run: RunHandle, error: AgentwireError): void {
    run.fail(error);
    this.#forget(run);
  }

  #forget(run: RunHandle): void {
    this.#runsByMessage.delete(run.messageId);
    if (run.runId !== undefined) this.#runsById.delete(run.runId);
  }

  // -- sending ------------------------------------------------------------------------------

  /** Sends now, or queues while (re)connecting. */
  #enqueue(text: string, run: RunHandle | undefined): void {
    if (this.#state === "closed") {
      throw new AgentwireError("not_connected", "the client is closed", { source: "client" });
    }
    this.#checkSize(text);
    if (this.#state === "open" && this.#ws && this.#established) {
      this.#ws.send(text);
      if (run) run.sent = true;
      return;
    }
    const max = this.#options.maxQueuedFrames ?? DEFAULT_MAX_QUEUED_FRAMES;
    if (this.#queue.length >= max) {
      throw new AgentwireError("queue_full", `more than ${max} frames queued while reconnecting`, { source: "client" });
    }
    this.#queue.push({ text, run });
  }

  /** Sends now, or throws `not_connected` (heartbeats, pings and refreshes are not queued). */
  #sendNow(frame: InboundFrame): void {
    const text = JSON.stringify(frame);
    if (this.#state !== "open" || !this.#ws || !this.#established) {
      throw new AgentwireError("not_connected", "not connected", { source: "client" });
    }
    this.#checkSize(text);
    this.#ws.send(text);
  }

  #checkSize(text: string): void {
    const max = this.#info?.max_message_bytes;
    if (max === undefined || text.length * 3 <= max) return;
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > max) {
      throw new AgentwireError(
        "message_too_big",
        `the frame is ${bytes} bytes; the server accepts at most ${max} (max_message_bytes)`,
        { source: "client" },
      );
    }
  }

  #flushQueue(): void {
    const queue = this.#queue;
    this.#queue = [];
    for (const { text, run } of queue) {
      if (run?.done) continue;
      this.#ws?.send(text);
      if (run) run.sent = true;
    }
  }

  // -- helpers ------------------------------------------------------------------------------

  #nextId(): string {
    this.#counter++;
    return `${this.#prefix}_${this.#counter.toString(36)}`;
  }

  #clearTimer(name: TimerName): void {
    const timer = this.#timers[name];
    if (timer !== undefined) {
      clearTimeout(timer);
      clearInterval(timer);
      this.#timers[name] = undefined;
    }
  }

  #stopConnectionTimers(): void {
    this.#clearTimer("connect");
    this.#clearTimer("heartbeat");
    this.#clearTimer("liveness");
    this.#clearTimer("refresh");
  }
}

function wrapListenerError(error: unknown): AgentwireError {
  return error instanceof AgentwireError
    ? error
    : new AgentwireError("listener_error", `a listener threw: ${String(error)}`, { source: "client", cause: error });
}

/** A WebSocket URL from `url` (http and https become ws and wss; relative to the page). */
function toWebSocketUrl(url: string | URL): URL {
  const base = (globalThis as { location?: { href: string } }).location?.href;
  const parsed = new URL(String(url), base);
  if (parsed.protocol === "http:") parsed.protocol = "ws:";
  else if (parsed.protocol === "https:") parsed.protocol = "wss:";
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new Error(`scheme ${parsed.protocol} is not ws: or wss:`);
  }
  parsed.hash = "";
  return parsed;
}

/** 8 random base-36 characters: message ids of different clients do not collide. */
function randomId(): string {
  const bytes = new Uint8Array(6);
  globalThis.crypto.getRandomValues(bytes);
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return `m${n.toString(36).padStart(10, "0")}`;
}
