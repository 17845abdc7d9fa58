// chimein label: the current turn, the model's proposal, and single keys to confirm or correct it.
"use strict";

const $ = (id) => document.getElementById(id);
let state = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;  // user text is always text, never markup
  return e;
}

function render(next) {
  state = next;
  const p = state.progress;
  $("progress").textContent = `${p.labelled} labelled, ${p.left} left (${p.skipped} skipped)`;
  const turn = state.turn;
  $("labeller").hidden = !turn;
  $("done").hidden = !!turn;
  closeReply();
  if (!turn) {
    const w = state.written;
    $("done-summary").textContent = `${w.conversations} conversations written: ${w.labelled} turns labelled, ` +
      `${w.kept_replies} replies kept from the chat, ${w.accepted_silences} silences accepted, ${w.cut_turns} turns cut.`;
    return;
  }
  $("where").textContent = `conversation ${turn.conversation_id}, message ${turn.turn + 1}`;
  const list = $("messages");
  list.replaceChildren();
  turn.context.forEach((m, i) => {
    const li = el("li", "msg" + (m.role === "assistant" ? " assistant" : "") + (i === turn.context.length - 1 ? " current" : ""));
    const meta = el("div", "meta");
    meta.append(el("span", "who", m.name || "assistant"));
    li.append(meta, el("div", "text", m.content));
    list.append(li);
  });
  list.scrollTop = list.scrollHeight;
  const box = $("proposal");
  box.className = "proposal" + (turn.speak ? " speak" : "");
  box.replaceChildren();
  const pSpeak = turn.p_speak === null ? "?" : turn.p_speak.toFixed(2);
  box.append(el("strong", "decision", turn.speak ? "speak" : "silent"), el("span", "p", ` p_speak ${pSpeak} `));
  if (turn.draft) box.append(el("div", "draft", turn.draft));
}

async function call(path, body) {
  const r = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body),
  });
  const data = await r.json();
  if (!r.ok) {
    $("error").textContent = data.error ? data.error.message : `HTTP ${r.status}`;
    return;
  }
  $("error").textContent = "";
  render(data);
}

function send(action, text) {
  const t = state.turn;
  return call("/api/label", {conversation: t.conversation, turn: t.turn, action, text: text || ""});
}

function openReply() {
  $("reply-form").hidden = false;
  $("reply").value = state.turn.draft || "";
  $("reply").focus();
}

function closeReply() {
  $("reply-form").hidden = true;
  $("reply").blur();
}

$("reply").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    const text = $("reply").value.trim();
    if (text) send("speak", text);
  } else if (e.key === "Escape") {
    e.preventDefault();
    closeReply();
  }
});

document.addEventListener("keydown", (e) => {
  if (!state || e.target === $("reply") || e.ctrlKey || e.metaKey || e.altKey) return;
  const turn = state.turn;
  const key = e.key.toLowerCase();
  if (!"ynesu".includes(key) || key.length !== 1) return;
  e.preventDefault();  // a key that opens the reply box must not land in it
  if (key === "u") return call("/api/undo", {});
  if (!turn) return;
  if (key === "y") {
    if (turn.speak && !turn.draft) return openReply();
    send("accept");
  } else if (key === "n") {
    if (turn.speak) send("silence");
    else openReply();
  } else if (key === "e") {
    openReply();
  } else if (key === "s") {
    send("skip");
  }
});

call("/api/turn");
