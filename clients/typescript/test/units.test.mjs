// The client's pure parts: backoff, token expiry, error codes and close codes, against the
// documentation where the documentation lists them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import {
  AUTH_ERROR_CODES,
  AgentwireError,
  CLOSE_CODES,
  PROTOCOL_ERROR_CODES,
  backoffDelay,
  closeCodeInfo,
  subprotocols,
  tokenExpiry,
} from "../dist/index.js";
import { mintToken } from "./support/server.mjs";

const docs = (name) => readFileSync(new URL(`../../../docs/${name}`, import.meta.url), "utf8");

/** The first-column codes of the table under `heading` in `markdown`. */
function tableCodes(markdown, heading, keep = () => true) {
  const section = markdown.split(heading)[1].split("\n## ")[0];
  return section
    .split("\n")
    .filter((line) => /^\| `/.test(line))
    .map((line) => line.split("|").map((cell) => cell.trim()))
    .filter(keep)
    .map((cells) => cells[1].replace(/`/g, ""));
}

describe("backoff", () => {
  test("the cap doubles from initialDelayMs to maxDelayMs, the delay is in its upper half", () => {
    const options = { initialDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay(1, options, () => 0), 50);
    assert.equal(backoffDelay(1, options, () => 0.999999), 100);
    assert.equal(backoffDelay(2, options, () => 0), 100);
    assert.equal(backoffDelay(4, options, () => 0.999999), 800);
    assert.equal(backoffDelay(5, options, () => 0.999999), 1000);
    assert.equal(backoffDelay(500, options, () => 0), 500);
  });

  test("jitter spreads clients: many draws differ", () => {
    const draws = new Set(Array.from({ length: 50 }, () => backoffDelay(6)));
    assert.ok(draws.size > 10);
    for (const delay of draws) assert.ok(delay >= 8000 && delay <= 16000, String(delay));
  });
});

describe("tokens", () => {
  test("tokenExpiry reads exp in ms", () => {
    const token = mintToken("ada", { ttlSecs: 100 });
    const exp = JSON.parse(Buffer.from(token.split(".")[1], "base64url")).exp;
    assert.equal(tokenExpiry(token), exp * 1000);
  });

  test("tokenExpiry of something that is not a JWT with exp is undefined", () => {
    assert.equal(tokenExpiry("nope"), undefined);
    assert.equal(tokenExpiry("a.b.c"), undefined);
    assert.equal(tokenExpiry(`x.${Buffer.from('{"sub":"a"}').toString("base64url")}.y`), undefined);
    assert.equal(tokenExpiry(`x.${Buffer.from('{"exp":"soon"}').toString("base64url")}.y`), undefined);
  });

  test("the offer is the marker and jwt.<token>", () => {
    assert.deepEqual(subprotocols("h.p.s"), ["jwt-auth", "jwt.h.p.s"]);
  });
});

describe("error codes", () => {
  test("PROTOCOL_ERROR_CODES are the codes of docs/protocol.md's error table", () => {
    const documented = tableCodes(docs("protocol.md"), "## Error codes").filter((c) => c !== "authentication codes");
    assert.deepEqual([...PROTOCOL_ERROR_CODES].sort(), documented.sort());
  });

  test("AUTH_ERROR_CODES are the auth-phase codes of docs/auth.md", () => {
    const documented = tableCodes(docs("auth.md"), "## Error codes", (cells) => cells[2] === "auth");
    assert.deepEqual([...AUTH_ERROR_CODES].sort(), documented.sort());
  });

  test("CLOSE_CODES cover docs/protocol.md's close codes (and 1006, which no server sends)", () => {
    const section = docs("protocol.md").split("## Close codes")[1].split("\n## ")[0];
    const documented = [...section.matchAll(/^\| (\d{4}) \| ([a-z ]+) \|/gm)].map((m) => Number(m[1]));
    assert.deepEqual(
      Object.keys(CLOSE_CODES).map(Number).filter((c) => c !== 1006).sort(),
      documented.sort(),
    );
  });

  test("a close reason that is a code becomes the error's code; else the close code's name", () => {
    const expired = AgentwireError.fromClose(4401, "token_expired");
    assert.equal(expired.code, "token_expired");
    assert.equal(expired.closeCode, 4401);
    assert.equal(expired.isAuth, true);
    assert.equal(AgentwireError.fromClose(4008, "write timed out").code, "slow_consumer");
    assert.equal(AgentwireError.fromClose(4408, "heartbeat_timeout").code, "heartbeat_timeout");
    assert.equal(AgentwireError.fromClose(1006, "").code, "abnormal_closure");
    assert.equal(closeCodeInfo(4401).retry, false);
    assert.equal(closeCodeInfo(4429).retry, true);
    assert.equal(closeCodeInfo(4123).name, "application");
  });

  test("fromFrame keeps every field of an error frame", () => {
    const error = AgentwireError.fromFrame({
      type: "error",
      event_id: "evt_1",
      timestamp: "2025-01-02T03:04:02.000Z",
      reply_to: "msg_9",
      payload: { code: "rate_limited", message: "too many", retry_after_ms: 250 },
    });
    assert.equal(error.code, "rate_limited");
    assert.equal(error.retryAfterMs, 250);
    assert.equal(error.replyTo, "msg_9");
    assert.equal(error.source, "server");
    assert.ok(error instanceof Error);
  });
});
