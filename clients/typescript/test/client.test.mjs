// The client against the real agentwire server (the workspace's binary) over loopback, in
// Node with its global WebSocket.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { AgentwireClient, AgentwireError, connect } from "../dist/index.js";
import {
  consecutive,
  mintToken,
  startProxy,
  startServer,
  waitFor,
  within,
} from "./support/server.mjs";

const FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];

/** Every client a test opens, closed after the file. */
const clients = new Set();
function track(client) {
  clients.add(client);
  return client;
}
async function open(url, options) {
  return track(await within(connect(url, options), `connect ${url}`));
}

let server;
before(async () => {
  // Steps of 200 ms: long enough to act between a run's events, short enough for a test.
  server = await startServer(["--demo-step-ms", "200"]);
});
after(async () => {
  for (const client of clients) client.close();
  await server?.stop();
});

describe("connecting", () => {
  test("offers jwt-auth and jwt.<token>, the server answers jwt-auth, and connection_established is exposed", async () => {
    const proxy = await startProxy(server.port);
    try {
      const token = mintToken("ada");
      const client = await open(proxy.url, { token });
      const [head] = proxy.heads;
      assert.match(head.request, new RegExp(`^sec-websocket-protocol: jwt-auth, jwt\\.${token.replace(/\./g, "\\.")}$`, "im"));
      assert.match(head.response, /^HTTP\/1\.1 101 /);
      assert.match(head.response, /^sec-websocket-protocol: jwt-auth$/im);
      assert.doesNotMatch(head.response, new RegExp(token.split(".")[2]));
      assert.equal(client.state, "open");
      assert.equal(client.info.user_id, "ada");
      assert.equal(client.info.protocol_version, 1);
      assert.ok(client.info.heartbeat_interval_ms > 0);
      assert.ok(client.info.max_message_bytes > 0);
      assert.match(client.info.connection_id, /^conn_/);
      assert.equal(client.epoch, client.info.stream.epoch);
      assert.equal(client.lastSeq, client.info.stream.seq);
      assert.equal(client.info.resume, undefined);
      client.close();
      assert.equal(client.state, "closed");
    } finally {
      await proxy.close();
    }
  });

  test("an http:// URL is turned into ws://", async () => {
    const client = await open(server.url.replace("ws://", "http://"), { token: mintToken("ada") });
    assert.equal(client.info.user_id, "ada");
  });

  test("a bad signature rejects connect with the server's code and close 4401", async () => {
    const error = await connect(server.url, { token: mintToken("ada", { secret: "another secret, thirty-two bytes long!" }) }).then(
      () => assert.fail("connected"),
      (e) => e,
    );
    assert.ok(error instanceof AgentwireError);
    assert.equal(error.code, "invalid_signature");
    assert.equal(error.source, "server");
    assert.equal(error.closeCode, 4401);
    assert.equal(error.isAuth, true);
  });

  test("an expired token is refused with token_expired", async () => {
    const error = await connect(server.url, { token: mintToken("ada", { ttlSecs: -3600 }) }).catch((e) => e);
    assert.equal(error.code, "token_expired");
    assert.equal(error.closeCode, 4401);
  });

  test("an unreachable server rejects with connect_failed", async () => {
    const proxy = await startProxy(server.port);
    proxy.refuse(true);
    try {
      const error = await connect(proxy.url, { token: mintToken("ada") }).catch((e) => e);
      assert.equal(error.code, "connect_failed");
      assert.equal(error.source, "client");
      assert.equal(error.closeCode, 1006);
    } finally {
      await proxy.close();
    }
  });

  test("the user's connection over the limit is refused with too_many_connections (4409)", async () => {
    const limited = await startServer(["--max-connections-per-user", "1"]);
    try {
      const first = await open(limited.url, { token: mintToken("bo") });
      const error = await connect(limited.url, { token: mintToken("bo") }).catch((e) => e);
      assert.equal(error.code, "too_many_connections");
      assert.equal(error.closeCode, 4409);
      first.close();
    } finally {
      await limited.stop();
    }
  });

  test("options without a token are refused", async () => {
    const error = await connect(server.url, {}).catch((e) => e);
    assert.equal(error.code, "invalid_options");
  });
});

describe("runs", () => {
  test("startAgent: typed listeners see the five events once each, and result resolves", async () => {
    const client = await open(server.url, { token: mintToken("cy") });
    const seen = [];
    client.on("*", (frame) => {
      if (typeof frame.seq === "number") seen.push(frame.type);
    });
    const tools = [];
    client.on("tool_executing", (frame) => tools.push(frame.payload.tool_name));
    const run = client.startAgent("hello there", { threadId: "thread_1" });
    const started = waitFor((fn) => run.on("agent_started", fn));
    const outcome = await within(run.result, "run result");
    assert.equal((await started).payload.user_request, "hello there");
    assert.deepEqual(outcome.result, { response: "You said: hello there" });
    assert.equal(typeof outcome.durationMs, "number");
    assert.match(outcome.runId, /^run_/);
    assert.deepEqual(outcome.events.map((e) => e.type), FIVE);
    assert.ok(consecutive(outcome.events.map((e) => e.seq)));
    assert.ok(outcome.events.every((e) => e.reply_to === run.messageId && e.thread_id === "thread_1"));
    assert.deepEqual(seen, FIVE);
    assert.deepEqual(tools, ["echo"]);
    assert.equal(run.status, "completed");
    assert.equal(client.lastSeq, outcome.events.at(-1).seq);
  });

  test("a run handle is an async iterable of its events", async () => {
    const client = await open(server.url, { token: mintToken("cy") });
    const run = client.sendMessage("a chat turn");
    const types = [];
    for await (const event of run) types.push(event.type);
    assert.deepEqual(types, FIVE);
    assert.equal((await run.result).result.response, "You said: a chat turn");
  });

  test("a refused request rejects the run with the server's code and field", async () => {
    const client = await open(server.url, { token: mintToken("cy") });
    const run = client.startAgent("");
    const error = await within(run.result.catch((e) => e), "refusal");
    assert.ok(error instanceof AgentwireError);
    assert.equal(error.code, "invalid_payload");
    assert.equal(error.source, "server");
    assert.equal(error.replyTo, run.messageId);
    assert.match(error.field, /payload/);
    assert.equal(run.status, "failed");
    assert.equal(client.state, "open");
  });

  test("cancel() ends the run with agent_error cancelled", async () => {
    const client = await open(server.url, { token: mintToken("cy") });
    const run = client.startAgent("stop me");
    // Cancelled before its id is known: sent as soon as agent_started arrives.
    run.cancel();
    const error = await within(run.result.catch((e) => e), "cancelled run");
    assert.equal(error.code, "cancelled");
    assert.equal(error.source, "agent");
    assert.equal(error.runId, run.runId);
    assert.equal(run.events.at(-1).type, "agent_error");
    assert.equal(run.events[0].type, "agent_started");
  });

  test("an AbortSignal cancels the run and rejects it with aborted", async () => {
    const client = await open(server.url, { token: mintToken("cy") });
    const controller = new AbortController();
    const run = client.startAgent("abort me", { signal: controller.signal });
    await waitFor((fn) => run.on("agent_started", fn));
    controller.abort();
    const error = await run.result.catch((e) => e);
    assert.equal(error.code, "aborted");
    // The server still ends the run, with agent_error cancelled, on the stream.
    const ended = await waitFor(
      (fn) => client.on("agent_error", fn),
      (frame) => frame.run_id === run.runId,
      "agent_error of the aborted run",
    );
    assert.equal(ended.payload.code, "cancelled");
  });

  test("a frame over max_message_bytes is refused before sending, and the connection stays open", async () => {
    const small = await startServer(["--max-message-bytes", "1024", "--demo-step-ms", "0"]);
    try {
      const client = await open(small.url, { token: mintToken("dee") });
      const run = client.startAgent("x".repeat(2000));
      const error = await run.result.catch((e) => e);
      assert.equal(error.code, "message_too_big");
      assert.equal(error.source, "client");
      const pong = await within(client.ping(), "pong");
      assert.equal(pong.type, "pong");
      assert.equal((await within(client.startAgent("fits").result, "run")).events.length, 5);
    } finally {
      await small.stop();
    }
  });

  test("close() fails runs in flight with closed, and later requests with not_connected", async () => {
    const client = await open(server.url, { token: mintToken("cy") });
    const run = client.startAgent("closing");
    client.close();
    assert.equal((await run.result.catch((e) => e)).code, "closed");
    assert.equal((await client.startAgent("late").result.catch((e) => e)).code, "not_connected");
    assert.throws(() => client.send({ type: "ping" }), (e) => e.code === "not_connected");
  });
});

describe("reconnect and resume", () => {
  test("a drop mid-run: the client reconnects, resumes, and sees every event once", async () => {
    const proxy = await startProxy(server.port);
    try {
      const token = mintToken("eve");
      const client = await open(proxy.url, { token, reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
      const watcher = await open(server.url, { token });
      const lifecycle = [];
      for (const name of ["disconnected", "reconnecting", "connected", "resumed", "reset"]) {
        client.onLifecycle(name, (value) => lifecycle.push([name, value]));
      }
      const seqs = [];
      client.on("*", (frame) => typeof frame.seq === "number" && seqs.push(frame.seq));
      const run = client.startAgent("survive a drop");
      await waitFor((fn) => run.on("agent_thinking", fn));
      // Cut the path and keep it cut until the run has ended on the server.
      proxy.refuse(true);
      proxy.drop();
      await waitFor((fn) => client.onLifecycle("reconnecting", fn));
      // Queued while reconnecting, sent once connected again.
      const queued = client.startAgent("queued while away");
      await waitFor(
        (fn) => watcher.on("agent_completed", fn),
        (frame) => frame.run_id === run.runId,
        "the run to end while the client is away",
      );
      proxy.refuse(false);
      const outcome = await within(run.result, "the resumed run's result");
      assert.deepEqual(outcome.events.map((e) => e.type), FIVE);
      assert.ok(consecutive(outcome.events.map((e) => e.seq)));
      const resumed = lifecycle.find(([name]) => name === "resumed")[1];
      assert.ok(resumed.replayed >= 1, `replayed ${resumed.replayed}`);
      assert.equal(resumed.epoch, client.epoch);
      assert.equal(lifecycle.find(([name]) => name === "disconnected")[1].error.closeCode, 1006);
      assert.ok(!lifecycle.some(([name]) => name === "reset"));
      const request = proxy.heads.at(-1).request;
      assert.match(request, new RegExp(`^GET /ws\\?epoch=${client.epoch}&since=\\d+ HTTP/1\\.1`));
      assert.equal((await within(queued.result, "queued run")).events.length, 5);
      // No duplicate, no gap, across the replay and the live events.
      assert.equal(new Set(seqs).size, seqs.length);
      assert.ok(consecutive(seqs), seqs.join(","));
      assert.equal(client.stats.duplicatesDropped, 0);
      assert.equal(client.stats.resumes, 1);
      assert.equal(client.stats.connections, 2);
    } finally {
      await proxy.close();
    }
  });

  test("a server restart: the client reconnects and reports reset epoch_changed; the run in flight fails with stream_reset", async () => {
    const first = await startServer(["--demo-step-ms", "300"]);
    const proxy = await startProxy(first.port);
    let second;
    try {
      const client = await open(proxy.url, { token: mintToken("fay"), reconnect: { initialDelayMs: 50, maxDelayMs: 200 } });
      const oldEpoch = client.epoch;
      const run = client.startAgent("lost with the server");
      await waitFor((fn) => run.on("agent_started", fn));
      proxy.refuse(true);
      await first.kill();
      second = await startServer(["--demo-step-ms", "0"]);
      proxy.retarget(second.port);
      proxy.refuse(false);
      const reset = await waitFor((fn) => client.onLifecycle("reset", fn), () => true, "reset");
      assert.equal(reset.reason, "epoch_changed");
      assert.equal(reset.previousEpoch, oldEpoch);
      assert.notEqual(client.epoch, oldEpoch);
      const error = await run.result.catch((e) => e);
      assert.equal(error.code, "stream_reset");
      // The new stream works.
      assert.equal((await within(client.startAgent("after the restart").result, "run")).events.length, 5);
    } finally {
      await proxy.close();
      await first.kill();
      await second?.stop();
    }
  });

  test("a frozen path is detected by the client's heartbeat and replaced", async () => {
    const proxy = await startProxy(server.port);
    try {
      const client = await open(proxy.url, {
        token: mintToken("gus"),
        heartbeat: { intervalMs: 200, timeoutMs: 500 },
        reconnect: { initialDelayMs: 50, maxDelayMs: 200 },
      });
      const firstConnection = client.info.connection_id;
      proxy.freeze();
      const lost = await waitFor((fn) => client.onLifecycle("disconnected", fn));
      assert.equal(lost.error.code, "liveness_timeout");
      assert.equal(lost.willReconnect, true);
      await waitFor((fn) => client.onLifecycle("resumed", fn));
      assert.notEqual(client.info.connection_id, firstConnection);
      assert.equal((await within(client.startAgent("after the freeze").result, "run")).events.length, 5);
    } finally {
      await proxy.close();
    }
  });

  test("resume from a saved position on the first connection (a page reload)", async () => {
    const token = mintToken("hal");
    const before = await open(server.url, { token });
    await within(before.startAgent("before the reload").result, "run");
    const saved = { epoch: before.epoch, since: before.lastSeq - 2 };
    before.close();
    const client = track(new AgentwireClient(server.url, { token, resume: saved }));
    const replayed = [];
    client.on("*", (frame) => typeof frame.seq === "number" && replayed.push(frame.type));
    const resumed = waitFor((fn) => client.onLifecycle("resumed", fn));
    const completed = waitFor((fn) => client.on("agent_completed", fn));
    await within(client.opened, "open");
    assert.equal((await resumed).replayed, 2);
    await completed;
    assert.deepEqual(replayed, ["tool_completed", "agent_completed"]);
    assert.equal(client.lastSeq, before.lastSeq);
  });

  test("reconnect gives up after maxAttempts with reconnect_failed", async () => {
    const proxy = await startProxy(server.port);
    try {
      const client = await open(proxy.url, { token: mintToken("ivy"), reconnect: { initialDelayMs: 20, maxDelayMs: 40, maxAttempts: 2 } });
      const run = client.startAgent("never finishes here");
      await waitFor((fn) => run.on("agent_started", fn));
      proxy.refuse(true);
      proxy.drop();
      const closed = await waitFor((fn) => client.onLifecycle("closed", fn));
      assert.equal(closed.error.code, "reconnect_failed");
      assert.equal(client.state, "closed");
      assert.equal((await run.result.catch((e) => e)).code, "reconnect_failed");
    } finally {
      await proxy.close();
    }
  });
});

describe("tokens", () => {
  test("getToken refreshes the token with auth_refresh before exp; the connection outlives the first token", async () => {
    const strict = await startServer(["--jwt-leeway-secs", "0", "--demo-step-ms", "0"]);
    try {
      let calls = 0;
      const client = await open(strict.url, {
        getToken: () => {
          calls++;
          return mintToken("jo", { ttlSecs: 3 });
        },
        refreshBeforeExpiryMs: 1500,
      });
      const connection = client.info.connection_id;
      const firstExpiry = Date.now() + 3000;
      const refreshed = await waitFor((fn) => client.onLifecycle("token_refreshed", fn));
      assert.ok(Date.parse(refreshed.expiresAt) > 0);
      assert.ok(calls >= 2);
      // Past the first token's exp (the server has no leeway), the connection is still the same.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstExpiry - Date.now()) + 1000));
      assert.equal((await within(client.ping(), "pong")).type, "pong");
      assert.equal(client.info.connection_id, connection);
      assert.equal(client.stats.connections, 1);
    } finally {
      await strict.stop();
    }
  });

  test("a refused refresh is reported; at exp the server closes 4401 token_expired and the client reconnects with a fresh token", async () => {
    const strict = await startServer(["--jwt-leeway-secs", "0", "--demo-step-ms", "0"]);
    try {
      let client;
      const getToken = () =>
        // Refreshes on the open connection get another user's token (refused: subject_mismatch);
        // connections get the right one.
        client?.state === "open" ? mintToken("someone-else", { ttlSecs: 60 }) : mintToken("kim", { ttlSecs: 2 });
      client = track(new AgentwireClient(strict.url, { getToken, refreshBeforeExpiryMs: 1000, reconnect: { initialDelayMs: 20, maxDelayMs: 50 } }));
      const refused = waitFor((fn) => client.onLifecycle("error", fn), (e) => e.code === "subject_mismatch", "refused refresh");
      const dropped = waitFor((fn) => client.onLifecycle("disconnected", fn));
      const back = waitFor((fn) => client.onLifecycle("connected", fn), (c) => c.reconnected, "reconnect");
      await within(client.opened, "open");
      assert.equal((await refused).source, "server");
      const lost = await dropped;
      assert.equal(lost.error.code, "token_expired");
      assert.equal(lost.error.closeCode, 4401);
      assert.equal(lost.willReconnect, true);
      assert.equal((await back).info.user_id, "kim");
      assert.equal(client.info.resume.status, "resumed");
    } finally {
      await strict.stop();
    }
  });

  test("with a fixed token, an expired connection is closed for good with token_expired", async () => {
    const strict = await startServer(["--jwt-leeway-secs", "0"]);
    try {
      const client = await open(strict.url, { token: mintToken("lu", { ttlSecs: 2 }) });
      const closed = await waitFor((fn) => client.onLifecycle("closed", fn));
      assert.equal(closed.error.code, "token_expired");
      assert.equal(closed.error.closeCode, 4401);
      assert.equal(client.state, "closed");
    } finally {
      await strict.stop();
    }
  });
});
