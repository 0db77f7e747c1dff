import { Codes, ParleyError, terminalKick } from "./errors.js";
import { Rest, httpBase, type FetchLike } from "./rest.js";
import { Sequencer } from "./sequencer.js";
import type { Ack, CallResult, Changed, Conversation, Conversations, Hello, Kick, Message, Messages, Presence, Pull, Receipt } from "./types.js";

/** WebSocketLike is the part of the WHATWG WebSocket the SDK uses; browsers, Node ≥ 22 and the `ws` package provide it. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
}

/** WebSocketConstructor builds a WebSocketLike for a URL. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Defaults for the options left out. */
export const Defaults = {
  ackTimeoutMs: 5000,
  backoffMinMs: 250,
  backoffMaxMs: 30000,
  dialTimeoutMs: 10000,
  gapWaitMs: 200,
  heartbeatMs: 30000, // when neither the options nor the server's hello set one
  pullRetryMs: 1000,
} as const;

/** ClientOptions configures a Client. url and one of token or tokenSource are required. */
export interface ClientOptions {
  /** The WebSocket endpoint, for example ws://127.0.0.1:8080/v1/ws. */
  url: string;
  /** The device token, used when tokenSource is not set. */
  token?: string;
  /** Called before every connection attempt, so an application can refresh an expiring token. */
  tokenSource?: () => string | Promise<string>;
  /** The WebSocket constructor; defaults to the global WebSocket (browsers; Node ≥ 22, or 20 with --experimental-websocket). In Node 20 pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** The fetch used for REST calls (to learn why a connection was refused); defaults to the global fetch. */
  fetch?: FetchLike;
  /** Overrides the ping interval the server announces in hello. The connection counts as dead after two silent intervals. */
  heartbeatMs?: number;
  /**
   * How often a connection with sends waiting for their acks is checked: if
   * anything arrived since the last check the sends wait on (the server is
   * slow, not gone); if nothing did, the client pings, and if nothing
   * arrives by the next check either the connection is ended and the sends
   * retransmitted with the same cids on the next one. A send is never
   * written twice on one connection, except after the server answered
   * unavailable or internal.
   */
  ackTimeoutMs?: number;
  /** Bounds of the reconnection delay: attempt n waits a random time in [0, min(max, min·2^(n-1))]. */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Bounds each connection attempt, hello included. */
  dialTimeoutMs?: number;
  /** How long a gap in a conversation may stay open before the missing messages are pulled. */
  gapWaitMs?: number;
  /** Per conversation, the seq of the last message the application already has, to resume without receiving history again. */
  positions?: Record<string, number>;
  /** The conversations version of the last sync the application stored (0: sync everything). */
  version?: number;
  /** Treat every conversation that exists at the first connection as delivered up to its latest message: history is then read with pull. */
  startAtLatest?: boolean;
}

/** ConnectionState is where a Client stands. */
export type ConnectionState = "connecting" | "connected" | "disconnected" | "reconnecting" | "stopped";

/** StateChange is the payload of the "state" event. */
export interface StateChange {
  state: ConnectionState;
  /** The server's hello, for "connected". */
  hello?: Hello;
  /** Why the connection ended ("disconnected"), the previous attempt failed ("reconnecting") or the client stopped ("stopped"). */
  error?: Error;
  /** The reconnection attempt, from 1, and the delay before it ("reconnecting"). */
  attempt?: number;
  delayMs?: number;
}

/** ClientEvents maps each event name to its payload. */
export interface ClientEvents {
  /** Every message of every conversation, exactly once and in seq order per conversation: others', this device's own sends once acknowledged, and the user's other devices' sends. */
  message: Message;
  /** A read receipt: the peer, or the user on another device, read up to a seq. */
  receipt: Receipt;
  /** A subscribed user came online or went offline; also the fresh state after each reconnection. */
  presence: Presence;
  /** An entry of the conversation list changed: new message, unread count, read positions, history cleared, the user added to a group or removed from it (left). */
  conversation: Conversation;
  /**
   * Something the user keeps in step by version changed (friends, friend
   * requests, blocks, groups, a group's members): fetch what changed since
   * the version you hold, with call or rest. Pushes are hints, not
   * replayed: after every "connected" state, sync the scopes you keep.
   */
  changed: Changed;
  /** The server kicked this connection. */
  kicked: Kick;
  /** The token expired: the server kicked the connection or refused it. Provide a fresh token through tokenSource. */
  tokenExpired: ParleyError;
  /** The connection state changed. */
  state: StateChange;
}

/** SendOptions are the optional parts of a send. */
export interface SendOptions {
  /** The content type; "text" by default. */
  ctype?: string;
  /** The client message id; a fresh one by default. Resending with the same cid is safe: the server stores the message once. */
  cid?: string;
  /** Give up after this long with a "timeout" ParleyError (the message may still be committed: resend with the same cid to find out). */
  timeoutMs?: number;
}

/**
 * SendTarget names where a message goes: the other user of a one-to-one
 * conversation ({ to: "bob" }), or a conversation by id ({ conv: "g:team" }
 * for a group, or "d:alice:bob"). Exactly one of the two.
 */
export type SendTarget = { to: string; conv?: undefined } | { conv: string; to?: undefined };

/** ClientStats are counters of a Client since it started. */
export interface ClientStats {
  connects: number;
  sends: number;
  retransmits: number;
  pulls: number;
  duplicates: number;
}

interface Conn {
  ws: WebSocketLike;
  hello?: Hello;
  kick?: Kick;
  frames: number;
  ended: boolean;
  synced: boolean;
  busy: boolean; // a manager request is in flight
  heartbeat?: ReturnType<typeof setInterval>;
  ackWatch?: ReturnType<typeof setInterval>;
  dialTimer?: ReturnType<typeof setTimeout>;
  end: (cause: Error) => void;
}

interface Pending {
  cn: Conn;
  want: string;
  resolve: (data: any) => void;
  reject: (err: ParleyError) => void;
  timer?: ReturnType<typeof setTimeout>;
}

interface OutgoingSend {
  cid: string;
  target: string; // the frame's "to" or "conv" member, JSON-encoded with its key
  to?: string; // the recipient of a send by user
  conv?: string; // the conversation of a send by id
  ctype: string;
  content: string; // the JSON text, sent byte for byte on every retransmission
  reqId?: string; // the request id of the latest transmission
  attempt: number;
  done: boolean;
  resolve: (a: Ack) => void;
  reject: (e: ParleyError) => void;
  retryTimer?: ReturnType<typeof setTimeout>;
  giveUp?: ReturnType<typeof setTimeout>;
}

const MAX_SAFE_VERSION = Number.MAX_SAFE_INTEGER;

/**
 * Client is one device's connection to a Parley server. It connects with a
 * token, sends heartbeats, reconnects with exponential backoff and full
 * jitter, retransmits sends with the same cid until acknowledged, delivers
 * every message exactly once and in order per conversation (pulling gaps and
 * catching up after every connection), and keeps the conversation list with
 * unread counts current. It mirrors the Go SDK (package client).
 *
 * It stops for good when closed, when kicked with replaced, policy,
 * forced_offline or token_revoked, or when the server refuses its token.
 */
export class Client {
  private readonly opts: Required<Pick<ClientOptions, "ackTimeoutMs" | "backoffMinMs" | "backoffMaxMs" | "dialTimeoutMs" | "gapWaitMs">> & ClientOptions;
  private readonly WS: WebSocketConstructor;
  private readonly listeners = new Map<keyof ClientEvents, Set<(ev: any) => void>>();
  private readonly seq: Sequencer;
  private readonly convs = new Map<string, Conversation>();
  private readonly pending = new Map<string, Pending>();
  private readonly sends = new Map<string, OutgoingSend>();
  private readonly subs = new Set<string>();
  private readonly cidPrefix: string;
  private nextId = 0;
  private conn?: Conn; // the connection in service, from its hello until it ends
  private active?: Conn; // the connection being opened or in service
  private stopped = false;
  private stopErr?: Error;
  private started = false;
  private synced = false;
  private syncVersion: number;
  private pullTimer?: ReturnType<typeof setTimeout>;
  private pullAt = 0;
  private sleepTimer?: ReturnType<typeof setTimeout>;
  private wakeSleep?: () => void;
  private readyResolve!: () => void;
  private readyReject!: (e: Error) => void;
  private _state: ConnectionState = "disconnected";
  private _user = "";
  private _hello?: Hello;
  private lastToken = "";
  private readonly counters = { connects: 0, sends: 0, retransmits: 0 };

  /** ready resolves after the first sync of the conversation list, and rejects if the client stops before. */
  readonly ready: Promise<void>;

  constructor(opts: ClientOptions) {
    const u = new URL(opts.url);
    if (u.protocol !== "ws:" && u.protocol !== "wss:") throw new ParleyError(Codes.InvalidArgument, `url scheme ${u.protocol}: want ws: or wss:`);
    if (!opts.token && !opts.tokenSource) throw new ParleyError(Codes.InvalidArgument, "no token or tokenSource");
    const WS = opts.WebSocket ?? ((globalThis as any).WebSocket as WebSocketConstructor | undefined);
    if (!WS) throw new ParleyError(Codes.InvalidArgument, "no WebSocket: pass options.WebSocket (in Node 20, the ws package's)");
    this.WS = WS;
    this.opts = {
      ...opts,
      ackTimeoutMs: opts.ackTimeoutMs ?? Defaults.ackTimeoutMs,
      backoffMinMs: opts.backoffMinMs ?? Defaults.backoffMinMs,
      backoffMaxMs: Math.max(opts.backoffMaxMs ?? Defaults.backoffMaxMs, opts.backoffMinMs ?? Defaults.backoffMinMs),
      dialTimeoutMs: opts.dialTimeoutMs ?? Defaults.dialTimeoutMs,
      gapWaitMs: opts.gapWaitMs ?? Defaults.gapWaitMs,
    };
    this.syncVersion = opts.version ?? 0;
    this.cidPrefix = randomHex(8) + "-";
    this.seq = new Sequencer((m) => this.deliver(m), (at) => this.wakePulls(at), this.opts.gapWaitMs, opts.positions);
    this.ready = new Promise<void>((res, rej) => {
      this.readyResolve = res;
      this.readyReject = rej;
    });
    this.ready.catch(() => {}); // a client nobody awaits must not report an unhandled rejection
  }

  /**
   * connect creates a client, connects it and waits for the first sync. It
   * does not retry the first connection: if it fails, connect rejects (with
   * the server's ParleyError if the token was refused). Later disconnections
   * are retried.
   */
  static async connect(opts: ClientOptions): Promise<Client> {
    const c = new Client(opts);
    c.run(true);
    try {
      await c.ready;
    } catch (e) {
      c.close();
      throw e;
    }
    return c;
  }

  /** start connects in the background, retrying the first connection too, and returns ready. */
  start(): Promise<void> {
    if (!this.started) this.run(false);
    return this.ready;
  }

  /** on registers a listener for an event and returns a function that removes it. */
  on<K extends keyof ClientEvents>(type: K, fn: (ev: ClientEvents[K]) => void): () => void {
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    set.add(fn);
    return () => set!.delete(fn);
  }

  private emit<K extends keyof ClientEvents>(type: K, ev: ClientEvents[K]): void {
    const set = this.listeners.get(type);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(ev);
      } catch (e) {
        queueMicrotask(() => {
          throw e; // a listener's bug surfaces as an uncaught error, and delivery goes on
        });
      }
    }
  }

  /** state is the connection state. */
  get state(): ConnectionState {
    return this._state;
  }

  /** user is the id of the user the token names, known once connected. */
  get user(): string {
    return this._user;
  }

  /** hello is the server's hello on the latest connection. */
  get hello(): Hello | undefined {
    return this._hello;
  }

  /** error is why the client stopped, once it has. */
  get error(): Error | undefined {
    return this.stopErr;
  }

  /** version is the conversations version of the last completed sync: store it with positions() to resume. */
  get version(): number {
    return this.syncVersion;
  }

  /** positions returns, per conversation, the seq of the last message delivered (or skipped). */
  positions(): Record<string, number> {
    return this.seq.positions();
  }

  /** stats returns the client's counters. */
  get stats(): ClientStats {
    return { ...this.counters, pulls: this.seq.pulls, duplicates: this.seq.duplicates };
  }

  /** conversations returns the conversation list, most recent message first. */
  conversations(): Conversation[] {
    return [...this.convs.values()].sort((a, b) => (b.last_message?.ts ?? 0) - (a.last_message?.ts ?? 0) || (a.id < b.id ? -1 : 1));
  }

  /** conversation returns one conversation of the list. */
  conversation(id: string): Conversation | undefined {
    return this.convs.get(id);
  }

  /** rest returns a REST client for the same server, with the token of the latest connection. */
  rest(): Rest {
    return new Rest(httpBase(this.opts.url), this.lastToken || this.opts.token, this.opts.fetch);
  }

  /** newClientId returns a client message id unique to this client. */
  newClientId(): string {
    return this.cidPrefix + (++this.nextId).toString(36);
  }

  /** directConversationId returns the id of the one-to-one conversation of users a and b. */
  static directConversationId(a: string, b: string): string {
    return a < b ? `d:${a}:${b}` : `d:${b}:${a}`;
  }

  /** groupConversationId returns the id of group id's conversation: g:<id>. */
  static groupConversationId(id: string): string {
    return "g:" + id;
  }

  /** conversationKind returns "group" for a g: id, "direct" for a d: id and "" for anything else. */
  static conversationKind(conv: string): "direct" | "group" | "" {
    if (conv.startsWith("g:")) return "group";
    if (conv.startsWith("d:")) return "direct";
    return "";
  }

  private setState(s: StateChange): void {
    this._state = s.state;
    this.emit("state", s);
  }

  /** close closes the connection, fails pending sends and requests with a "closed" error, and stops for good. Idempotent. */
  close(): void {
    this.stop(new ParleyError(Codes.Closed, "client closed"));
  }

  private stop(err: Error): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopErr = err;
    const closed = err instanceof ParleyError ? err : new ParleyError(Codes.Closed, err.message);
    for (const s of this.sends.values()) this.finishSend(s, undefined, closed);
    this.sends.clear();
    if (this.active) this.active.end(closed);
    clearTimeout(this.pullTimer);
    clearTimeout(this.sleepTimer);
    this.wakeSleep?.();
    this.readyReject(err);
    this.setState({ state: "stopped", error: err });
  }

  // run is the manager: it connects, serves each connection until it ends,
  // and reconnects with backoff until the client stops.
  private async run(failFast: boolean): Promise<void> {
    this.started = true;
    let attempt = 0;
    let first = true;
    this.setState({ state: "connecting" });
    while (!this.stopped) {
      let token = "";
      let r: { opened: boolean; synced: boolean; kick?: Kick; cause: Error };
      try {
        token = this.opts.tokenSource ? await this.opts.tokenSource() : this.opts.token!;
        this.lastToken = token;
        r = await this.connectOnce(token);
      } catch (e) {
        r = { opened: false, synced: false, cause: e as Error };
      }
      if (this.stopped) return;
      if (!r.opened) {
        const refused = token ? await this.whyRefused(token) : undefined;
        if (this.stopped) return;
        if (refused) {
          if (refused.code === Codes.TokenExpired) this.emit("tokenExpired", refused);
          this.stop(refused);
          return;
        }
        if (failFast && first) {
          this.stop(r.cause);
          return;
        }
      } else {
        if (r.kick) this.emit("kicked", r.kick);
        this.setState({ state: "disconnected", error: r.cause });
        if (r.kick && terminalKick(r.kick.code)) {
          this.stop(new ParleyError(r.kick.code, r.kick.message));
          return;
        }
        if (r.kick?.code === Codes.TokenExpired) this.emit("tokenExpired", new ParleyError(r.kick.code, r.kick.message));
      }
      first = false;
      if (r.synced) attempt = 0;
      attempt++;
      const delay = this.backoff(attempt);
      this.setState({ state: "reconnecting", attempt, delayMs: delay, error: r.cause });
      await this.sleep(delay);
    }
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** Math.min(attempt - 1, 40));
    return Math.floor(Math.random() * (cap + 1));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((res) => {
      this.wakeSleep = res;
      this.sleepTimer = setTimeout(res, ms);
    });
  }

  // whyRefused asks the REST API, with the same token, why a connection
  // failed before hello: browsers hide the status of a refused upgrade. It
  // returns the server's error when the token will never work (a 401, or
  // user_deactivated), or undefined for any other failure.
  private async whyRefused(token: string): Promise<ParleyError | undefined> {
    try {
      await new Rest(httpBase(this.opts.url), token, this.opts.fetch).request("GET", `/v1/conversations?since=${MAX_SAFE_VERSION}`);
    } catch (e) {
      if (e instanceof ParleyError && (e.status === 401 || e.code === Codes.UserDeactivated)) return e;
    }
    return undefined;
  }

  // connectOnce opens one connection and resolves when it ends.
  private connectOnce(token: string): Promise<{ opened: boolean; synced: boolean; kick?: Kick; cause: Error }> {
    return new Promise((resolve) => {
      const u = new URL(this.opts.url);
      u.searchParams.set("token", token);
      const ws = new this.WS(u.toString());
      const cn: Conn = {
        ws,
        frames: 0,
        ended: false,
        synced: false,
        busy: false,
        end: (cause: Error) => {
          if (cn.ended) return;
          cn.ended = true;
          clearInterval(cn.heartbeat);
          clearInterval(cn.ackWatch);
          clearTimeout(cn.dialTimer);
          ws.onmessage = ws.onopen = ws.onclose = null;
          ws.onerror = () => {}; // closing a socket still connecting may report an error; nobody needs it
          try {
            ws.close(1000);
          } catch {
            // already closed
          }
          if (this.conn === cn) this.conn = undefined;
          if (this.active === cn) this.active = undefined;
          const gone = new ParleyError(Codes.Disconnected, "connection lost: " + cause.message);
          for (const [id, p] of this.pending) {
            if (p.cn === cn) {
              this.pending.delete(id);
              clearTimeout(p.timer);
              p.reject(gone);
            }
          }
          resolve({ opened: cn.hello !== undefined, synced: cn.synced, kick: cn.kick, cause });
        },
      };
      this.active = cn;
      cn.dialTimer = setTimeout(() => cn.end(new ParleyError(Codes.Timeout, "no hello within the dial timeout")), this.opts.dialTimeoutMs);
      ws.onmessage = (ev) => {
        cn.frames++;
        try {
          this.handle(cn, typeof ev.data === "string" ? ev.data : String(ev.data));
        } catch (e) {
          cn.end(new Error("undecodable frame: " + (e as Error).message));
        }
      };
      ws.onclose = (ev) => {
        const why = cn.kick ? `kicked: ${cn.kick.code}` : `closed with ${ev.code}${ev.reason ? " " + ev.reason : ""}`;
        cn.end(new ParleyError(cn.kick?.code ?? Codes.Disconnected, why));
      };
      ws.onerror = () => {
        // onclose follows with the details a browser is willing to give.
      };
    });
  }

  // handle dispatches one incoming frame.
  private handle(cn: Conn, raw: string): void {
    const f = JSON.parse(raw);
    if (cn.ended) return;
    switch (f.type) {
      case "hello":
        this.onHello(cn, f.data as Hello);
        return;
      case "message":
        this.seq.offer(f.data as Message);
        return;
      case "receipt":
        this.onReceipt(f.data as Receipt);
        return;
      case "presence":
        this.emit("presence", f.data as Presence);
        return;
      case "conversation":
        this.onConversationPush(f.data as Conversation);
        return;
      case "changed":
        if (f.data && typeof f.data.scope === "string") this.emit("changed", f.data as Changed);
        return;
      case "kick":
        cn.kick = f.data as Kick;
        return;
    }
    if (f.id) {
      const p = this.pending.get(f.id);
      if (!p) return; // a request given up on
      this.pending.delete(f.id);
      clearTimeout(p.timer);
      if (f.type === "error") p.reject(new ParleyError(f.error?.code ?? Codes.Internal, f.error?.message ?? "error"));
      else if (f.type !== p.want) p.reject(new ParleyError(Codes.BadFrame, `got a ${f.type} reply, want ${p.want}`));
      else p.resolve(f.data);
    }
    // Replies without id (pongs, frame-level errors) and unknown push types are ignored.
  }

  private onHello(cn: Conn, h: Hello): void {
    clearTimeout(cn.dialTimer);
    cn.hello = h;
    this._hello = h;
    this._user = h.user;
    this.conn = cn;
    this.counters.connects++;
    const interval = this.opts.heartbeatMs || h.heartbeat_ms || Defaults.heartbeatMs;
    let seen = cn.frames;
    let silent = 0;
    cn.heartbeat = setInterval(() => {
      if (cn.frames !== seen) {
        seen = cn.frames;
        silent = 0;
      } else if (++silent >= 2) {
        cn.end(new ParleyError(Codes.HeartbeatTimeout, "the server stayed silent for two heartbeat intervals"));
        return;
      }
      this.write(cn, '{"type":"ping"}');
    }, interval);
    // The sends' watchdog. A send is never written twice on one connection:
    // while the server is heard from, sends wait for their acks however
    // long they take, as a copy would only add to a busy server's work.
    // Silent for a check with a send waiting, the server is asked for a
    // pong; silent for another, it is presumed gone, and the connection is
    // ended, so that the sends go out again after the next hello.
    let heard = cn.frames;
    let probed = false;
    cn.ackWatch = setInterval(() => {
      if (cn.frames !== heard) {
        heard = cn.frames;
        probed = false;
      } else if (![...this.pending.values()].some((p) => p.cn === cn && p.want === "ack")) {
        probed = false;
      } else if (!probed) {
        probed = true;
        this.write(cn, '{"type":"ping"}');
      } else {
        cn.end(new ParleyError(Codes.Timeout, "the server stayed silent after a send and a ping"));
      }
    }, this.opts.ackTimeoutMs);
    this.setState({ state: "connected", hello: h });
    for (const s of this.sends.values()) this.transmit(s);
    void this.session(cn, interval);
  }

  // session syncs the conversation list, renews presence subscriptions and
  // then runs the pulls the sequencer schedules, one request at a time.
  private async session(cn: Conn, interval: number): Promise<void> {
    const timeout = this.opts.ackTimeoutMs + 2 * interval;
    try {
      cn.busy = true;
      const atLatest = !!this.opts.startAtLatest && !this.synced;
      for (;;) {
        const r = await this.request<Conversations>(cn, "conversations", { since: this.syncVersion }, "conversations", timeout);
        this.applySync(r, atLatest);
        if (!r.more) break; // more changes wait: the next page at once
      }
      cn.synced = true;
      if (this.subs.size > 0) {
        const p = await this.request<{ presence: Presence[] }>(cn, "presence.subscribe", { users: [...this.subs].sort() }, "ok", timeout);
        for (const x of p.presence) this.emit("presence", x);
      }
    } catch (e) {
      if (e instanceof ParleyError && e.code === Codes.Disconnected) return;
      cn.end(new Error("sync: " + (e as Error).message));
      return;
    } finally {
      cn.busy = false;
    }
    if (!this.synced) {
      this.synced = true;
      this.readyResolve();
    }
    this.pumpPulls();
  }

  private wakePulls(at: number): void {
    if (this.pullTimer !== undefined && this.pullAt <= at) return;
    clearTimeout(this.pullTimer);
    this.pullAt = at;
    this.pullTimer = setTimeout(() => {
      this.pullTimer = undefined;
      this.pumpPulls();
    }, Math.max(0, at - Date.now()));
  }

  // pumpPulls starts the next due pull on the current connection, if it is
  // synced and idle.
  private pumpPulls(): void {
    const cn = this.conn;
    if (!cn || !cn.synced || cn.busy || this.stopped) return;
    const { pull, next } = this.seq.nextPull();
    if (!pull) {
      if (next) this.wakePulls(next);
      return;
    }
    cn.busy = true;
    const timeout = this.opts.ackTimeoutMs + 2 * (this.opts.heartbeatMs || cn.hello?.heartbeat_ms || Defaults.heartbeatMs);
    this.request<Messages>(cn, "pull", pull, "messages", timeout).then(
      (page) => this.seq.pulled(pull.conv, page),
      (e: ParleyError) => {
        if (e.code === Codes.Disconnected || e.code === Codes.Timeout) this.seq.pullFailed(pull.conv, undefined, 0);
        else this.seq.pullFailed(pull.conv, e.code, Defaults.pullRetryMs);
        if (e.code === Codes.Timeout) cn.end(new Error("pull timed out"));
      },
    ).finally(() => {
      cn.busy = false;
      this.pumpPulls();
    });
  }

  private write(cn: Conn, frame: string): boolean {
    if (cn.ended) return false;
    try {
      cn.ws.send(frame);
      return true;
    } catch (e) {
      cn.end(e as Error);
      return false;
    }
  }

  private request<T>(cn: Conn, type: string, data: unknown, want: string, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (cn.ended) {
        reject(new ParleyError(Codes.Disconnected, "not connected"));
        return;
      }
      const id = String(++this.nextId);
      const p: Pending = { cn, want, resolve, reject };
      if (timeoutMs > 0) {
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(new ParleyError(Codes.Timeout, `no reply to ${type} within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this.pending.set(id, p);
      const frame = data === undefined ? JSON.stringify({ type, id }) : JSON.stringify({ type, id, data });
      this.write(cn, frame);
    });
  }

  // ask sends a request on the current connection; it fails with
  // "disconnected" when none is up.
  private ask<T>(type: string, data: unknown, want: string, timeoutMs = 0): Promise<T> {
    if (this.stopped) return Promise.reject(this.stopErr instanceof ParleyError ? this.stopErr : new ParleyError(Codes.Closed, "client stopped"));
    const cn = this.conn;
    if (!cn) return Promise.reject(new ParleyError(Codes.Disconnected, "not connected"));
    return this.request<T>(cn, type, data, want, timeoutMs || this.opts.ackTimeoutMs * 2);
  }

  /**
   * send sends a message and resolves with the server's ack once it is
   * committed. It retransmits with the same cid after every reconnection,
   * until acknowledged, until the client stops, or until options.timeoutMs;
   * the server stores the message once however many copies arrive. It never
   * writes a copy on the connection that carried the send: a slow ack is
   * waited for while the server is heard from (see ackTimeoutMs). A refusal is a ParleyError
   * with the server's code, except unavailable and internal, which are
   * retried after a backoff. Once acknowledged the message is also
   * delivered as a "message" event in its conversation's order. Many sends
   * may be in flight at once.
   */
  send(target: SendTarget, content: unknown, options: SendOptions = {}): Promise<Ack> {
    if (this.stopped) return Promise.reject(this.stopErr instanceof ParleyError ? this.stopErr : new ParleyError(Codes.Closed, "client stopped"));
    const text = JSON.stringify(content);
    if (text === undefined) return Promise.reject(new ParleyError(Codes.InvalidArgument, "content is not JSON"));
    if ((target.to === undefined) === (target.conv === undefined)) return Promise.reject(new ParleyError(Codes.InvalidArgument, "a send names exactly one of to and conv"));
    const cid = options.cid ?? this.newClientId();
    const existing = this.sends.get(cid);
    if (existing) return new Promise<Ack>((resolve, reject) => {
      const prev = { resolve: existing.resolve, reject: existing.reject };
      existing.resolve = (a) => (prev.resolve(a), resolve(a));
      existing.reject = (e) => (prev.reject(e), reject(e));
    });
    return new Promise<Ack>((resolve, reject) => {
      const s: OutgoingSend = { cid, target: "", to: target.to, conv: target.conv, ctype: options.ctype ?? "text", content: text, attempt: 0, done: false, resolve, reject };
      s.target = s.conv !== undefined ? `"conv":${JSON.stringify(s.conv)}` : `"to":${JSON.stringify(s.to)}`;
      this.sends.set(cid, s);
      if (options.timeoutMs) {
        s.giveUp = setTimeout(() => this.finishSend(s, undefined, new ParleyError(Codes.Timeout, `no ack within ${options.timeoutMs} ms`)), options.timeoutMs);
      }
      this.transmit(s);
    });
  }

  /** sendText sends {"text": text} to a user (a user id) or to a target ({ conv: "g:team" }). */
  sendText(to: string | SendTarget, text: string, options: SendOptions = {}): Promise<Ack> {
    return this.send(typeof to === "string" ? { to } : to, { text }, options);
  }

  // transmit writes s on the current connection, if any; otherwise the next
  // hello transmits it.
  private transmit(s: OutgoingSend): void {
    const cn = this.conn;
    if (s.done || !cn || cn.ended) return;
    clearTimeout(s.retryTimer);
    const id = String(++this.nextId);
    s.reqId = id;
    s.attempt++;
    this.counters.sends++;
    if (s.attempt > 1) this.counters.retransmits++;
    this.pending.set(id, {
      cn,
      want: "ack",
      resolve: (ack: Ack) => this.finishSend(s, ack),
      reject: (e: ParleyError) => {
        if (s.done || s.reqId !== id) return; // a newer transmission is in flight
        if (e.code === Codes.Disconnected) return; // retransmitted after the next hello
        if (e.retryable) {
          s.retryTimer = setTimeout(() => this.transmit(s), this.backoff(s.attempt));
          return;
        }
        this.finishSend(s, undefined, e);
      },
    });
    const frame = `{"type":"send","id":"${id}","data":{"cid":${JSON.stringify(s.cid)},${s.target},"ctype":${JSON.stringify(s.ctype)},"content":${s.content}}}`;
    this.write(cn, frame);
  }

  private finishSend(s: OutgoingSend, ack?: Ack, err?: ParleyError): void {
    if (s.done) return;
    s.done = true;
    clearTimeout(s.retryTimer);
    clearTimeout(s.giveUp);
    if (this.sends.get(s.cid) === s) this.sends.delete(s.cid);
    if (!ack) {
      s.reject(err!);
      return;
    }
    s.resolve(ack);
    const m: Message = { conv: ack.conv, seq: ack.seq, sid: ack.sid, cid: s.cid, from: this._user, ctype: s.ctype, content: JSON.parse(s.content), ts: ack.ts };
    const peer = s.to ?? directPeer(ack.conv, this._user);
    if (peer !== undefined) m.to = peer; // as the server has it: to only in one-to-one conversations
    this.seq.offer(m);
  }

  // deliver receives each message from the sequencer, once and in order.
  // A message of a conversation the list does not know yet starts an entry
  // built from the id: its kind from the prefix, and a peer only when it is
  // one-to-one. The next sync or conversation push completes it.
  private deliver(m: Message): void {
    let c = this.convs.get(m.conv);
    if (!c) {
      const kind = Client.conversationKind(m.conv);
      c = { id: m.conv, kind, max_seq: 0, read_seq: 0, peer_read_seq: 0, min_seq: 1, unread: 0, version: 0 };
      if (kind === "direct") c.peer = m.from === this._user ? (m.to ?? directPeer(m.conv, this._user)) : m.from;
      this.convs.set(m.conv, c);
    }
    if (m.seq >= c.max_seq) {
      c.max_seq = m.seq;
      c.last_message = m;
    }
    if (m.from === this._user) c.read_seq = Math.max(c.read_seq, m.seq);
    c.unread = unread(c);
    this.emit("message", m);
    this.emit("conversation", { ...c });
  }

  // mergeConversation folds the server's view of a conversation into the
  // list. Positions only grow, so a reply computed before a push that was
  // already applied cannot move the list back.
  private mergeConversation(in_: Conversation): Conversation {
    const c = this.convs.get(in_.id);
    let out: Conversation;
    if (!c) {
      out = { ...in_ };
    } else {
      out = {
        ...in_,
        max_seq: Math.max(c.max_seq, in_.max_seq),
        read_seq: Math.max(c.read_seq, in_.read_seq),
        peer_read_seq: Math.max(c.peer_read_seq, in_.peer_read_seq),
        min_seq: Math.max(c.min_seq, in_.min_seq),
        last_message: (c.last_message?.seq ?? 0) > (in_.last_message?.seq ?? 0) ? c.last_message : in_.last_message,
      };
      if (out.last_message && out.last_message.seq < out.min_seq) out.last_message = undefined;
    }
    out.unread = unread(out);
    this.convs.set(out.id, out);
    this.emit("conversation", { ...out });
    return out;
  }

  private onReceipt(r: Receipt): void {
    const c = this.convs.get(r.conv);
    if (c) {
      if (r.reader === this._user) c.read_seq = Math.max(c.read_seq, r.seq);
      else c.peer_read_seq = Math.max(c.peer_read_seq, r.seq);
      c.unread = unread(c);
    }
    this.emit("receipt", r);
    if (c) this.emit("conversation", { ...c });
  }

  private onConversationPush(c: Conversation): void {
    this.mergeConversation(c);
    this.seq.applyConversation(c, false);
  }

  /**
   * pull returns a page of a conversation's history, for example older
   * messages when the user scrolls back. The messages are returned, not
   * delivered as events.
   */
  pull(p: Pull): Promise<Messages> {
    return this.ask<Messages>("pull", p, "messages");
  }

  /** markRead marks conv read up to seq and returns the receipt; the conversation's unread count follows. */
  async markRead(conv: string, seq: number): Promise<Receipt> {
    const r = await this.ask<Receipt>("read", { conv, seq }, "ok");
    const c = this.convs.get(conv);
    if (c && r.seq > c.read_seq) {
      c.read_seq = r.seq;
      c.unread = unread(c);
      this.emit("conversation", { ...c });
    }
    return r;
  }

  /** clear hides conv's history up to now for the user and returns its new state. */
  async clear(conv: string): Promise<Conversation> {
    const r = await this.ask<Conversation>("clear", { conv }, "ok");
    if (r.id === conv) {
      this.mergeConversation(r);
      this.seq.applyConversation(r, false);
    }
    return r;
  }

  /** subscribe asks for users' presence to be pushed as "presence" events and returns their state; renewed after every reconnection. */
  async subscribe(users: string[]): Promise<Presence[]> {
    const r = await this.ask<{ presence: Presence[] }>("presence.subscribe", { users }, "ok");
    for (const u of users) this.subs.add(u);
    return r.presence;
  }

  /** unsubscribe stops presence pushes for users; they are forgotten even if the request fails. */
  async unsubscribe(users: string[]): Promise<void> {
    for (const u of users) this.subs.delete(u);
    await this.ask<void>("presence.unsubscribe", { users }, "ok");
  }

  /**
   * syncConversations asks for the conversations changed since the last
   * sync, page after page while the server says more wait, and folds them
   * into the list.
   */
  async syncConversations(): Promise<Conversation[]> {
    for (;;) {
      const r = await this.ask<Conversations>("conversations", { since: this.syncVersion }, "conversations");
      this.applySync(r, false);
      if (!r.more) break;
    }
    return this.conversations();
  }

  // applySync folds one page of a conversations reply into the list and the
  // sequencer. The version moves to the page's: with more, that of its last
  // conversation, so the next page starts after it.
  private applySync(r: Conversations, atLatest: boolean): void {
    for (const c of r.conversations) {
      this.mergeConversation(c);
      this.seq.applyConversation(c, atLatest);
    }
    this.syncVersion = Math.max(this.syncVersion, r.version);
  }

  /**
   * call makes a REST request over the connection, as its user, and
   * resolves with the reply's body: any route under /v1/ that a user token
   * may call (friends, blocks, groups, conversation settings…), with path
   * including its query string. A refusal is a ParleyError with the
   * server's code; "disconnected" or "timeout" leave the outcome unknown.
   * Use send for messages.
   */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const r = await this.ask<CallResult>("call", body === undefined ? { method, path } : { method, path, body }, "result");
    return r.body as T;
  }

  /** ping measures a round trip and returns the server's clock (Unix ms). */
  async ping(): Promise<number> {
    const r = await this.ask<{ server_time: number }>("ping", undefined, "pong");
    return r.server_time;
  }

  /** pendingSends returns the cids of sends not yet acknowledged. */
  pendingSends(): string[] {
    return [...this.sends.keys()];
  }
}

// directPeer returns the other user of direct conversation conv (d:a:b), or
// undefined when conv is not a direct conversation of user.
function directPeer(conv: string, user: string): string | undefined {
  if (!conv.startsWith("d:")) return undefined;
  const ids = conv.slice(2).split(":");
  if (ids.length !== 2) return undefined;
  if (ids[0] === user) return ids[1];
  if (ids[1] === user) return ids[0];
  return undefined;
}

function unread(c: Conversation): number {
  return Math.max(0, c.max_seq - Math.max(c.read_seq, c.min_seq - 1));
}

function randomHex(n: number): string {
  const b = new Uint8Array(n);
  (globalThis.crypto as Crypto).getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
