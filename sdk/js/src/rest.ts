import { Codes, ParleyError } from "./errors.js";
import type { Token, User, Presence } from "./types.js";

/** FetchLike is the part of the global fetch the SDK uses. */
export type FetchLike = (input: string, init?: { method?: string; headers?: Record<string, string>; body?: string }) => Promise<{
  status: number;
  ok: boolean;
  text(): Promise<string>;
}>;

/**
 * Rest calls Parley's REST API (docs/openapi.yaml) with a user token, or
 * without one for the public routes. Errors are ParleyErrors with the
 * server's code and HTTP status.
 */
export class Rest {
  private readonly fetch: FetchLike;

  /**
   * baseURL is the server's HTTP address (http://127.0.0.1:8080); token is
   * the user token, if any.
   */
  constructor(readonly baseURL: string, public token?: string, fetchImpl?: FetchLike) {
    this.baseURL = baseURL.replace(/\/+$/, "");
    // Browsers refuse a fetch called on another object ("Illegal invocation").
    this.fetch = fetchImpl ?? (globalThis.fetch.bind(globalThis) as unknown as FetchLike);
  }

  /** request sends method path with an optional JSON body and returns the decoded reply. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.token) headers["Authorization"] = "Bearer " + this.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await this.fetch(this.baseURL + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (e) {
      throw new ParleyError(Codes.Network, `${method} ${path}: ${(e as Error).message}`);
    }
    const text = await res.text();
    let data: any;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    if (!res.ok) {
      const err = data?.error;
      if (err && typeof err.code === "string") throw new ParleyError(err.code, err.message, res.status);
      throw new ParleyError(res.status >= 500 ? Codes.Internal : Codes.InvalidArgument, `${method} ${path}: HTTP ${res.status}`, res.status);
    }
    return data as T;
  }

  /** register creates a user with a password, where the server allows self-registration. */
  register(id: string, password: string, nickname?: string): Promise<{ id: string }> {
    return this.request("POST", "/v1/auth/register", { id, password, ...(nickname ? { nickname } : {}) });
  }

  /** login checks a password and mints a token for one device. */
  login(id: string, password: string, platform: string, device: string): Promise<Token> {
    return this.request("POST", "/v1/auth/login", { id, password, platform, device });
  }

  /** user returns a user's profile (not_found if there is no such user). */
  async user(id: string): Promise<User> {
    const r = await this.request<{ user: User }>("GET", "/v1/users/" + encodeURIComponent(id));
    return r.user;
  }

  /** presence returns the presence of users. */
  async presence(users: string[]): Promise<Presence[]> {
    const r = await this.request<{ presence: Presence[] }>("GET", "/v1/presence?users=" + users.map(encodeURIComponent).join(","));
    return r.presence;
  }
}

/** httpBase turns a WebSocket URL (ws://host:port/v1/ws) into the server's HTTP base URL. */
export function httpBase(wsURL: string): string {
  const u = new URL(wsURL);
  u.protocol = u.protocol === "wss:" ? "https:" : "http:";
  u.pathname = u.pathname.replace(/\/v1\/ws\/?$/, "");
  u.search = "";
  u.hash = "";
  return u.toString().replace(/\/+$/, "");
}
