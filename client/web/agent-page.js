// The agent page: WS /v1/sessions/{id}. Adds to the shared transcript view (ui.js) the assistant's
// text, the conversation state badge, the per-turn LatencyReport and the playback counters.
import { VaniAgent } from "./vani-client.js";
import { $, createState, mountPage, pageOptions } from "./ui.js";

const LATENCY_FIELDS = [
  "stt_latency",
  "ttt_token_latency",
  "ttt_text_latency",
  "ttt_tool_latency",
  "tts_latency",
  "total_latency",
  "interrupt_stop_latency",
];

const client = new VaniAgent(pageOptions());
const state = createState(client);
Object.assign(state, { assistant: {}, assistantText: "", messages: [], latency: [], clears: [] });

function setConversation(to) {
  state.badges.conversation = to;
  const el = $("badge-conversation");
  el.textContent = to;
  el.dataset.kind = to;
}

function logLine(role, text, extra = "") {
  const li = document.createElement("li");
  li.className = role;
  li.textContent = text + extra;
  $("conversation").append(li);
}

function addLatencyRow(r) {
  state.latency.push(r);
  const tr = document.createElement("tr");
  tr.dataset.turn = r.turn_id;
  const cells = [r.turn_id, ...LATENCY_FIELDS.map((f) => (typeof r[f] === "number" ? `${Math.round(r[f] * 1000)} ms` : "–"))];
  cells.push(r.speculative ? "eager" : "", r.outcome || "");
  for (const c of cells) {
    const td = document.createElement("td");
    td.textContent = c;
    tr.append(td);
  }
  $("latency").append(tr);
}

function renderPlayback() {
  const s = client.stats;
  $("playback-stats").textContent =
    `played ${s.playedChunks} · dropped ${s.droppedChunks} · flushed ${s.flushedChunks} · clears ${s.clears}` +
    ` · pauses ${s.pauses} · resumes ${s.resumes}`;
}

client.on("playback", (m) => {
  if (m.type === "cleared") state.clears.push({ turnId: m.turnId, flushedChunks: m.flushedChunks, playedMs: m.playedMs });
  if (m.type !== "progress") renderPlayback();
});

mountPage(client, state, (msg) => {
  switch (msg.type) {
    case "conversation":
      setConversation(msg.to);
      break;
    case "TurnInfo":
      if (msg.event === "EndOfTurn") logLine("user", msg.transcript || "(no words)");
      break;
    case "assistant.text": {
      const t = (state.assistant[msg.turn_id] || "") + msg.text;
      state.assistant[msg.turn_id] = t;
      state.assistantText = t;
      $("assistant").textContent = t;
      break;
    }
    case "assistant.message":
      state.messages.push(msg);
      logLine("assistant", msg.text || "(nothing heard)", msg.interrupted ? "  [interrupted]" : "");
      break;
    case "backchannel":
      logLine("backchannel", `(${msg.transcript || "noise"}: ignored, the assistant goes on)`);
      break;
    case "LatencyReport":
      addLatencyRow(msg);
      break;
    case "audio.clear":
      $("assistant").dataset.cleared = "true";
      break;
    case "audio.start":
      $("assistant").dataset.cleared = "false";
      break;
  }
});
