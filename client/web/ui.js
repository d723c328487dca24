// What both pages share: reading the page's query, the start/stop/mute buttons, status and error
// display, the transcript (live partial + turn history) and the Flux badges from TurnInfo events.
//
// Every page keeps `window.vaniState` up to date (a plain object: events, transcript, history,
// badges, playback counters, errors) and exposes `window.vaniTest` — hooks for the browser tests.

const FLUX_PARAMS = ["eot_threshold", "eager_eot_threshold", "eot_timeout_ms"];
const MAX_EVENTS = 2000;

export const $ = (id) => document.getElementById(id);

// ?session=ID&token=KEY&eot_threshold=...&keyterm=a&keyterm=b
export function pageOptions() {
  const q = new URLSearchParams(location.search);
  const query = {};
  for (const name of FLUX_PARAMS) if (q.get(name)) query[name] = q.get(name);
  if (q.getAll("keyterm").length) query.keyterm = q.getAll("keyterm");
  return { sessionId: q.get("session") || undefined, token: q.get("token") || undefined, query };
}

export function createState(client) {
  const state = {
    sessionId: client.sessionId,
    status: client.status,
    started: null,
    resumed: false,
    events: [],
    transcript: "",
    history: [],
    badges: { event: null, turn_index: null, eot_confidence: null, conversation: null },
    errors: [],
    error: "",
    stats: client.stats,
  };
  window.vaniState = state;
  window.vaniTest = { client, drop: () => client.dropConnection() };
  return state;
}

function setBadge(id, text, kind) {
  const el = $(id);
  if (!el) return;
  el.textContent = text === null || text === undefined ? "–" : String(text);
  if (kind !== undefined) el.dataset.kind = kind;
}

export function showError(state, message) {
  state.error = message;
  if (message) state.errors.push(message);
  const el = $("error");
  el.textContent = message;
  el.hidden = !message;
}

// Flux TurnInfo -> live partial, history, badges. Returns true when a user turn ended.
export function onTurnInfo(state, msg) {
  const b = state.badges;
  b.event = msg.event;
  b.turn_index = msg.turn_index;
  b.eot_confidence = msg.end_of_turn_confidence;
  setBadge("badge-event", msg.event, msg.event);
  setBadge("badge-turn", msg.turn_index);
  const conf = msg.end_of_turn_confidence;
  setBadge("badge-eot", typeof conf === "number" ? conf.toFixed(2) : conf);
  if (msg.event === "EndOfTurn") {
    addHistory(state, msg.transcript, msg.turn_index);
    state.transcript = "";
  } else {
    state.transcript = msg.transcript || "";
  }
  $("partial").textContent = state.transcript;
  return msg.event === "EndOfTurn";
}

export function addHistory(state, transcript, turnIndex) {
  state.history.push(transcript);
  const li = document.createElement("li");
  li.dataset.turn = turnIndex;
  li.textContent = transcript || "(no words)";
  $("history").append(li);
}

export function resetHistory(state, items) {
  state.history = [];
  $("history").replaceChildren();
  for (const h of items) addHistory(state, h.transcript, h.turn_index);
}

// Wire buttons, status, errors and the event log; `onMessage` handles the page's own events.
export function mountPage(client, state, onMessage) {
  const start = $("start");
  const stop = $("stop");
  const mute = $("mute");
  $("session-id").textContent = client.sessionId;
  start.onclick = () => {
    showError(state, "");
    client.start();
  };
  stop.onclick = () => client.stop();
  mute.onclick = () => {
    client.setMuted(!client.muted);
    mute.textContent = client.muted ? "Unmute" : "Mute";
    mute.setAttribute("aria-pressed", String(client.muted));
  };
  client.on("status", ({ status, attempt }) => {
    state.status = status;
    setBadge("status", status === "reconnecting" && attempt ? `reconnecting (${attempt})` : status, status);
    const live = status !== "idle" && status !== "closed";
    start.disabled = live;
    stop.disabled = !live;
    mute.disabled = !live;
  });
  client.on("error", ({ message }) => showError(state, message));
  client.on("started", (msg) => {
    state.started = msg;
    state.resumed = !!msg.resumed;
    setBadge("badge-resumed", msg.resumed ? "resumed" : "new", msg.resumed ? "resumed" : "new");
    if (state.error && state.status === "open") showError(state, "");
  });
  client.on("chunk", ({ peak }) => {
    const meter = $("level");
    if (meter) meter.value = peak;
  });
  client.on("message", (msg) => {
    state.events.push(msg);
    if (state.events.length > MAX_EVENTS) state.events.shift();
    if (msg.type === "TurnInfo") onTurnInfo(state, msg);
    onMessage(msg);
  });
  const q = new URLSearchParams(location.search);
  if (q.get("autostart") === "1") client.start();
}
