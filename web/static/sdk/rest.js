import { Codes, ParleyError } from "./errors.js";
/**
 * Rest calls Parley's REST API (docs/openapi.yaml) with a user token, or
 * without one for the public routes. Errors are ParleyErrors with the
 * server's code and HTTP status.
 */
export class Rest {
    baseURL;
    token;
    fetch;
    /**
     * baseURL is the server's HTTP address (http://127.0.0.1:8080); token is
     * the user token, if any.
     */
    constructor(baseURL, token, fetchImpl) {
        this.baseURL = baseURL;
        this.token = token;
        this.baseURL = baseURL.replace(/\/+$/, "");
        // Browsers refuse a fetch called on another object ("Illegal invocation").
        this.fetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
    }
    /** request sends method path with an optional JSON body and returns the decoded reply. */
    async request(method, path, body) {
        const headers = {};
        if (this.token)
            headers["Authorization"] = "Bearer " + this.token;
        if (body !== undefined)
            headers["Content-Type"] = "application/json";
        let res;
        try {
            res = await this.fetch(this.baseURL + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
        }
        catch (e) {
            throw new ParleyError(Codes.Network, `${method} ${path}: ${e.message}`);
        }
        const text = await res.text();
        let data;
        try {
            data = text ? JSON.parse(text) : undefined;
        }
        catch {
            data = undefined;
        }
        if (!res.ok) {
            const err = data?.error;
            if (err && typeof err.code === "string")
                throw new ParleyError(err.code, err.message, res.status);
            throw new ParleyError(res.status >= 500 ? Codes.Internal : Codes.InvalidArgument, `${method} ${path}: HTTP ${res.status}`, res.status);
        }
        return data;
    }
    /** register creates a user with a password, where the server allows self-registration. */
    register(id, password, nickname) {
        return this.request("POST", "/v1/auth/register", { id, password, ...(nickname ? { nickname } : {}) });
    }
    /** login checks a password and mints a token for one device. */
    login(id, password, platform, device) {
        return this.request("POST", "/v1/auth/login", { id, password, platform, device });
    }
    /** user returns a user's profile (not_found if there is no such user). */
    async user(id) {
        const r = await this.request("GET", "/v1/users/" + encodeURIComponent(id));
        return r.user;
    }
    /** presence returns the presence of users. */
    async presence(users) {
        const r = await this.request("GET", "/v1/presence?users=" + users.map(encodeURIComponent).join(","));
        return r.presence;
    }
}
/** httpBase turns a WebSocket URL (ws://host:port/v1/ws) into the server's HTTP base URL. */
export function httpBase(wsURL) {
    const u = new URL(wsURL);
    u.protocol = u.protocol === "wss:" ? "https:" : "http:";
    u.pathname = u.pathname.replace(/\/v1\/ws\/?$/, "");
    u.search = "";
    u.hash = "";
    return u.toString().replace(/\/+$/, "");
}
