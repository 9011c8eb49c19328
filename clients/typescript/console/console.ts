// The dev console page (served at `/` by `agentwire serve --dev`): agentwire-client in a
// browser, with a timeline of each run's events and of the connection's life.
//
// The address `serve --dev` prints carries the dev token in the fragment (`#token=...`),
// which browsers never send to the server.

import {
  AgentwireClient,
  AgentwireError,
  type RunHandle,
  type StreamFrame,
} from "agentwire-client";

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`the page has no #${id}`);
  return found as T;
}

const ui = {
  connectForm: element<HTMLFormElement>("connect-form"),
  url: element<HTMLInputElement>("url"),
  token: element<HTMLInputElement>("token"),
  connect: element<HTMLButtonElement>("connect"),
  drop: element<HTMLButtonElement>("drop"),
  disconnect: element<HTMLButtonElement>("disconnect"),
  state: element<HTMLElement>("state"),
  connectionId: element<HTMLElement>("connection-id"),
  userId: element<HTMLElement>("user-id"),
  stream: element<HTMLElement>("stream"),
  heartbeat: element<HTMLElement>("heartbeat"),
  stats: element<HTMLElement>("stats"),
  log: element<HTMLOListElement>("log"),
  runForm: element<HTMLFormElement>("run-form"),
  message: element<HTMLInputElement>("message"),
  agent: element<HTMLInputElement>("agent"),
  thread: element<HTMLInputElement>("thread"),
  start: element<HTMLButtonElement>("start"),
  chat: element<HTMLButtonElement>("chat"),
  runs: element<HTMLElement>("runs"),
  runsEmpty: element<HTMLElement>("runs-empty"),
};

/** One run's card: its header and its timeline. */
interface RunView {
  section: HTMLElement;
  status: HTMLElement;
  runId: HTMLElement;
  rows: HTMLTableSectionElement;
  outcome: HTMLElement;
  cancel: HTMLButtonElement;
}

let client: AgentwireClient | undefined;
/** Views by the request's message_id (runs started here) and by run_id (all runs). */
const byMessage = new Map<string, RunView>();
const byRun = new Map<string, RunView>();
/** The seq range the last resume replayed: those events are marked in the timeline. */
let replayed: { from: number; to: number } | undefined;

function clock(date: Date): string {
  return date.toISOString().slice(11, 23);
}

function log(kind: string, text: string): void {
  const item = document.createElement("li");
  item.dataset["kind"] = kind;
  const time = document.createElement("time");
  time.textContent = clock(new Date());
  item.append(time, text);
  ui.log.prepend(item);
}

function refreshStatus(): void {
  const state = client?.state ?? "disconnected";
  ui.state.textContent = state;
  ui.state.dataset["state"] = state;
  const info = client?.info;
  ui.connectionId.textContent = info?.connection_id ?? "-";
  ui.userId.textContent = info?.user_id ?? "-";
  ui.stream.textContent = client?.epoch ? `epoch ${client.epoch}, last seq ${client.lastSeq}` : "-";
  ui.heartbeat.textContent = info ? `every ${info.heartbeat_interval_ms} ms` : "-";
  const s = client?.stats;
  ui.stats.textContent = s
    ? `${s.connections} connections, ${s.resumes} resumes (${s.replayed} replayed), ${s.resets} resets, ${s.duplicatesDropped} duplicates dropped`
    : "-";
  const open = state === "open" || state === "reconnecting";
  ui.drop.disabled = state !== "open";
  ui.disconnect.disabled = !open && state !== "connecting";
  ui.start.disabled = !open;
  ui.chat.disabled = !open;
}

function newRunView(title: string): RunView {
  ui.runsEmpty.hidden = true;
  const section = document.createElement("section");
  section.className = "run";
  section.dataset["status"] = "pending";
  const header = document.createElement("header");
  const runId = document.createElement("strong");
  runId.textContent = "run pending";
  const status = document.createElement("span");
  status.className = "status";
  status.textContent = "pending";
  const request = document.createElement("span");
  request.className = "request";
  request.textContent = title;
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.textContent = "Cancel";
  cancel.className = "cancel";
  cancel.hidden = true;
  header.append(runId, status, request, cancel);
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const name of ["time", "seq", "type", "payload"]) {
    const th = document.createElement("th");
    th.textContent = name;
    head.append(th);
  }
  const rows = table.createTBody();
  const outcome = document.createElement("div");
  outcome.className = "outcome";
  section.append(header, table, outcome);
  ui.runs.prepend(section);
  return { section, status, runId, rows, outcome, cancel };
}

function setStatus(view: RunView, status: string): void {
  view.section.dataset["status"] = status;
  view.status.textContent = status;
}

function addEvent(view: RunView, frame: StreamFrame): void {
  if (frame.run_id !== undefined && view.section.dataset["runId"] === undefined) {
    view.section.dataset["runId"] = frame.run_id;
    view.runId.textContent = frame.run_id;
    byRun.set(frame.run_id, view);
  }
  const row = view.rows.insertRow();
  row.dataset["seq"] = String(frame.seq);
  row.dataset["type"] = frame.type;
  const isReplay = replayed !== undefined && frame.seq >= replayed.from && frame.seq <= replayed.to;
  row.dataset["replayed"] = String(isReplay);
  const cells: [string, string][] = [
    ["time", clock(new Date(frame.timestamp))],
    ["seq", String(frame.seq)],
    ["type", frame.type],
    ["payload", JSON.stringify(frame.payload, null, 1)],
  ];
  for (const [name, text] of cells) {
    const cell = row.insertCell();
    cell.className = name;
    cell.textContent = text;
  }
  if (view.section.dataset["status"] === "pending") setStatus(view, "running");
}

/** Every stream event goes to its run's timeline (runs started elsewhere get a card too). */
function onStreamFrame(frame: StreamFrame): void {
  let view =
    (frame.reply_to !== undefined ? byMessage.get(frame.reply_to) : undefined) ??
    (frame.run_id !== undefined ? byRun.get(frame.run_id) : undefined);
  if (!view) {
    view = newRunView(frame.run_id !== undefined ? "(started elsewhere)" : "(stream event without a run)");
  }
  addEvent(view, frame);
  if (frame.type === "agent_completed" || frame.type === "agent_error") {
    setStatus(view, frame.type === "agent_completed" ? "completed" : "failed");
    view.cancel.hidden = true;
  }
}

function follow(run: RunHandle, view: RunView): void {
  view.section.dataset["messageId"] = run.messageId;
  byMessage.set(run.messageId, view);
  view.cancel.hidden = false;
  view.cancel.onclick = () => {
    view.cancel.disabled = true;
    run.cancel();
  };
  run.result.then(
    ({ result, durationMs }) => {
      setStatus(view, "completed");
      view.outcome.textContent = `result (${durationMs} ms): ${JSON.stringify(result)}`;
    },
    (error: unknown) => {
      setStatus(view, "failed");
      view.outcome.textContent =
        error instanceof AgentwireError ? `${error.source} error ${error.code}: ${error.message}` : String(error);
    },
  ).finally(() => {
    view.cancel.hidden = true;
    refreshStatus();
  });
}

function startRun(kind: "agent" | "chat"): void {
  if (!client) return;
  const text = ui.message.value.trim() || "hello";
  const options: { agentName?: string; threadId?: string } = {};
  if (ui.agent.value.trim()) options.agentName = ui.agent.value.trim();
  if (ui.thread.value.trim()) options.threadId = ui.thread.value.trim();
  const view = newRunView(`${kind === "agent" ? "start_agent" : "user_message"}: ${text}`);
  const run = kind === "agent" ? client.startAgent(text, options) : client.sendMessage(text, options);
  follow(run, view);
}

function open(): void {
  client?.close();
  const token = ui.token.value.trim();
  const next = new AgentwireClient(ui.url.value.trim(), { token });
  client = next;
  (globalThis as { agentwireConsole?: unknown }).agentwireConsole = { client: next };
  log("connecting", `connecting to ${ui.url.value.trim()}`);
  next.on("*", (frame) => {
    if (typeof (frame as { seq?: unknown }).seq === "number") onStreamFrame(frame as StreamFrame);
    refreshStatus();
  });
  next.onLifecycle("connected", ({ info, reconnected }) => {
    if (!reconnected) replayed = undefined;
    log(
      "connected",
      `${reconnected ? "reconnected" : "connected"}: ${info.connection_id} as ${info.user_id}, epoch ${info.stream.epoch}, seq ${info.stream.seq}`,
    );
    refreshStatus();
  });
  next.onLifecycle("disconnected", ({ error, willReconnect }) => {
    const close = error.closeCode !== undefined ? ` (close ${error.closeCode})` : "";
    log("disconnected", `disconnected: ${error.code}${close}${willReconnect ? "" : ", not reconnecting"}`);
    refreshStatus();
  });
  next.onLifecycle("reconnecting", ({ attempt, delayMs }) => {
    log("reconnecting", `reconnecting in ${delayMs} ms (attempt ${attempt})`);
    refreshStatus();
  });
  next.onLifecycle("resumed", ({ replayed: count, fromSeq, toSeq }) => {
    replayed = count > 0 ? { from: fromSeq, to: toSeq } : undefined;
    log(
      "resumed",
      count > 0 ? `resumed: ${count} missed events replayed (seq ${fromSeq}..${toSeq})` : "resumed: nothing was missed",
    );
    refreshStatus();
  });
  next.onLifecycle("reset", ({ reason, epoch }) => {
    replayed = undefined;
    log("reset", `reset (${reason}): events may have been missed; now epoch ${epoch}`);
    refreshStatus();
  });
  next.onLifecycle("token_refreshed", ({ expiresAt }) => log("token", `token refreshed, expires ${expiresAt}`));
  next.onLifecycle("error", (error) => log("error", `${error.code}: ${error.message}`));
  next.onLifecycle("closed", ({ error }) => {
    log("closed", error ? `closed: ${error.code}: ${error.message}` : "closed");
    refreshStatus();
  });
  refreshStatus();
}

ui.connectForm.addEventListener("submit", (event) => {
  event.preventDefault();
  open();
});
ui.drop.addEventListener("click", () => client?.reconnect());
ui.disconnect.addEventListener("click", () => {
  client?.close();
  refreshStatus();
});
ui.runForm.addEventListener("submit", (event) => {
  event.preventDefault();
  startRun("agent");
});
ui.chat.addEventListener("click", () => startRun("chat"));

// The URL defaults to this server's endpoint; the fragment may carry `token` (and `url`).
const fragment = new URLSearchParams(location.hash.slice(1));
ui.url.value = fragment.get("url") ?? `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
ui.token.value = fragment.get("token") ?? "";
refreshStatus();
if (ui.token.value) open();
