// Builds: the daemon's build history (berth's GET /berth/builds: each build's tags, status,
// start, duration and steps with their times and cache hits; a failed step's output), kept
// live by polling every POLL_MS while the view is open (a build's steps change without any
// event on /events), and below it the build cache of /system/df.

import { useEffect, useState } from "preact/hooks";
import { ago, bytes, get, seg, short } from "../api.js";
import { Empty, html } from "../components.js";
import { useStore } from "../store.js";

/** How often the history is read again while the view is open. */
export const POLL_MS = 2000;

/** Seconds as BuildKit prints step times: "0.3s", "12.4s", "2m 5s". */
export function seconds(s) {
  if (s == null || Number.isNaN(s) || s < 0) return "–";
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m ${Math.round(s - m * 60)}s`;
}

/** "5 steps, 2 cached" for a build record. */
export function stepSummary(b) {
  const n = b.StepsRun ?? 0;
  const total = b.TotalSteps && b.TotalSteps !== n ? ` of ${b.TotalSteps}` : "";
  return `${n}${total} step${n === 1 && !total ? "" : "s"}, ${b.CachedSteps ?? 0} cached`;
}

/** A build's or a step's duration: its own while it runs (from its start to `now`, ms). */
export function elapsed(x, now = Date.now()) {
  if (x.Duration != null) return x.Duration;
  const t = Date.parse(x.StartedAt);
  return Number.isNaN(t) ? null : Math.max(0, (now - t) / 1000);
}

/** The tags, or what a build without tags is shown as. */
export function tagsText(b) {
  return b.Tags?.length ? b.Tags.join(", ") : "<none>";
}

function StatusBadge({ status }) {
  return html`<span class=${"badge build-" + status}>${status}</span>`;
}

/** Reads `path` now and every POLL_MS; the last answer, or the error. */
function usePoll(path, keepGoing = () => true) {
  const [state, setState] = useState({ data: null, err: null });
  useEffect(() => {
    let stop = false;
    let timer;
    const tick = () =>
      get(path).then(
        (data) => {
          if (stop) return;
          setState({ data, err: null });
          if (keepGoing(data)) timer = setTimeout(tick, POLL_MS);
        },
        (err) => {
          if (stop) return;
          setState((s) => ({ data: s.data, err }));
          timer = setTimeout(tick, POLL_MS);
        },
      );
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, [path]);
  return state;
}

function History() {
  const { data, err } = usePoll("/berth/builds");
  if (err && !data) {
    return html`<p class="banner error" role="alert">Build history unavailable: ${err.message}${err.status === 404 ? " (this daemon does not record builds)" : ""}</p>`;
  }
  if (!data) return html`<p class="muted" aria-live="polite">Reading the build history…</p>`;
  if (!data.length) return html`<${Empty}>No builds yet. Builds run with <code>berth build</code> or <code>docker build</code> show here as they run.<//>`;
  return html`<table class="list" aria-live="polite">
    <caption class="sr-only">Builds, newest first</caption>
    <thead><tr><th scope="col">Build</th><th scope="col">Tags</th><th scope="col">Status</th><th scope="col">Started</th><th scope="col" class="num">Duration</th><th scope="col">Steps</th><th scope="col">Dockerfile</th></tr></thead>
    <tbody>${data.map(
      (b) => html`<tr key=${b.ID}>
        <td><a href=${"#/builds/" + b.ID}><code>${short(b.ID)}</code></a></td>
        <td class="path">${tagsText(b)}</td>
        <td><${StatusBadge} status=${b.Status} /></td>
        <td class="nowrap">${ago(b.StartedAt)}</td>
        <td class="num">${seconds(elapsed(b))}</td>
        <td class="nowrap">${stepSummary(b)}</td>
        <td class="path">${b.Dockerfile} <span class="muted">(${b.Context})</span></td>
      </tr>`,
    )}</tbody>
  </table>`;
}

/** One build with its steps: `#/builds/<id>`. */
export function BuildView({ id }) {
  const { data: b, err } = usePoll(`/berth/builds/${seg(id)}`, (b) => b.Status === "running");
  const back = html`<p><a href="#/builds">← All builds</a></p>`;
  if (err && !b) return html`<section>${back}<p class="banner error" role="alert">${err.message}</p></section>`;
  if (!b) return html`<section>${back}<p class="muted" aria-live="polite">Reading the build…</p></section>`;
  return html`<section aria-labelledby="h-build">
    ${back}
    <h1 id="h-build" tabindex="-1">Build <code>${short(b.ID)}</code> <${StatusBadge} status=${b.Status} /></h1>
    <dl class="stats">
      <div><dt>Tags</dt><dd>${tagsText(b)}</dd></div>
      <div><dt>Started</dt><dd title=${b.StartedAt}>${ago(b.StartedAt)}</dd></div>
      <div><dt>Duration</dt><dd>${seconds(elapsed(b))}</dd></div>
      <div><dt>Steps</dt><dd>${stepSummary(b)}</dd></div>
      <div><dt>Dockerfile</dt><dd>${b.Dockerfile} (${b.Context})</dd></div>
    </dl>
    ${b.Error ? html`<p class="banner error" role="alert">${b.Error}</p>` : null}
    ${b.ImageID ? html`<p class="summary">Image <a href=${"#/images/" + seg(b.ImageID)}><code>${short(b.ImageID)}</code></a></p>` : null}
    <ol class="build-steps" aria-label="Steps">
      ${(b.Steps || []).map(
        (s) => html`<li key=${s.Index} class=${"build-step step-" + s.Status}>
          <div class="step-head">
            <span class="muted">#${s.Index}</span>
            ${s.Stage ? html`<span class="muted">[${s.Stage}]</span>` : null}
            <code class="step-text">${s.Text}</code>
            ${s.Cached ? html`<span class="badge build-cached">CACHED</span>` : null}
            ${s.Status !== "done" ? html`<${StatusBadge} status=${s.Status} />` : null}
            <span class="num step-time">${seconds(elapsed(s))}</span>
          </div>
          ${s.Output ? html`<pre class="log-lines step-output" aria-label=${"Output of step " + s.Index}>${s.Output}</pre>` : null}
        </li>`,
      )}
    </ol>
  </section>`;
}

function Cache() {
  const store = useStore();
  const cache = [...(store.df?.BuildCache || [])].sort((a, b) => Date.parse(b.LastUsedAt || b.CreatedAt) - Date.parse(a.LastUsedAt || a.CreatedAt));
  const total = cache.reduce((s, c) => s + (c.Size || 0), 0);
  return html`<h2 id="h-cache">Build cache</h2>
    <p class="summary">${cache.length} records, ${bytes(total)}. Cached steps are reused by the next build with the same inputs.</p>
    ${cache.length
      ? html`<table class="list">
          <caption class="sr-only">Build cache records</caption>
          <thead><tr><th scope="col">ID</th><th scope="col">Kind</th><th scope="col">Description</th><th scope="col" class="num">Size</th><th scope="col">Uses</th><th scope="col">Last used</th><th scope="col">In use</th></tr></thead>
          <tbody>${cache.map(
            (c) => html`<tr key=${c.ID}>
              <td><code>${short(c.ID)}</code></td>
              <td>${c.Type}</td>
              <td class="path">${c.Description}</td>
              <td class="num">${bytes(c.Size)}</td>
              <td class="num">${c.UsageCount ?? "–"}</td>
              <td class="nowrap">${c.LastUsedAt ? ago(c.LastUsedAt) : "–"}</td>
              <td>${c.InUse ? "yes" : "no"}</td>
            </tr>`,
          )}</tbody>
        </table>`
      : html`<${Empty}>The build cache is empty.<//>`}`;
}

export function BuildsView() {
  return html`<section aria-labelledby="h-builds">
    <h1 id="h-builds" tabindex="-1">Builds</h1>
    <p class="summary">Builds the daemon ran, newest first (the last 100), with each step's time and cache hits.</p>
    <${History} />
    <${Cache} />
  </section>`;
}
