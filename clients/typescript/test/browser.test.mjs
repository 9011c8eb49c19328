// The client and the dev console in a real browser: Debian's chromium driven by
// playwright-core, against `agentwire serve --dev` (the real binary).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

import { connect } from "../dist/index.js";
import { consecutive, PATIENCE_MS, startDevServer, startProxy, waitFor, within } from "./support/server.mjs";

const CHROMIUM = process.env.AGENTWIRE_CHROMIUM ?? "/usr/bin/chromium";
const FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"];
const RESULTS = fileURLToPath(new URL("../test-results/", import.meta.url));

let browser;
let server;
const cleanups = [];

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no chromium at ${CHROMIUM}: run scripts/setup/node.sh (apt-get install -y chromium)`);
  }
  await mkdir(RESULTS, { recursive: true });
  // Steps of 250 ms: a run lasts about a second, time enough to cut the network mid-run.
  server = await startDevServer(["--demo-step-ms", "250"]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    timeout: PATIENCE_MS,
  });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await browser?.close();
  await server?.stop();
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  cleanups.push(() => context.close());
  const page = await context.newPage();
  page.setDefaultTimeout(PATIENCE_MS);
  const problems = [];
  page.on("pageerror", (error) => problems.push(String(error)));
  page.on("console", (message) => message.type() === "error" && problems.push(message.text()));
  return { page, problems };
}

async function screenshot(page, name) {
  const png = await page.screenshot({ fullPage: true });
  await writeFile(`${RESULTS}${name}.png`, png);
  // A PNG of the page, not an empty capture.
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  assert.ok(png.length > 10_000, `screenshot of ${png.length} bytes`);
}

/** The timeline rows of the run card matching `selector`: type, seq, replayed. */
function rows(page, selector) {
  return page.$$eval(`${selector} tbody tr`, (trs) =>
    trs.map((tr) => ({ type: tr.dataset.type, seq: Number(tr.dataset.seq), replayed: tr.dataset.replayed === "true" })),
  );
}

test("the client in chromium: offers jwt-auth + jwt.<token>, gets jwt-auth, runs an agent, sees the five events", async () => {
  const { page, problems } = await newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  const handshakes = [];
  cdp.on("Network.webSocketWillSendHandshakeRequest", ({ request }) => handshakes.push({ request: request.headers }));
  cdp.on("Network.webSocketHandshakeResponseReceived", ({ response }) => {
    handshakes.at(-1).response = { status: response.status, headers: response.headers };
  });
  // Any page of the server's origin: the client is imported from the console's modules.
  await page.goto(`${server.http}/`);
  const outcome = await page.evaluate(
    async ({ url, token }) => {
      const { connect } = await import("/console/client/index.js");
      const client = await connect(url, { token });
      const run = client.startAgent("hello from chromium");
      const events = [];
      for await (const event of run) events.push({ type: event.type, seq: event.seq });
      const { result } = await run.result;
      const info = client.info;
      client.close();
      return { events, result, user: info.user_id, protocol: info.protocol_version };
    },
    { url: server.url, token: server.token },
  );
  assert.deepEqual(outcome.events.map((e) => e.type), FIVE);
  assert.ok(consecutive(outcome.events.map((e) => e.seq)));
  assert.deepEqual(outcome.result, { response: "You said: hello from chromium" });
  assert.equal(outcome.user, "dev-user");
  assert.equal(outcome.protocol, 1);
  const [handshake] = handshakes;
  const header = (headers, name) =>
    Object.entries(headers).find(([key]) => key.toLowerCase() === name)?.[1];
  assert.equal(header(handshake.request, "sec-websocket-protocol"), `jwt-auth, jwt.${server.token}`);
  assert.equal(handshake.response.status, 101);
  assert.equal(header(handshake.response.headers, "sec-websocket-protocol"), "jwt-auth");
  assert.deepEqual(problems, []);
});

test("the dev console at the printed address connects with the dev token and renders a run's timeline", async () => {
  const { page, problems } = await newPage();
  await page.goto(server.consoleUrl);
  await page.locator("#state", { hasText: "open" }).waitFor();
  assert.equal(await page.inputValue("#token"), server.token);
  assert.equal(await page.textContent("#user-id"), "dev-user");
  await page.fill("#message", "hello from the console test");
  await page.click("#start");
  const card = '.run[data-status="completed"]';
  await page.waitForSelector(card);
  const timeline = await rows(page, card);
  assert.deepEqual(timeline.map((r) => r.type), FIVE);
  assert.ok(consecutive(timeline.map((r) => r.seq)));
  assert.match(await page.textContent(`${card} .outcome`), /You said: hello from the console test/);
  assert.match(await page.getAttribute(card, "data-run-id"), /^run_/);
  // Each row shows time, seq, type and payload.
  const cells = await page.$$eval(`${card} tbody tr:first-child td`, (tds) => tds.map((td) => td.textContent));
  assert.match(cells[0], /^\d{2}:\d{2}:\d{2}\.\d{3}$/);
  assert.equal(cells[2], "agent_started");
  assert.match(cells[3], /hello from the console test/);
  assert.ok((await page.locator('#log li[data-kind="connected"]').count()) >= 1);
  await screenshot(page, "console-run");
  // "Drop and resume" replaces the connection; the new one resumes the stream.
  const before = await page.textContent("#connection-id");
  await page.click("#drop");
  await page.locator('#log li[data-kind="resumed"]', { hasText: "nothing was missed" }).waitFor();
  await page.locator("#state", { hasText: "open" }).waitFor();
  assert.notEqual(await page.textContent("#connection-id"), before);
  assert.deepEqual(problems, []);
});

test("the console survives a drop mid-run: it reconnects, resumes, and completes the run with no duplicate seq", async () => {
  const proxy = await startProxy(server.port);
  cleanups.push(() => proxy.close());
  // Another connection of the same user, straight to the server, sees the run go on.
  const watcher = await within(connect(server.url, { token: server.token }), "watcher");
  cleanups.push(() => watcher.close());
  const { page, problems } = await newPage();
  await page.goto(`${proxy.http}/#token=${server.token}`);
  await page.locator("#state", { hasText: "open" }).waitFor();
  await page.fill("#message", "survive a drop");
  await page.click("#start");
  const thinking = page.locator('.run tbody tr[data-type="agent_thinking"]');
  await thinking.waitFor();
  const runId = await page.locator(".run").first().getAttribute("data-run-id");
  const ended = waitFor(
    (fn) => watcher.on("agent_completed", fn),
    (frame) => frame.run_id === runId,
    "the run to end on the server",
  );
  // Cut the page's connection mid-run and keep the path closed until the run has ended.
  proxy.refuse(true);
  proxy.drop();
  await page.locator('#log li[data-kind="disconnected"]').first().waitFor();
  await ended;
  proxy.refuse(false);
  const card = `.run[data-run-id="${runId}"][data-status="completed"]`;
  await page.waitForSelector(card);
  await page.locator('#log li[data-kind="resumed"]').first().waitFor();
  const timeline = await rows(page, card);
  assert.deepEqual(timeline.map((r) => r.type), FIVE);
  const seqs = timeline.map((r) => r.seq);
  assert.equal(new Set(seqs).size, seqs.length, `duplicate seq in ${seqs}`);
  assert.ok(consecutive(seqs), seqs.join(","));
  assert.ok(timeline.some((r) => r.replayed), "some events came by replay");
  assert.ok(!timeline[0].replayed && !timeline[1].replayed, "the first two arrived live");
  assert.match(await page.textContent('#log li[data-kind="resumed"]'), /resumed: \d+ missed events replayed/);
  assert.equal(await page.locator('#log li[data-kind="reset"]').count(), 0);
  const stats = await page.evaluate(() => globalThis.agentwireConsole.client.stats);
  assert.equal(stats.duplicatesDropped, 0);
  assert.equal(stats.resumes, 1);
  await screenshot(page, "console-resume");
  // The page's own error log may show the refused reconnect attempts (net::ERR...); nothing else.
  assert.deepEqual(
    problems.filter((p) => !/WebSocket connection to .* failed/.test(p)),
    [],
  );
});
