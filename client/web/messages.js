// What the user reads: close codes and server errors in plain words (docs/protocol.md has the tables).

// Close codes (docs/protocol.md) in plain words, and whether reconnecting can help.
export const CLOSE_CODES = {
  1000: { retry: false, text: "The session ended." },
  1001: { retry: true, text: "The server is restarting or shutting down." },
  1006: { retry: true, text: "The connection dropped (network problem, or the server went away)." },
  1008: { retry: false, text: "The server ended the session: audio arrived much faster than real time." },
  1009: { retry: false, text: "The server ended the session: an audio frame was too large." },
  1011: { retry: true, text: "The session's server stopped unexpectedly; the conversation may start over." },
  1012: { retry: true, text: "The server is restarting." },
  1013: { retry: true, text: "The server is at capacity (too many sessions). Trying again shortly." },
  4000: { retry: false, text: "This session was taken over by another connection (another tab or device)." },
  4401: { retry: false, text: "The session is waiting for its owner and this resume token is missing or wrong." },
  4409: { retry: false, text: "This session is already open somewhere else (another tab?). Use another session id." },
};

export const REFUSED_TEXT =
  "The server refused the connection before it opened. Check the session id (1 to 64 letters, digits, " +
  "'_' or '-'), the API key, and the query parameters — or the server may not be reachable.";

// Server `error` / Flux `Error` codes in plain words (the server's own message is appended).
const ERROR_TEXT = {
  session_failed: "The server ended the session",
  session_lost: "The session's server stopped unexpectedly",
  llm_failed: "The assistant could not answer this turn (language model failed)",
  tts_failed: "The assistant's voice failed for this turn (speech synthesis failed)",
  stt_failed: "Speech recognition failed",
  odd_length: "An audio chunk was malformed and was dropped",
};

export function describeClose(code, reason = "", opened = true) {
  if (!opened && code === 1006) return REFUSED_TEXT;
  const known = CLOSE_CODES[code];
  const text = known ? known.text : `The connection closed (code ${code}).`;
  return reason && code !== 1000 ? `${text} (${reason})` : text;
}

export function describeError(msg) {
  const code = msg.code || "error";
  const detail = msg.message || msg.description || "";
  const lead = ERROR_TEXT[String(code).toLowerCase()] || `The server reported a problem (${code})`;
  return detail ? `${lead}: ${detail}` : `${lead}.`;
}

export function micProblem(err) {
  const name = err && err.name;
  if (name === "NotAllowedError" || name === "SecurityError") {
    return "Microphone access was denied. Allow the microphone for this site and try again (pages need https or localhost).";
  }
  if (name === "NotFoundError" || name === "OverconstrainedError") return "No microphone was found.";
  if (name === "NotReadableError") return "The microphone is in use by another application.";
  return `Could not start audio: ${err && err.message ? err.message : err}`;
}
