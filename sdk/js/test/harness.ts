// A real `parley serve` on loopback for the SDK's tests: the binary is built
// once per test process with `go build ./cmd/parley` into a temporary
// directory, and every server gets its own data directory and admin key.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { Client, type ClientOptions, type WebSocketConstructor } from "../src/index.js";

export const repoRoot = resolve(fileURLToPath(import.meta.url), "../../../../..");
export const adminKey = "sdk-test-admin-key";

let binary: string | undefined;
let binDir: string | undefined;

/** parleyBinary builds the server binary once and returns its path. */
export function parleyBinary(): string {
  if (process.env.PARLEY_BIN) return process.env.PARLEY_BIN;
  if (!binary) {
    binDir = mkdtempSync(join(tmpdir(), "parley-sdk-bin-"));
    binary = join(binDir, "parley");
    execFileSync("go", ["build", "-o", binary, "./cmd/parley"], { cwd: repoRoot, stdio: "inherit" });
    process.on("exit", () => rmSync(binDir!, { recursive: true, force: true }));
  }
  return binary;
}

/** Server is one running `parley serve`. */
export class Server {
  proc?: ChildProcess;
  addr = "";
  readonly dataDir: string;
  private exited?: Promise<void>;
  private readonly clients: Client[] = [];

  constructor(readonly args: string[] = []) {
    this.dataDir = mkdtempSync(join(tmpdir(), "parley-sdk-data-"));
  }

  get httpURL(): string {
    return "http://" + this.addr;
  }
  get wsURL(): string {
    return "ws://" + this.addr + "/v1/ws";
  }

  /** start runs the server (on the port it had before, if restarted) and waits until it listens. */
  async start(): Promise<void> {
    const listen = this.addr || "127.0.0.1:0";
    const proc = spawn(parleyBinary(), ["serve", "--listen", listen, "--data-dir", this.dataDir, "--store-sync", "normal", ...this.args], {
      env: { ...process.env, PARLEY_ADMIN_KEY: adminKey },
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.proc = proc;
    this.exited = new Promise((res) => proc.on("exit", () => res()));
    this.addr = await new Promise<string>((res, rej) => {
      let buf = "";
      const onData = (chunk: Buffer) => {
        buf += chunk.toString();
        const m = /"parley serving" addr=(\S+)/.exec(buf);
        if (m) {
          proc.stderr!.off("data", onData);
          proc.stderr!.resume();
          res(m[1]);
        }
      };
      proc.stderr!.on("data", onData);
      proc.on("exit", (code) => rej(new Error(`parley exited with ${code}: ${buf}`)));
    });
  }

  /** stop shuts the server down gracefully (SIGTERM) and waits for it to exit. */
  async stop(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    await this.exited;
  }

  /** destroy stops the server and removes its data. */
  async destroy(): Promise<void> {
    for (const c of this.clients) c.close();
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** admin calls the REST API with the admin key. */
  async admin<T = any>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(this.httpURL + path, {
      method,
      headers: { Authorization: "Bearer " + adminKey, "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** user creates a user and returns a token for one of its devices. */
  async user(id: string, device = "d1", ttlSeconds = 0): Promise<string> {
    await this.admin("POST", "/v1/users", { id }).catch((e) => {
      if (!String(e).includes("already_exists")) throw e;
    });
    return this.token(id, device, ttlSeconds);
  }

  async token(id: string, device = "d1", ttlSeconds = 0): Promise<string> {
    const r = await this.admin<{ token: string }>("POST", `/v1/users/${id}/tokens`, { platform: "linux", device, ttl_seconds: ttlSeconds });
    return r.token;
  }

  /** options are a client's options for this server, with the ws package's WebSocket. */
  options(token: string | (() => Promise<string>), opts: Partial<ClientOptions> = {}): ClientOptions {
    return {
      url: this.wsURL,
      ...(typeof token === "string" ? { token } : { tokenSource: token }),
      WebSocket: WebSocket as unknown as WebSocketConstructor,
      backoffMinMs: 20,
      backoffMaxMs: 200,
      ...opts,
    };
  }

  /** client connects an SDK client with options. */
  async client(token: string | (() => Promise<string>), opts: Partial<ClientOptions> = {}): Promise<Client> {
    return this.track(await Client.connect(this.options(token, opts)));
  }

  /** track has destroy close c: a test that fails before closing a client
   * it made itself must not leave it reconnecting, which keeps the test
   * process from exiting. */
  track(c: Client): Client {
    this.clients.push(c);
    return c;
  }
}

/** waitFor polls cond until it holds, failing after timeoutMs. */
export async function waitFor(what: string, cond: () => boolean, timeoutMs = 10000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** nextEvent resolves with the first event of type from c that satisfies pred. */
export function nextEvent<K extends keyof import("../src/index.js").ClientEvents>(
  c: Client,
  type: K,
  pred: (ev: import("../src/index.js").ClientEvents[K]) => boolean = () => true,
  timeoutMs = 10000,
): Promise<import("../src/index.js").ClientEvents[K]> {
  return new Promise((res, rej) => {
    const t = setTimeout(() => {
      off();
      rej(new Error("timed out waiting for event " + type));
    }, timeoutMs);
    const off = c.on(type, (ev) => {
      if (pred(ev)) {
        clearTimeout(t);
        off();
        res(ev);
      }
    });
  });
}
