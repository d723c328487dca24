// The transcription page: WS /v2/flux/{id} (Flux's schema). Everything shared lives in ui.js.
import { VaniTranscription } from "./vani-client.js";
import { createState, mountPage, pageOptions, resetHistory } from "./ui.js";

const client = new VaniTranscription(pageOptions());
const state = createState(client);

mountPage(client, state, (msg) => {
  // A resumed Flux session hands back its final transcripts so far: the history survives a drop.
  if (msg.type === "Connected" && msg.resumed && Array.isArray(msg.history)) resetHistory(state, msg.history);
});
