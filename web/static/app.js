// Parley's web client: hand-written ES modules on top of the JavaScript SDK
// (./sdk, compiled from sdk/js). No build step: `parley serve` embeds and
// serves these files as they are.
import { Client, Rest, ParleyError, SystemUser, describeGroupEvent, groupEventOf } from "./sdk/index.js";
import { SharedClient } from "./tabs.js";

const $ = (id) => document.getElementById(id);
const WS_URL = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/ws";
const SESSION_KEY = "parley.session";
const DEVICE_KEY = "parley.device";
const OPEN_KEY = "parley.open";
const PAGE = 50;
const SEND_TIMEOUT_MS = 15000;
const EMOJI = "😀 😂 😊 😍 😘 😎 🤔 😅 😢 😭 😡 👍 👎 👏 🙏 💪 🎉 ❤️ 🔥 ✨ 👀 ✅ ❌ ☕ 🍕 🍺 🌞 🌧️ 🚀 💡 📎 👋".split(" ");

let client; // the SDK client of the signed-in session
let me = ""; // the signed-in user id
let current; // {conv, peer, group} of the open chat: peer for a one-to-one chat, group (its name) for a group
const chats = new Map(); // conv id -> {msgs: Map(seq -> Message), pending: Map(cid -> Pending), minSeq, more, loading, loaded}
const presence = new Map(); // user -> Presence
const names = new Map(); // user -> display name
let takeOverOnFocus = false;

// ---------- sessions ----------

function deviceId() {
  let d = localStorage.getItem(DEVICE_KEY);
  if (!d) {
    const b = new Uint8Array(6);
    crypto.getRandomValues(b);
    d = "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    localStorage.setItem(DEVICE_KEY, d);
  }
  return d;
}

function loadSession() {
  try {
    return JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

function saveSession(s) {
  localStorage.setItem(SESSION_KEY, JSON.stringify(s));
}

function readable(err, context) {
  const code = err instanceof ParleyError ? err.code : "";
  switch (code) {
    case "content_too_large":
      return "Too large to send: the server refused it as over its message size limit (32 KB unless configured otherwise).";
    case "frame_too_large":
      return "Too large to send: the server refused the whole request as too big.";
    case "not_found":
      return context === "user" ? "There is no user with that id." : "Not delivered: the recipient or conversation does not exist.";
    case "unavailable":
      return "The server is busy or restarting. Try again in a moment.";
    case "timeout":
      return "The server has not confirmed this message yet.";
    case "disconnected":
      return "Not connected to the server.";
    case "network":
      return "Cannot reach the server. Check that it is running.";
    case "unauthenticated":
      return context === "login" ? "Wrong user id or password." : "This token is not valid. Sign in again.";
    case "token_expired":
      return "Your session has expired. Sign in again.";
    case "token_revoked":
    case "forced_offline":
      return "You were signed out by the server. Sign in again.";
    case "already_exists":
      return "That user id is taken. Pick another, or sign in.";
    case "disabled":
      return "Sign-up is turned off on this server.\nAsk whoever runs it to create an account for you; if it is your server, start it with --allow-registration (or PARLEY_ALLOW_REGISTRATION=true).";
    case "invalid_argument":
      return "The server refused this: " + err.message + ".";
    case "client_id_conflict":
      return "The server already has a different message under this id.";
    case "forbidden":
      return "Not sent: you are no longer a member of this group.";
    case "muted":
      return "Not sent: you are muted in this group, or the whole group is.";
    case "blocked":
      return "Not sent: this user has blocked you.";
    case "not_friends":
      return "Not sent: this server lets you write only to your friends.";
  }
  return (err && err.message) || String(err);
}

function banner(text, action) {
  const b = $("banner");
  b.textContent = text;
  if (action) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = action.label;
    btn.onclick = action.run;
    b.append(btn);
  }
  b.hidden = !text;
}

// ---------- sign in, sign up, token ----------

const forms = { signin: $("form-signin"), signup: $("form-signup"), token: $("form-token") };

function showTab(name) {
  for (const [k, f] of Object.entries(forms)) {
    f.hidden = k !== name;
    $("tab-" + k).setAttribute("aria-selected", String(k === name));
  }
  const first = forms[name].querySelector("input, textarea");
  if (first) first.focus();
}

for (const name of Object.keys(forms)) $("tab-" + name).onclick = () => showTab(name);

function formError(form, text) {
  form.querySelector(".form-error").textContent = text;
}

async function withBusy(form, fn) {
  const btn = form.querySelector("button[type=submit]");
  btn.disabled = true;
  formError(form, "");
  try {
    await fn();
  } finally {
    btn.disabled = false;
  }
}

forms.signin.onsubmit = (e) => {
  e.preventDefault();
  const f = forms.signin;
  withBusy(f, async () => {
    try {
      const id = f.elements.namedItem("id").value.trim();
      const t = await new Rest(location.origin).login(id, f.password.value, "web", deviceId());
      f.reset();
      signedIn({ user: id, token: t.token });
    } catch (err) {
      formError(f, readable(err, "login"));
    }
  });
};

forms.signup.onsubmit = (e) => {
  e.preventDefault();
  const f = forms.signup;
  withBusy(f, async () => {
    const id = f.elements.namedItem("id").value.trim();
    const rest = new Rest(location.origin);
    try {
      await rest.register(id, f.password.value, f.nickname.value.trim() || undefined);
    } catch (err) {
      formError(f, readable(err, "register"));
      return;
    }
    try {
      const t = await rest.login(id, f.password.value, "web", deviceId());
      f.reset();
      signedIn({ user: id, token: t.token });
    } catch (err) {
      formError(f, "Signed up, but signing in failed: " + readable(err, "login"));
    }
  });
};

forms.token.onsubmit = (e) => {
  e.preventDefault();
  const f = forms.token;
  const token = f.token.value.trim();
  f.reset();
  signedIn({ user: "", token });
};

$("signout").onclick = () => signOut("");

function signedIn(session) {
  saveSession(session);
  startSession(session);
}

function signOut(message) {
  localStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(OPEN_KEY);
  stopClient();
  current = undefined;
  chats.clear();
  $("app").hidden = true;
  $("auth").hidden = false;
  banner(message);
  showTab("signin");
}

function stopClient() {
  if (client) {
    const c = client;
    client = undefined;
    c.close();
  }
}

// ---------- the session ----------

function startSession(session) {
  stopClient();
  takeOverOnFocus = false;
  me = session.user || "";
  $("auth").hidden = true;
  $("app").hidden = false;
  banner("");
  $("me-name").textContent = me;
  const c = new SharedClient({ url: WS_URL, token: session.token, startAtLatest: true });
  client = c;
  c.on("state", (s) => client === c && onState(s));
  c.on("message", (m) => client === c && onMessage(m));
  c.on("conversation", (cv) => client === c && onConversation(cv));
  c.on("receipt", (r) => client === c && onReceipt(r));
  c.on("presence", (p) => client === c && onPresence(p));
  c.start().then(
    async () => {
      if (client !== c) return;
      me = c.user;
      $("me-name").textContent = me;
      if (session.user !== me) saveSession({ ...session, user: me });
      renderConvs();
      const peers = c.conversations().map((cv) => cv.peer).filter(Boolean);
      if (peers.length) c.subscribe(peers).then((ps) => ps.forEach(onPresence), () => {});
      const open = sessionStorage.getItem(OPEN_KEY);
      if (open && !current) openChat(open.includes(":") ? open : Client.directConversationId(me, open));
      if (current) loadOlder(current.conv, true);
    },
    () => {}, // the state event reports why
  );
  renderConvs();
}

function onState(s) {
  const el = $("conn-state");
  el.className = "conn-state";
  switch (s.state) {
    case "connecting":
      el.textContent = "connecting…";
      break;
    case "connected":
      el.textContent = "online";
      el.classList.add("online");
      banner("");
      break;
    case "disconnected":
      el.textContent = "offline";
      break;
    case "reconnecting":
      el.textContent = "reconnecting…";
      break;
    case "stopped":
      onStopped(s.error);
      break;
  }
}

function onStopped(err) {
  const code = err instanceof ParleyError ? err.code : "";
  if (code === "closed") return;
  if (code === "replaced" || code === "policy") {
    $("conn-state").textContent = "paused";
    takeOverOnFocus = true;
    const text = code === "replaced" ? "Parley is open in another tab or window of this browser." : "You signed in on another device, which took this one's place.";
    banner(text, { label: "Use here", run: takeOver });
    return;
  }
  signOut(readable(err));
}

function takeOver() {
  const s = loadSession();
  if (s) startSession(s);
  else signOut("");
}

window.addEventListener("focus", () => {
  if (takeOverOnFocus) takeOver();
  else markCurrentRead();
});
document.addEventListener("visibilitychange", markCurrentRead);

// ---------- conversations ----------

function chatState(conv) {
  let ch = chats.get(conv);
  if (!ch) {
    ch = { msgs: new Map(), pending: new Map(), minSeq: 0, more: true, loading: false, loaded: false };
    chats.set(conv, ch);
  }
  return ch;
}

// isGroup tells a group conversation (g:<name>) from a one-to-one one.
function isGroup(conv) {
  return Client.conversationKind(conv) === "group";
}

// groupName is what the client calls a group: its id without the g: prefix.
function groupName(conv) {
  return conv.slice(2);
}

function peerOf(conv) {
  const cv = client && client.conversation(conv);
  if (cv && cv.peer) return cv.peer;
  const [, a, b] = conv.split(":");
  return a === me ? b : a;
}

// hasLeft says whether the user was removed from group conv.
function hasLeft(conv) {
  const cv = client && client.conversation(conv);
  return !!(cv && cv.left);
}

function displayName(user) {
  if (user === SystemUser) return user; // the app server: no profile to look up
  if (!names.has(user)) {
    names.set(user, user);
    if (client) {
      client.rest().user(user).then((u) => {
        if (u.nickname) {
          names.set(user, u.nickname);
          renderConvs();
          if (current && current.peer === user) renderHeader();
          if (current && current.group) renderMessages(false); // senders' names
        }
      }, () => {});
    }
  }
  return names.get(user);
}

let convsQueued = false;
function onConversation(cv) {
  if (cv.peer && !presence.has(cv.peer) && client) {
    presence.set(cv.peer, { user: cv.peer, online: false, devices: 0 });
    client.subscribe([cv.peer]).then((ps) => ps.forEach(onPresence), () => presence.delete(cv.peer));
  }
  if (current && cv.id === current.conv) {
    renderHeader();
    renderMessages(false); // read state of own messages
    if (cv.unread > 0) markCurrentRead();
  }
  if (!convsQueued) {
    convsQueued = true;
    queueMicrotask(() => {
      convsQueued = false;
      renderConvs();
    });
  }
}

function onPresence(p) {
  presence.set(p.user, p);
  renderConvs();
  if (current && current.peer === p.user) renderHeader();
}

function onReceipt(r) {
  if (current && r.conv === current.conv) renderMessages(false);
}

function timeLabel(ts) {
  const d = new Date(ts);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleDateString([], { month: "short", day: "numeric" });
}

// eventText words a group event message ("alice added bob and carol"), or
// returns undefined for any other message.
function eventText(m) {
  const e = groupEventOf(m);
  return e && describeGroupEvent(e, displayName);
}

function preview(m) {
  if (!m) return "";
  const event = eventText(m);
  if (event !== undefined) return event;
  const text = m.content && typeof m.content.text === "string" ? m.content.text : `[${m.ctype}]`;
  if (m.from === me) return "You: " + text;
  return isGroup(m.conv) ? displayName(m.from) + ": " + text : text;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// groupAvatar marks a group in the list: a # for the group, no presence dot.
function groupAvatar() {
  const a = el("span", "avatar group-mark", "#");
  a.title = "group";
  return a;
}

function avatar(user) {
  const a = el("span", "avatar", (displayName(user) || "?").slice(0, 1).toUpperCase());
  const dot = el("span", "dot" + (presence.get(user)?.online ? " online" : ""));
  dot.title = presence.get(user)?.online ? "online" : "offline";
  a.append(dot);
  return a;
}

function renderConvs() {
  const list = $("convs");
  // Groups show from the moment the user joins; one-to-one chats from their first message.
  const convs = client ? client.conversations().filter((cv) => cv.last_message || cv.max_seq > 0 || cv.kind === "group") : [];
  list.replaceChildren(
    ...convs.map((cv) => {
      const li = el("li");
      const b = el("button", "conv");
      b.type = "button";
      const group = isGroup(cv.id);
      b.dataset.conv = cv.id;
      if (group) b.dataset.group = groupName(cv.id);
      else b.dataset.peer = cv.peer;
      if (current && current.conv === cv.id) b.setAttribute("aria-current", "true");
      const name = el("span", "conv-name", group ? groupName(cv.id) : displayName(cv.peer));
      if (group) name.setAttribute("aria-label", `group ${groupName(cv.id)}`);
      const time = el("span", "conv-time", cv.last_message ? timeLabel(cv.last_message.ts) : "");
      const prev = el("span", "conv-preview", cv.left ? "You left this group" : preview(cv.last_message));
      const badge = cv.unread > 0 ? el("span", "badge", String(cv.unread)) : el("span");
      if (cv.unread > 0) badge.setAttribute("aria-label", `${cv.unread} unread`);
      b.append(group ? groupAvatar() : avatar(cv.peer), name, time, prev, badge);
      b.onclick = () => openChat(cv.id);
      li.append(b);
      return li;
    }),
  );
  $("convs-empty").hidden = convs.length > 0;
}

$("form-newchat").onsubmit = async (e) => {
  e.preventDefault();
  const f = e.target;
  const id = f.elements.namedItem("id").value.trim();
  formError(f, "");
  if (!id || !client) return;
  if (id === me) {
    formError(f, "That is you. Enter someone else's user id.");
    return;
  }
  try {
    const u = await client.rest().user(id);
    if (u.nickname) names.set(id, u.nickname);
    f.reset();
    openChat(Client.directConversationId(me, id));
  } catch (err) {
    formError(f, readable(err, "user"));
  }
};

// ---------- the chat view ----------

// openChat opens conversation conv: a one-to-one chat (d:a:b) or a group (g:name).
function openChat(conv) {
  if (!client || !me) return;
  const group = isGroup(conv);
  const peer = group ? undefined : peerOf(conv);
  current = group ? { conv, group: groupName(conv) } : { conv, peer };
  sessionStorage.setItem(OPEN_KEY, conv);
  $("app").classList.add("in-chat");
  $("chat-empty").hidden = true;
  if (peer && !presence.has(peer)) {
    presence.set(peer, { user: peer, online: false, devices: 0 });
    client.subscribe([peer]).then((ps) => ps.forEach(onPresence), () => presence.delete(peer));
  }
  renderHeader();
  renderConvs();
  const ch = chatState(conv);
  renderMessages(true);
  if (!ch.loaded) loadOlder(conv, true);
  markCurrentRead();
  $("text").focus();
}

function closeChat() {
  current = undefined;
  sessionStorage.removeItem(OPEN_KEY);
  $("app").classList.remove("in-chat");
  $("chat-empty").hidden = false;
  renderConvs();
  const first = $("convs").querySelector("button");
  if (first) first.focus();
}

$("back").onclick = closeChat;

function renderHeader() {
  if (!current) return;
  renderComposer();
  if (current.group) {
    const left = hasLeft(current.conv);
    $("peer-name").textContent = current.group;
    $("peer-dot").className = "dot group-dot";
    $("peer-state").textContent = left ? "You left this group" : "group";
    return;
  }
  const p = presence.get(current.peer);
  $("peer-name").textContent = displayName(current.peer);
  $("peer-dot").className = "dot" + (p?.online ? " online" : "");
  $("peer-state").textContent = p?.online ? "online" : p?.last_seen ? "last seen " + timeLabel(p.last_seen) : "offline";
}

// renderComposer makes a group the user has left read-only.
function renderComposer() {
  const left = !!current && hasLeft(current.conv);
  $("text").disabled = left;
  $("send").disabled = left;
  $("emoji-toggle").disabled = left;
  $("left-note").hidden = !left;
  if (left) toggleEmoji(false);
}

async function loadOlder(conv, toBottom) {
  const ch = chatState(conv);
  if (ch.loading || (ch.loaded && !ch.more) || !client) return;
  ch.loading = true;
  const box = $("messages");
  const fromBottom = box.scrollHeight - box.scrollTop;
  try {
    const from = ch.loaded ? ch.minSeq - 1 : 0;
    if (ch.loaded && from < 1) {
      ch.more = false;
      return;
    }
    const page = await client.pull({ conv, from, dir: "backward", limit: PAGE });
    for (const m of page.messages) ch.msgs.set(m.seq, m);
    if (page.messages.length) ch.minSeq = ch.loaded ? Math.min(ch.minSeq, page.messages[0].seq) : page.messages[0].seq;
    ch.more = page.more;
    ch.loaded = true;
  } catch (err) {
    if (err instanceof ParleyError && err.code === "not_found") {
      ch.loaded = true; // no message yet: the conversation begins with the first send
      ch.more = false;
    } else {
      ch.loading = false;
      return; // retried on the next scroll or reconnection
    }
  } finally {
    ch.loading = false;
  }
  if (!current || current.conv !== conv) return;
  renderMessages(false);
  if (toBottom) box.scrollTop = box.scrollHeight;
  else box.scrollTop = box.scrollHeight - fromBottom;
  if (ch.more && box.scrollHeight <= box.clientHeight) loadOlder(conv, toBottom);
}

$("messages").addEventListener("scroll", () => {
  if (current && $("messages").scrollTop < 80) loadOlder(current.conv, false);
});

function onMessage(m) {
  const ch = chatState(m.conv);
  if (m.from === me) ch.pending.delete(m.cid);
  if (ch.loaded || ch.msgs.size > 0 || (current && current.conv === m.conv)) ch.msgs.set(m.seq, m);
  if (!ch.loaded && ch.minSeq === 0) ch.minSeq = m.seq;
  if (current && current.conv === m.conv) {
    renderMessages(false);
    if (m.from !== me) markCurrentRead();
  }
}

let marking = 0;
function markCurrentRead() {
  if (!current || !client || document.visibilityState !== "visible") return;
  const cv = client.conversation(current.conv);
  if (!cv || cv.unread === 0 || marking >= cv.max_seq) return;
  marking = cv.max_seq;
  client.markRead(cv.id, cv.max_seq).then(
    () => (marking = 0),
    () => (marking = 0),
  );
}

function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yesterday = new Date(Date.now() - 864e5);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yesterday.toDateString()) return "Yesterday";
  return d.toLocaleDateString([], { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

function renderMessages(reset) {
  const box = $("messages");
  if (!current) {
    box.replaceChildren();
    return;
  }
  const atBottom = reset || box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const ch = chatState(current.conv);
  const cv = client && client.conversation(current.conv);
  const peerRead = cv && !current.group ? cv.peer_read_seq : 0;
  const items = [...ch.msgs.values()].sort((a, b) => a.seq - b.seq).map((m) => ({ m }));
  for (const p of ch.pending.values()) items.push({ p });
  const nodes = [];
  if (ch.loading || ch.more) nodes.push(el("div", "loading-older", ch.more && ch.loaded ? "Scroll up for older messages" : "Loading…"));
  let lastDay = "";
  for (const it of items) {
    const ts = it.m ? it.m.ts : it.p.ts;
    const day = new Date(ts).toDateString();
    if (day !== lastDay) {
      nodes.push(el("div", "day", dayLabel(ts)));
      lastDay = day;
    }
    nodes.push(it.m ? messageNode(it.m, peerRead, !!current.group) : pendingNode(it.p));
  }
  box.replaceChildren(...nodes);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function textOf(content, ctype) {
  if (content && typeof content.text === "string") return content.text;
  return `[${ctype}] ${JSON.stringify(content)}`;
}

// messageNode shows one message; in a group, others' messages name their sender,
// and own ones have no read state (members' reading is not shared). A group
// event is a centred line of its own, not a bubble from "system".
function messageNode(m, peerRead, group) {
  const event = eventText(m);
  if (event !== undefined) {
    const line = el("div", "system-line", event);
    line.dataset.seq = String(m.seq);
    line.dataset.event = groupEventOf(m).event;
    line.title = timeLabel(m.ts);
    return line;
  }
  const own = m.from === me;
  const wrap = el("div", "msg " + (own ? "own" : "other"));
  wrap.dataset.seq = String(m.seq);
  wrap.dataset.cid = m.cid;
  wrap.dataset.from = m.from;
  if (group && !own) wrap.append(el("div", "sender", displayName(m.from)));
  wrap.append(el("div", "bubble", textOf(m.content, m.ctype)));
  const meta = el("div", "meta", timeLabel(m.ts));
  if (own && group) {
    wrap.dataset.state = "sent";
    meta.append(el("span", "state", " · ✓ Sent"));
  } else if (own) {
    const read = peerRead >= m.seq;
    const state = el("span", read ? "read state" : "state", read ? " · ✓✓ Read" : " · ✓ Sent");
    wrap.dataset.state = read ? "read" : "sent";
    meta.append(state);
  }
  wrap.append(meta);
  return wrap;
}

function pendingNode(p) {
  const wrap = el("div", "msg own" + (p.state === "failed" ? " failed" : ""));
  wrap.dataset.cid = p.cid;
  wrap.dataset.state = p.state;
  wrap.append(el("div", "bubble", p.text));
  wrap.append(el("div", "meta", timeLabel(p.ts) + (p.state === "sending" ? " · Sending…" : " · Not sent")));
  if (p.state === "failed") {
    const err = el("div", "error", readable(p.error));
    err.setAttribute("role", "alert");
    const pointless = p.error instanceof ParleyError && ["content_too_large", "frame_too_large", "invalid_argument", "invalid_utf8", "client_id_conflict"].includes(p.error.code);
    const btn = el("button", "", pointless ? "Remove" : "Retry");
    btn.type = "button";
    btn.onclick = () => (pointless ? removePending(p) : transmit(p));
    err.append(btn);
    wrap.append(err);
  }
  return wrap;
}

function removePending(p) {
  chatState(p.conv).pending.delete(p.cid);
  renderMessages(false);
  $("text").focus();
}

function transmit(p) {
  p.state = "sending";
  p.error = undefined;
  renderMessages(false);
  const target = p.to ? { to: p.to } : { conv: p.conv };
  client.send(target, { text: p.text }, { cid: p.cid, timeoutMs: SEND_TIMEOUT_MS }).then(
    () => {
      chatState(p.conv).pending.delete(p.cid); // the message event has shown it by now
      if (current && current.conv === p.conv) renderMessages(false);
    },
    (err) => {
      if (!chatState(p.conv).pending.has(p.cid) || !client) return;
      p.state = "failed";
      p.error = err;
      if (current && current.conv === p.conv) renderMessages(false);
    },
  );
}

$("composer").onsubmit = (e) => {
  e.preventDefault();
  const ta = $("text");
  const text = ta.value.trim();
  if (!text || !current || !client || hasLeft(current.conv)) return;
  ta.value = "";
  autosize();
  const p = { cid: client.newClientId(), conv: current.conv, to: current.peer, text, ts: Date.now(), state: "sending" };
  chatState(current.conv).pending.set(p.cid, p);
  renderMessages(true);
  transmit(p);
};

function autosize() {
  const ta = $("text");
  ta.style.height = "auto";
  ta.style.height = Math.min(ta.scrollHeight + 2, 160) + "px";
}

$("text").addEventListener("input", autosize);
$("text").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  } else if (e.key === "Escape" && window.matchMedia("(max-width: 700px)").matches) {
    closeChat();
  }
});

// ---------- emoji ----------

const picker = $("emoji");
picker.replaceChildren(
  ...EMOJI.map((ch) => {
    const b = el("button", "", ch);
    b.type = "button";
    b.setAttribute("aria-label", "Insert " + ch);
    b.onclick = () => {
      const ta = $("text");
      const at = ta.selectionStart ?? ta.value.length;
      ta.value = ta.value.slice(0, at) + ch + ta.value.slice(ta.selectionEnd ?? at);
      ta.selectionStart = ta.selectionEnd = at + ch.length;
      toggleEmoji(false);
      ta.focus();
    };
    return b;
  }),
);

function toggleEmoji(show) {
  picker.hidden = !show;
  $("emoji-toggle").setAttribute("aria-expanded", String(show));
  if (show) picker.querySelector("button").focus();
}

$("emoji-toggle").onclick = () => toggleEmoji(picker.hidden);
picker.addEventListener("keydown", (e) => {
  if (e.key === "Escape") {
    toggleEmoji(false);
    $("emoji-toggle").focus();
  }
});

// Signing out in one tab signs out every tab.
window.addEventListener("storage", (e) => {
  if (e.key === SESSION_KEY && !e.newValue && client) signOut("");
});

// ---------- start ----------

const saved = loadSession();
if (saved && saved.token) startSession(saved);
else {
  $("auth").hidden = false;
  showTab("signin");
}
