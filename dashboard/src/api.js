// The Engine API as the page sees it: every call goes to the dashboard's forwarder at
// /api/… (the token travels in an HttpOnly cookie), streams of JSON lines (events, stats,
// push progress) are read incrementally, and websockets carry logs, exec and attach.

/** An error the daemon (or the forwarder) answered with; `message` is Docker's wording. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Encodes an object name for a path: image references keep their `/` and `:`. */
export function seg(name) {
  return encodeURIComponent(name).replace(/%2F/gi, "/").replace(/%3A/gi, ":");
}

async function failure(resp) {
  let msg = `${resp.status} ${resp.statusText}`;
  try {
    const text = await resp.text();
    try {
      msg = JSON.parse(text).message || msg;
    } catch {
      if (text.trim()) msg = text.trim();
    }
  } catch {
    /* the body is gone: keep the status line */
  }
  return new ApiError(resp.status, msg);
}

/** Sends a request; resolves to the parsed JSON (or null for an empty answer). */
export async function api(method, path, { query, body, signal } = {}) {
  const qs = query ? "?" + new URLSearchParams(query).toString() : "";
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(`/api${path}${qs}`, init);
  if (!resp.ok) throw await failure(resp);
  const text = await resp.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export const get = (path, query, opts = {}) => api("GET", path, { query, ...opts });
export const post = (path, query, body) => api("POST", path, { query, body });
export const del = (path, query) => api("DELETE", path, { query });

/**
 * Reads a stream of JSON lines, calling `onMessage` for each; resolves when the stream ends
 * or `signal` aborts it.
 */
export async function streamJson(path, query, onMessage, { signal, method = "GET" } = {}) {
  const qs = query ? "?" + new URLSearchParams(query).toString() : "";
  const resp = await fetch(`/api${path}${qs}`, { method, signal });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    }
    if (chunk.done) break;
    buf += dec.decode(chunk.value, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) {
        try {
          onMessage(JSON.parse(line));
        } catch {
          /* not JSON: skip the line */
        }
      }
    }
  }
  if (buf.trim()) {
    try {
      onMessage(JSON.parse(buf));
    } catch {
      /* trailing garbage */
    }
  }
}

/** Opens one of the dashboard's websockets (`logs`, `exec`, `attach`). */
export function socket(kind, id, query = {}) {
  const qs = new URLSearchParams(query).toString();
  const ws = new WebSocket(`ws://${location.host}/ws/${kind}/${encodeURIComponent(id)}${qs ? "?" + qs : ""}`);
  ws.binaryType = "arraybuffer";
  return ws;
}

/** Bytes as docker prints them (1000-based: "12.3MB"). */
export function bytes(n) {
  if (n == null || n < 0) return "–";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)}${units[i]}`;
}

/** "3 minutes ago" from unix seconds or an RFC 3339 string. */
export function ago(t) {
  const ms = typeof t === "number" ? t * 1000 : Date.parse(t);
  if (!ms || Number.isNaN(ms) || ms < 0) return "–";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return `${human(s)} ago`;
}

/** A duration in seconds, in words ("2 hours"). */
export function human(s) {
  if (s < 60) return `${s} second${s === 1 ? "" : "s"}`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} minute${m === 1 ? "" : "s"}`;
  const h = Math.round(s / 3600);
  if (h < 48) return `${h} hour${h === 1 ? "" : "s"}`;
  const d = Math.round(s / 86400);
  return `${d} days`;
}

/** The short form of an ID (`sha256:` dropped, 12 characters). */
export function short(id) {
  return (id || "").replace(/^sha256:/, "").slice(0, 12);
}
