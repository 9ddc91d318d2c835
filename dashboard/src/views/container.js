// One container: its state and actions, live logs with search, a terminal (exec with a tty
// through the dashboard's websocket, drawn by xterm.js) and what inspect says of it.

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { Empty, html, Sparkline, StateBadge } from "../components.js";
import { bytes, get, post, socket } from "../api.js";
import { onEvent, useStore } from "../store.js";
import { useStats } from "../stats.js";
import { Lifecycle, nameOf, PortLinks } from "./containers.js";

const MAX_LINES = 5000;

function Logs({ id, running }) {
  const [lines, setLines] = useState([]);
  const [query, setQuery] = useState("");
  const [status, setStatus] = useState("connecting");
  const [generation, setGeneration] = useState(0);
  const box = useRef();
  const follow = useRef(true);
  useEffect(() => {
    const ws = socket("logs", id, { tail: "500" });
    const dec = new TextDecoder();
    let partial = "";
    let acc = [];
    setLines([]);
    ws.onopen = () => setStatus("live");
    ws.onmessage = (m) => {
      const text = typeof m.data === "string" ? m.data : dec.decode(m.data, { stream: true });
      const parts = (partial + text).split("\n");
      partial = parts.pop();
      acc = [...acc, ...parts].slice(-MAX_LINES);
      setLines(partial ? [...acc, partial] : acc);
    };
    ws.onclose = () => setStatus("ended");
    ws.onerror = () => setStatus("ended");
    return () => ws.close();
  }, [id, generation]);
  // A container that starts again writes to a new stream: follow it.
  useEffect(() => {
    if (running && status === "ended") setGeneration((g) => g + 1);
  }, [running]);
  useEffect(() => {
    const el = box.current;
    if (el && follow.current) el.scrollTop = el.scrollHeight;
  }, [lines]);
  const q = query.toLowerCase();
  const shown = q ? lines.filter((l) => l.toLowerCase().includes(q)) : lines;
  const mark = (l) => {
    if (!q) return l;
    const i = l.toLowerCase().indexOf(q);
    return html`${l.slice(0, i)}<mark>${l.slice(i, i + q.length)}</mark>${l.slice(i + q.length)}`;
  };
  return html`<div class="logs">
    <div class="toolbar">
      <label for="log-search">Search logs</label>
      <input id="log-search" type="search" value=${query} onInput=${(e) => setQuery(e.target.value)} placeholder="text to find" />
      <span class="muted" aria-live="polite">${q ? `${shown.length} of ${lines.length} lines match` : `${lines.length} lines`} · ${status}</span>
      ${status === "ended" ? html`<button type="button" onClick=${() => setGeneration((g) => g + 1)}>Reconnect</button>` : null}
    </div>
    <pre class="log-lines" ref=${box} tabindex="0" aria-label="Container logs"
      onScroll=${(e) => {
        const el = e.currentTarget;
        follow.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 4;
      }}
    >${shown.map((l, i) => html`<div key=${i}>${mark(l)}</div>`)}</pre>
  </div>`;
}

/**
 * A terminal: `mode` "exec" runs a new process with a tty (POST /containers/{id}/exec, then
 * the exec websocket); "attach" joins the container's own stdio (the attach websocket).
 */
function TerminalPane({ id, running, mode, tty }) {
  const host = useRef();
  const [shell, setShell] = useState("sh");
  const [session, setSession] = useState(0);
  const [status, setStatus] = useState("");
  useEffect(() => {
    if (!session) return undefined;
    const term = new Terminal({
      cursorBlink: true,
      fontSize: 14,
      fontFamily: "DejaVu Sans Mono, monospace",
      theme: { background: "#111318", foreground: "#e8e8e8" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current);
    fit.fit();
    let ws = null;
    const enc = new TextEncoder();
    let closed = false;
    (async () => {
      try {
        setStatus("starting");
        const size = { cols: String(term.cols), rows: String(term.rows) };
        if (mode === "attach") {
          ws = socket("attach", id, size);
        } else {
          const ex = await post(`/containers/${encodeURIComponent(id)}/exec`, null, {
            AttachStdin: true,
            AttachStdout: true,
            AttachStderr: true,
            Tty: true,
            Cmd: shell.trim().split(/\s+/),
            Env: ["TERM=xterm-256color"],
          });
          if (closed) return;
          ws = socket("exec", ex.Id, size);
        }
        ws.onopen = () => {
          setStatus("connected");
          term.focus();
        };
        // Without a tty, output has bare newlines: the terminal needs carriage returns too.
        const fix = (d) => (tty === false ? d.replace(/\r?\n/g, "\r\n") : d);
        const dec = new TextDecoder();
        ws.onmessage = (m) =>
          term.write(typeof m.data === "string" ? m.data : tty === false ? fix(dec.decode(m.data, { stream: true })) : new Uint8Array(m.data));
        ws.onclose = () => {
          setStatus("ended");
          term.write("\r\n[session ended]\r\n");
        };
        term.onData((d) => ws.readyState === 1 && ws.send(enc.encode(d)));
        term.onResize(({ cols, rows }) => ws.readyState === 1 && ws.send(JSON.stringify({ type: "resize", cols, rows })));
      } catch (e) {
        setStatus("failed");
        term.write(`\r\n${e.message}\r\n`);
      }
    })();
    const onWin = () => fit.fit();
    addEventListener("resize", onWin);
    return () => {
      closed = true;
      removeEventListener("resize", onWin);
      if (ws) ws.close();
      term.dispose();
    };
  }, [session]);
  return html`<div class="terminal">
    <form class="toolbar" onSubmit=${(e) => {
      e.preventDefault();
      setSession((s) => s + 1);
    }}>
      ${mode === "attach"
        ? html`<span>The container's own input and output${tty ? "" : " (no tty: output only as it is written)"}.</span>
            <button type="submit" disabled=${!running}>${session ? "Attach again" : "Attach"}</button>`
        : html`<label for="shell">Command</label>
            <input id="shell" value=${shell} onInput=${(e) => setShell(e.target.value)} size="12" />
            <button type="submit" disabled=${!running}>${session ? "New session" : "Open terminal"}</button>`}
      <span class="muted" aria-live="polite">${running ? status : "The container is not running."}</span>
    </form>
    <div class="xterm-host" ref=${host} role="region" aria-label="Terminal"></div>
  </div>`;
}

function Details({ info }) {
  if (!info) return null;
  const rows = [
    ["ID", info.Id],
    ["Image", info.Config?.Image],
    ["Command", [...(info.Config?.Entrypoint || []), ...(info.Config?.Cmd || [])].join(" ")],
    ["Created", info.Created],
    ["Started", info.State?.StartedAt],
    ["Restart policy", info.HostConfig?.RestartPolicy?.Name || "no"],
    ["Health", info.State?.Health?.Status || "no health check"],
    ["Mounts", (info.Mounts || []).map((m) => `${m.Name || m.Source} → ${m.Destination}`).join(", ") || "none"],
    ["Networks", Object.keys(info.NetworkSettings?.Networks || {}).join(", ") || "none"],
    ["Environment", (info.Config?.Env || []).join("  ")],
  ];
  return html`<dl class="details">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v || "–"}</dd>`)}</dl>`;
}

export function ContainerView({ id }) {
  const store = useStore();
  const [info, setInfo] = useState(null);
  const [error, setError] = useState(null);
  const [tab, setTab] = useState("logs");
  const summary = useMemo(
    () => store.containers.find((c) => nameOf(c) === id || c.Id === id || c.Id.startsWith(id)),
    [store.tick, id],
  );
  const fullId = useRef(null);
  const load = () =>
    get(`/containers/${encodeURIComponent(id)}/json`).then(
      (i) => {
        fullId.current = i.Id;
        setInfo(i);
        setError(null);
      },
      (e) => setError(e.message),
    );
  useEffect(() => {
    fullId.current = null;
    load();
    return onEvent((ev) => {
      const about = ev.Actor?.ID || ev.id;
      if (ev.Type === "container" && (ev.Actor?.Attributes?.name === id || (about && about === fullId.current))) load();
    });
  }, [id]);
  const running = summary?.State === "running";
  const { cpu, mem, limit } = useStats(summary?.Id || id, running);
  if (error && !summary) {
    return html`<section><h1 tabindex="-1">Container ${id}</h1><p class="error" role="alert">${error}</p>
      <p><a href="#/containers">Back to containers</a></p></section>`;
  }
  const tabs = [
    ["logs", "Logs"],
    ["terminal", "Terminal"],
    ["attach", "Attach"],
    ["details", "Details"],
  ];
  return html`<section aria-labelledby="h-container">
    <p class="crumbs"><a href="#/containers">Containers</a> /</p>
    <h1 id="h-container" tabindex="-1">${id}</h1>
    ${summary
      ? html`<div class="facts">
          <${StateBadge} state=${summary.State} status=${summary.Status} />
          <span>${summary.Status}</span>
          <span>Image <a href=${"#/images/" + encodeURIComponent(summary.Image)}>${summary.Image}</a></span>
          <span>Ports <${PortLinks} ports=${summary.Ports} /></span>
          ${running
            ? html`<${Sparkline} values=${cpu} max=${100} label="CPU" text=${`${(cpu[cpu.length - 1] || 0).toFixed(1)}%`} />
                <${Sparkline} values=${mem} max=${limit && limit < 1e15 ? limit : 0} label="Memory" text=${bytes(mem[mem.length - 1] || 0)} />`
            : null}
          <${Lifecycle} c=${summary} />
        </div>`
      : html`<${Empty}>This container is gone.<//>`}
    <div role="tablist" aria-label="Container views" class="tabs">
      ${tabs.map(
        ([k, label]) => html`<button type="button" role="tab" id=${"tab-" + k} aria-selected=${tab === k ? "true" : "false"}
          aria-controls=${"panel-" + k} tabindex=${tab === k ? 0 : -1}
          onClick=${() => setTab(k)}
          onKeyDown=${(e) => {
            const i = tabs.findIndex(([t]) => t === tab);
            if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
              const n = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length][0];
              setTab(n);
              document.getElementById("tab-" + n)?.focus();
            }
          }}>${label}</button>`,
      )}
    </div>
    <div role="tabpanel" id=${"panel-" + tab} aria-labelledby=${"tab-" + tab}>
      ${tab === "logs" ? html`<${Logs} id=${id} running=${running} />` : null}
      ${tab === "terminal" ? html`<${TerminalPane} id=${id} running=${running} mode="exec" />` : null}
      ${tab === "attach" ? html`<${TerminalPane} key="attach" id=${id} running=${running} mode="attach" tty=${info?.Config?.Tty ?? false} />` : null}
      ${tab === "details" ? html`<${Details} info=${info} />` : null}
    </div>
  </section>`;
}
