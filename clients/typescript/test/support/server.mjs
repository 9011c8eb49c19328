// Test support: the real agentwire binary on loopback, tokens, and a TCP proxy that can drop,
// refuse or freeze connections (a network failure the client must survive).
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { existsSync } from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { once } from "node:events";

const repo = fileURLToPath(new URL("../../../../", import.meta.url));

/** Bounds every wait of the tests against a hang (never a timing assertion). */
export const PATIENCE_MS = 30_000;

/** The agentwire binary: $AGENTWIRE_BIN, else the workspace's debug build. */
export function agentwireBinary() {
  const target = process.env.CARGO_TARGET_DIR ?? `${repo}target`;
  const path = process.env.AGENTWIRE_BIN ?? `${target}/debug/agentwire`;
  if (!existsSync(path)) {
    throw new Error(
      `no agentwire binary at ${path}: run \`cargo build -p agentwire-cli\` or set AGENTWIRE_BIN`,
    );
  }
  return path;
}

export const SECRET = "a test secret of at least thirty-two bytes";

function base64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** An HS256 token for `sub`, valid `ttlSecs` from now. */
export function mintToken(sub, { ttlSecs = 3600, secret = SECRET, claims = {} } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = base64url(JSON.stringify({ sub, iat: now, exp: now + ttlSecs, ...claims }));
  const signature = createHmac("sha256", secret).update(`${header}.${body}`).digest("base64url");
  return `${header}.${body}.${signature}`;
}

/** Runs `agentwire serve` with `args` on a free loopback port; resolves once it listens. */
export async function startServer(args = [], { port = 0 } = {}) {
  const child = spawn(
    agentwireBinary(),
    [
      "serve",
      "--listen",
      `127.0.0.1:${port}`,
      "--jwt-secret",
      SECRET,
      "--log-format",
      "json",
      "--shutdown-timeout-secs",
      "2",
      ...args,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const log = [];
  const address = await new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`server did not listen:\n${log.join("\n")}`)), PATIENCE_MS);
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (log.length < 500) log.push(line);
        try {
          const record = JSON.parse(line);
          if (record.message === "listening" && record.listen) {
            clearTimeout(timer);
            resolve(record.listen);
          }
        } catch {
          // Not JSON: kept in the log.
        }
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${log.join("\n")}`));
    });
  });
  return serverHandle(child, address, log);
}

/** Runs `agentwire serve --dev` with `args`; resolves with the printed console URL and token. */
export async function startDevServer(args = []) {
  const child = spawn(
    agentwireBinary(),
    ["serve", "--dev", "--listen", "127.0.0.1:0", "--log-format", "json", "--shutdown-timeout-secs", "2", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const log = [];
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk) => {
    if (log.length < 500) log.push(chunk);
  });
  const banner = await new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`no dev banner:\n${text}\n${log.join("")}`)), PATIENCE_MS);
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      text += chunk;
      const console = /^\s*(http:\/\/\S+\/#token=(\S+))$/m.exec(text);
      const listening = /listening on ws:\/\/(\S+)\/ws/.exec(text);
      if (console && listening) {
        clearTimeout(timer);
        resolve({ consoleUrl: console[1], token: console[2], address: listening[1], text });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`dev server exited with ${code}:\n${text}\n${log.join("")}`));
    });
  });
  return { ...serverHandle(child, banner.address, log), ...banner };
}

function serverHandle(child, address, log) {
  const port = Number(address.split(":").pop());
  const exited = once(child, "exit");
  return {
    address,
    port,
    url: `ws://${address}/ws`,
    http: `http://${address}`,
    log,
    /** SIGTERM, and waits for the process to exit. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    /** SIGKILL: the server dies with its stream history (a crash). */
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/**
 * A TCP proxy to `targetPort` on loopback. `drop()` cuts every connection (no close frame:
 * the client sees 1006), `refuse(true)` closes new connections at once, `freeze()` silently
 * discards everything on the open connections (a dead network path), `retarget(port)` sends
 * new connections elsewhere. `heads` holds each connection's HTTP request and response heads.
 */
export async function startProxy(targetPort) {
  let target = targetPort;
  let refusing = false;
  const pairs = new Set();
  const heads = [];
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target, "127.0.0.1");
    const pair = { client, upstream, frozen: false };
    const record = { request: undefined, response: undefined };
    heads.push(record);
    pairs.add(pair);
    const capture = (key) => {
      let buffer = Buffer.alloc(0);
      return (data) => {
        if (record[key] !== undefined) return;
        buffer = Buffer.concat([buffer, data]);
        const end = buffer.indexOf("\r\n\r\n");
        if (end >= 0) record[key] = buffer.subarray(0, end).toString("latin1");
      };
    };
    const request = capture("request");
    const response = capture("response");
    client.on("data", (data) => {
      request(data);
      if (!pair.frozen) upstream.write(data);
    });
    upstream.on("data", (data) => {
      response(data);
      if (!pair.frozen) client.write(data);
    });
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = server.address().port;
  return {
    port,
    url: `ws://127.0.0.1:${port}/ws`,
    http: `http://127.0.0.1:${port}`,
    heads,
    get open() {
      return pairs.size;
    },
    drop() {
      for (const { client, upstream } of pairs) {
        client.resetAndDestroy?.() ?? client.destroy();
        upstream.destroy();
      }
    },
    refuse(on) {
      refusing = on;
    },
    freeze() {
      for (const pair of pairs) pair.frozen = true;
    },
    retarget(port) {
      target = port;
    },
    async close() {
      this.drop();
      server.close();
    },
  };
}

/** Resolves with the first value `subscribe` passes to its callback for which `test` holds. */
export function waitFor(subscribe, test = () => true, what = "an event") {
  return new Promise((resolve, reject) => {
    let unsubscribe = () => {};
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`timed out waiting for ${what}`));
    }, PATIENCE_MS);
    unsubscribe = subscribe((value) => {
      if (!test(value)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(value);
    });
  });
}

/** Bounds `promise` by PATIENCE_MS. */
export function within(promise, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), PATIENCE_MS);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Every stream seq of `frames` is one more than the one before. */
export function consecutive(seqs) {
  return seqs.every((seq, i) => i === 0 || seq === seqs[i - 1] + 1);
}
