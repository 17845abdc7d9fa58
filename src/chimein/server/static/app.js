// chimein's room page: plain DOM, no build step. Everything people type is rendered with textContent.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FATAL = { 4400: "bad request", 4401: "unauthorized", 4429: "flooding" };
  const state = {
    room: null, token: null, name: null, replyTo: null, ws: null, joined: false, lastSeq: 0, retries: 0,
    seen: new Set(), pending: new Map(), assistant: null, maxChars: 2000,
  };

  function show(section) {
    for (const id of ["home", "enter", "room"]) $(id).hidden = id !== section;
  }

  function setStatus(text, isError = false) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }

  function newClientId() {
    const raw = window.crypto && crypto.randomUUID ? crypto.randomUUID()
      : Math.random().toString(36).slice(2) + Date.now().toString(36);
    return raw.replace(/[^A-Za-z0-9_-]/g, "").slice(0, 64);
  }

  // -- home: create a room ---------------------------------------------------------------------------

  async function createRoom() {
    $("home-error").textContent = "";
    try {
      const response = await fetch("/api/rooms", { method: "POST" });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
      location.assign(body.link);
    } catch (e) {
      $("home-error").textContent = "Could not create a room: " + e.message;
    }
  }

  // -- the room ----------------------------------------------------------------------------------------

  function enterRoom() {
    state.room = decodeURIComponent(location.pathname.replace(/^\/r\//, "").replace(/\/$/, ""));
    state.token = location.hash.slice(1);
    if (!state.token) {
      show("enter");
      $("name-form").hidden = true;
      $("enter-error").textContent = "This link is incomplete: the part after # is the room's key. Ask for the full link.";
      return;
    }
    $("link").value = location.href;
    const saved = localStorage.getItem("chimein.name");
    if (saved) {
      join(saved);
    } else {
      show("enter");
      $("name").focus();
    }
  }

  function join(name) {
    state.name = name;
    show("room");
    connect();
    $("msg").focus();
  }

  // A secret this browser keeps: the server lets only it use the names it picked in a room.
  function browserKey() {
    let key = localStorage.getItem("chimein.key");
    if (!key) {
      const bytes = new Uint8Array(24);
      crypto.getRandomValues(bytes);
      key = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      localStorage.setItem("chimein.key", key);
    }
    return key;
  }

  function connect() {
    setStatus("connecting…");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const ws = new WebSocket(scheme + location.host + "/ws");
    state.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({
      type: "join", room: state.room, token: state.token, name: state.name, since: state.lastSeq, key: browserKey(),
    }));
    ws.onmessage = (event) => handle(JSON.parse(event.data));
    ws.onclose = (event) => {
      state.joined = false;
      setTyping(false);
      if (FATAL[event.code]) return; // the error frame before the close said why
      const delay = Math.min(10000, 500 * 2 ** state.retries++);
      setStatus("disconnected: reconnecting…", true);
      setTimeout(connect, delay);
    };
  }

  function handle(frame) {
    switch (frame.type) {
      case "joined":
        state.joined = true;
        state.retries = 0;
        state.maxChars = frame.limits.max_message_chars;
        localStorage.setItem("chimein.name", frame.name);
        setStatus("connected as " + frame.name);
        $("truncated").hidden = !frame.truncated || state.lastSeq > 0;
        frame.history.forEach(addMessage);
        setAssistant(frame.assistant);
        setTyping(frame.typing);
        for (const [clientId, pending] of state.pending) sendSay(clientId, pending);
        break;
      case "message":
        addMessage(frame.message);
        break;
      case "typing":
        setTyping(frame.typing);
        break;
      case "draft":
        showDraft(frame.text);
        break;
      case "settings":
        setAssistant(frame.assistant);
        break;
      case "error":
        onError(frame);
        break;
    }
  }

  function onError(frame) {
    if (frame.code === "bad_name") {
      localStorage.removeItem("chimein.name");
      show("enter");
      $("enter-error").textContent = frame.message;
      return;
    }
    if (frame.code === "unauthorized") {
      show("enter");
      $("name-form").hidden = true;
      $("enter-error").textContent = "This room does not exist, or the link is wrong.";
      setStatus("");
      return;
    }
    if (frame.code === "rate_limited" && frame.client_id && state.pending.has(frame.client_id)) {
      const pending = state.pending.get(frame.client_id);
      setTimeout(() => sendSay(frame.client_id, pending), Math.max(200, frame.retry_after * 1000));
      setStatus("sending too fast: waiting a moment", true);
      return;
    }
    if (frame.client_id) state.pending.delete(frame.client_id);
    setStatus(frame.message, true);
  }

  function addMessage(m) {
    if (state.seen.has(m.seq)) return;
    state.seen.add(m.seq);
    if (m.client_id) state.pending.delete(m.client_id);
    const list = $("messages");
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 80;
    const item = renderMessage(m);
    let before = null;
    if (m.seq < state.lastSeq) { // arrived out of order (after a reconnect): put it in its place
      before = [...list.children].find((li) => Number(li.dataset.seq) > m.seq) || null;
    }
    list.insertBefore(item, before);
    state.lastSeq = Math.max(state.lastSeq, m.seq);
    if (nearBottom || m.client_id) list.scrollTop = list.scrollHeight;
  }

  function renderMessage(m) {
    const item = document.createElement("li");
    item.className = "msg " + (m.role === "assistant" ? "assistant" : "user");
    if (m.role === "user" && m.name === state.name) item.classList.add("mine");
    item.dataset.seq = String(m.seq);
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = m.name;
    const when = document.createElement("time");
    const date = new Date(m.time * 1000);
    when.dateTime = date.toISOString();
    when.title = date.toLocaleString();
    when.textContent = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    meta.append(who, when);
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = m.content;
    item.append(meta, text);
    if (m.role === "assistant") {
      if (m.reason) {
        const why = document.createElement("span");
        why.className = "why";
        why.textContent = m.reason;
        meta.append(why);
      }
      const reply = document.createElement("button");
      reply.type = "button";
      reply.className = "reply";
      reply.textContent = "Reply";
      reply.addEventListener("click", () => startReply(m));
      meta.append(reply);
    }
    return item;
  }

  function setTyping(typing) {
    const name = state.assistant ? state.assistant.name : "assistant";
    $("typing").textContent = name + " is typing…";
    $("typing").hidden = !typing;
  }

  // The reply so far, while the replier writes it: shown in the typing line until the message arrives.
  function showDraft(text) {
    const name = state.assistant ? state.assistant.name : "assistant";
    $("typing").textContent = name + ": " + text + " …";
    $("typing").hidden = false;
  }

  function startReply(m) {
    state.replyTo = m.id;
    $("replying-text").textContent = "Replying to " + m.name + ": " + m.content.slice(0, 60);
    $("replying").hidden = false;
    $("msg").focus();
  }

  function cancelReply() {
    state.replyTo = null;
    $("replying").hidden = true;
  }

  function setAssistant(info) {
    state.assistant = info;
    if (info.settings) $("settings").textContent = info.name + ": " + info.settings;
    $("eagerness-box").hidden = !info.supports_eagerness;
    if (info.supports_eagerness && info.eagerness !== null) {
      $("eagerness").value = String(info.eagerness);
      $("eagerness-value").textContent = Number(info.eagerness).toFixed(2);
    }
  }

  function sendSay(clientId, pending) {
    if (state.joined) {
      state.ws.send(JSON.stringify({ type: "say", text: pending.text, client_id: clientId, reply_to: pending.replyTo }));
    }
  }

  function submitMessage(event) {
    event.preventDefault();
    const text = $("msg").value.trim();
    if (!text) return;
    if (text.length > state.maxChars) {
      setStatus(`a message is at most ${state.maxChars} characters (this one has ${text.length})`, true);
      return;
    }
    const clientId = newClientId();
    const pending = { text, replyTo: state.replyTo };
    state.pending.set(clientId, pending);
    $("msg").value = "";
    cancelReply();
    sendSay(clientId, pending);
  }

  async function copyLink() {
    try {
      await navigator.clipboard.writeText($("link").value);
    } catch (e) {
      $("link").select();
      document.execCommand("copy");
    }
    setStatus("link copied: share it with the people you want in this room");
  }

  // -- wiring ------------------------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("create").addEventListener("click", createRoom);
    $("name-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = $("name").value.trim();
      if (name) join(name);
    });
    $("say-form").addEventListener("submit", submitMessage);
    $("msg").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) submitMessage(event);
    });
    $("copy").addEventListener("click", copyLink);
    $("cancel-reply").addEventListener("click", cancelReply);
    $("eagerness").addEventListener("input", () => {
      $("eagerness-value").textContent = Number($("eagerness").value).toFixed(2);
    });
    $("eagerness").addEventListener("change", () => {
      if (state.joined) state.ws.send(JSON.stringify({ type: "eagerness", value: Number($("eagerness").value) }));
    });
    window.addEventListener("hashchange", () => location.reload());
    if (location.pathname.startsWith("/r/")) enterRoom();
    else show("home");
  });
})();
