// Tabs of one browser share one connection. The token names one device, and
// a second connection of the same device would push the first out (kick
// `replaced`), so one tab — the leader, chosen with the Web Locks API —
// runs the SDK client, and the other tabs talk to it over a
// BroadcastChannel: they get every event, and their requests (send, pull,
// read, subscribe) run on the leader's connection. When the leader tab
// closes, its lock passes to another tab, which connects and leads; the
// others re-send what was in flight (sends keep their cid, so nothing is
// stored twice). Without Web Locks (pages not served from localhost or
// HTTPS) every tab connects on its own.
import { Client, ParleyError, Rest } from "./sdk/index.js";

const EVENTS = ["state", "message", "conversation", "receipt", "presence", "changed", "kicked", "tokenExpired"];
const CALL_TIMEOUT_MS = 20000;

function errOut(e) {
  return e ? { code: e.code || "internal", message: e.message || String(e), status: e.status } : undefined;
}
function errIn(e) {
  return e ? new ParleyError(e.code, e.message, e.status) : undefined;
}

/** SharedClient has the part of the SDK Client the web client uses. */
export class SharedClient {
  constructor(opts) {
    this.opts = opts;
    this.token = opts.token;
    this.listeners = new Map();
    this.convs = new Map();
    this.calls = new Map();
    this.nextCall = 0;
    this.closed = false;
    this.userId = "";
    this.cidPrefix = crypto.getRandomValues(new Uint32Array(2)).join("").slice(0, 12) + "-";
    this.cidCount = 0;
    this.ready = new Promise((res, rej) => ((this.readyResolve = res), (this.readyReject = rej)));
    this.ready.catch(() => {});
    this.on("conversation", (c) => this.convs.set(c.id, c));
  }

  start() {
    const key = "parley-tab:" + this.token.slice(-32);
    if (!("locks" in navigator) || typeof BroadcastChannel === "undefined") {
      this.lead(undefined);
      return this.ready;
    }
    this.chan = new BroadcastChannel(key);
    this.chan.onmessage = (e) => this.onChannel(e.data);
    navigator.locks.request(key, { ifAvailable: true }, (lock) => {
      if (lock) return this.lead();
      this.follow();
      navigator.locks.request(key, () => (this.closed ? undefined : this.lead()));
    });
    return this.ready;
  }

  // lead runs the real client until this tab closes it; the returned promise
  // holds the lock.
  lead() {
    let opts = this.opts;
    if (this.convs.size > 0) {
      // A follower taking over resumes where the old leader's events left
      // it, so nothing sent in between is skipped.
      const positions = Object.fromEntries([...this.convs.values()].map((c) => [c.id, c.max_seq]));
      opts = { ...opts, positions, startAtLatest: false };
    }
    const real = new Client(opts);
    this.real = real;
    for (const type of EVENTS) {
      real.on(type, (ev) => {
        if (type === "state" && ev.state === "connected") this.userId = real.user;
        this.emit(type, ev);
        if (this.chan) this.post({ kind: "event", type, ev: type === "state" ? { ...ev, error: errOut(ev.error) } : type === "tokenExpired" ? errOut(ev) : ev });
      });
    }
    real.start().then(
      () => {
        this.userId = real.user;
        this.readyResolve();
      },
      (e) => this.readyReject(e),
    );
    this.post({ kind: "leader" });
    return new Promise((res) => (this.release = res));
  }

  follow() {
    this.post({ kind: "hello" });
  }

  post(msg) {
    if (this.chan && !this.closed) this.chan.postMessage(msg);
  }

  onChannel(msg) {
    if (this.closed) return;
    if (this.real) {
      // The leader: answer hellos and calls.
      if (msg.kind === "hello") {
        this.post({ kind: "snapshot", user: this.real.user, state: this.real.state, convs: this.real.conversations(), ready: !!this.real.user });
      } else if (msg.kind === "call") {
        Promise.resolve()
          .then(() => this.real[msg.method](...msg.args))
          .then(
            (value) => this.post({ kind: "reply", id: msg.id, value }),
            (e) => this.post({ kind: "reply", id: msg.id, error: errOut(e) }),
          );
      }
      return;
    }
    switch (msg.kind) {
      case "leader": // a new leader: say hello, and repeat what was in flight
        this.follow();
        for (const c of this.calls.values()) this.post(c.msg);
        break;
      case "snapshot":
        this.userId = msg.user;
        for (const c of msg.convs) this.convs.set(c.id, c);
        this.emit("state", { state: msg.state });
        for (const c of msg.convs) this.emit("conversation", c);
        if (msg.ready) this.readyResolve();
        break;
      case "event": {
        let ev = msg.ev;
        if (msg.type === "state") {
          ev = { ...ev, error: errIn(ev.error) };
          if (ev.state === "connected" && ev.hello) this.userId = ev.hello.user;
        }
        if (msg.type === "tokenExpired") ev = errIn(ev);
        this.emit(msg.type, ev);
        if (msg.type === "state" && ev.state === "connected") this.readyResolve();
        break;
      }
      case "reply": {
        const c = this.calls.get(msg.id);
        if (!c) return;
        this.calls.delete(msg.id);
        clearTimeout(c.timer);
        if (msg.error) c.reject(errIn(msg.error));
        else c.resolve(msg.value);
        break;
      }
    }
  }

  call(method, ...args) {
    if (this.real) return this.real[method](...args);
    if (this.closed) return Promise.reject(new ParleyError("closed", "closed"));
    return new Promise((resolve, reject) => {
      const id = this.cidPrefix + ++this.nextCall;
      const msg = { kind: "call", id, method, args };
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(new ParleyError("timeout", "no answer from the tab holding the connection"));
      }, CALL_TIMEOUT_MS);
      this.calls.set(id, { msg, resolve, reject, timer });
      this.post(msg);
    });
  }

  on(type, fn) {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(type, ev) {
    for (const fn of this.listeners.get(type) || []) fn(ev);
  }

  get user() {
    return this.real ? this.real.user : this.userId;
  }

  conversations() {
    if (this.real) return this.real.conversations();
    return [...this.convs.values()].sort((a, b) => (b.last_message?.ts ?? 0) - (a.last_message?.ts ?? 0) || (a.id < b.id ? -1 : 1));
  }

  conversation(id) {
    return this.real ? this.real.conversation(id) : this.convs.get(id);
  }

  rest() {
    return new Rest(location.origin, this.token);
  }

  newClientId() {
    return this.cidPrefix + (++this.cidCount).toString(36);
  }

  send(target, content, options) {
    return this.call("send", target, content, options);
  }
  pull(p) {
    return this.call("pull", p);
  }
  markRead(conv, seq) {
    return this.call("markRead", conv, seq);
  }
  subscribe(users) {
    return this.call("subscribe", users);
  }

  close() {
    if (this.closed) return;
    if (this.real) this.real.close();
    this.closed = true;
    for (const c of this.calls.values()) {
      clearTimeout(c.timer);
      c.reject(new ParleyError("closed", "closed"));
    }
    this.calls.clear();
    if (this.chan) this.chan.close();
    if (this.release) this.release();
  }
}
