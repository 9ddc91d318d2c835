// One image: where its size comes from (the daemon's /berth/images/{name}/explore: each
// layer's instruction, size and files; the biggest files and directories; bytes wasted by
// files a later layer overwrites or deletes, with a hint naming the instruction), and its
// history as `docker history` shows it.

import { useEffect, useState } from "preact/hooks";
import { Empty, html } from "../components.js";
import { ago, bytes, get, seg, short } from "../api.js";

function Bar({ part, whole, label }) {
  const pct = whole > 0 ? Math.min(100, (part / whole) * 100) : 0;
  return html`<span class="bar" role="img" aria-label=${`${label}: ${pct.toFixed(0)}%`}><span style=${`width:${pct}%`}></span></span>`;
}

function Layers({ x }) {
  const max = Math.max(1, ...x.Layers.map((l) => l.Size));
  return html`<section aria-labelledby="h-layers">
    <h2 id="h-layers">Layers</h2>
    <ol class="layers">
      ${x.Layers.map(
        (l) => html`<li key=${l.Index} class=${l.EmptyLayer ? "empty-layer" : ""}>
          <details>
            <summary>
              <span class="layer-idx">#${l.Index}</span>
              <code class="instr" title=${l.CreatedBy}>${l.Instruction || l.CreatedBy || "(no instruction)"}</code>
              <span class="num">${bytes(l.Size)}</span>
              <${Bar} part=${l.Size} whole=${max} label=${`Layer ${l.Index} size relative to the largest`} />
              <span class="muted small">${l.EmptyLayer ? "no files" : `+${l.Added} ~${l.Modified} −${l.Deleted}`}</span>
            </summary>
            ${l.Files?.length
              ? html`<table class="files">
                  <caption class="sr-only">Files of layer ${l.Index}</caption>
                  <thead><tr><th scope="col">Change</th><th scope="col">Path</th><th scope="col">Type</th><th scope="col" class="num">Size</th></tr></thead>
                  <tbody>${l.Files.map(
                    (f) => html`<tr><td><span class=${"change " + f.Change}>${f.Change}</span></td><td class="path">${f.Path}</td><td>${f.Type}</td><td class="num">${bytes(f.Size)}</td></tr>`,
                  )}</tbody>
                </table>
                ${l.Added + l.Modified + l.Deleted > l.Files.length ? html`<p class="muted small">The ${l.Files.length} largest of ${l.Added + l.Modified + l.Deleted} entries.</p>` : null}`
              : html`<p class="muted small">This step changed no files.</p>`}
          </details>
        </li>`,
      )}
    </ol>
  </section>`;
}

function Biggest({ x }) {
  const [kind, setKind] = useState("file");
  const list = (x.Biggest || []).filter((b) => b.Type === kind).slice(0, 25);
  const max = Math.max(1, ...list.map((b) => b.Size));
  return html`<section aria-labelledby="h-biggest">
    <h2 id="h-biggest">Biggest ${kind === "file" ? "files" : "directories"}</h2>
    <div class="toolbar" role="group" aria-label="Show">
      <button type="button" aria-pressed=${kind === "file" ? "true" : "false"} onClick=${() => setKind("file")}>Files</button>
      <button type="button" aria-pressed=${kind === "dir" ? "true" : "false"} onClick=${() => setKind("dir")}>Directories</button>
    </div>
    <table class="files">
      <caption class="sr-only">Biggest ${kind === "file" ? "files" : "directories"} of the image</caption>
      <thead><tr><th scope="col">Path</th><th scope="col" class="num">Size</th><th scope="col"><span class="sr-only">Share</span></th><th scope="col">Layer</th></tr></thead>
      <tbody>${list.map(
        (b) => html`<tr><td class="path">${b.Path}</td><td class="num">${bytes(b.Size)}</td><td><${Bar} part=${b.Size} whole=${max} label="Relative size" /></td><td>#${b.Layer}</td></tr>`,
      )}</tbody>
    </table>
  </section>`;
}

function Wasted({ x }) {
  return html`<section aria-labelledby="h-wasted">
    <h2 id="h-wasted">Wasted bytes: <span class="wasted-total">${bytes(x.WastedBytes)}</span></h2>
    ${x.Wasted?.length
      ? html`<table class="files wasted">
          <caption class="sr-only">Files stored in a layer but overwritten or deleted by a later one</caption>
          <thead><tr><th scope="col">Path</th><th scope="col" class="num">Size</th><th scope="col">Added by</th><th scope="col">Then</th><th scope="col">What to do</th></tr></thead>
          <tbody>${x.Wasted.slice(0, 100).map(
            (w) => html`<tr>
              <td class="path">${w.Path}</td>
              <td class="num">${bytes(w.Size)}</td>
              <td>#${w.Layer} <code class="small instr-cell" title=${x.Layers[w.Layer]?.Instruction || ""}>${x.Layers[w.Layer]?.Instruction || ""}</code></td>
              <td>${w.How} by #${w.By}</td>
              <td class="hint">${w.Hint}</td>
            </tr>`,
          )}</tbody>
        </table>`
      : html`<${Empty}>No layer stores a file that a later layer overwrites or deletes.<//>`}
  </section>`;
}

function Explore({ name }) {
  const [x, setX] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    setX(null);
    setErr(null);
    get(`/berth/images/${seg(name)}/explore`).then(setX, (e) => setErr(e));
  }, [name]);
  if (err) {
    return html`<p class="banner error" role="alert">Size analysis unavailable: ${err.message}${err.status === 404 && /page not found/i.test(err.message) ? " (this daemon has no explore route)" : ""}</p>`;
  }
  if (!x) return html`<p class="muted" aria-live="polite">Reading the layers…</p>`;
  return html`<div class="explore">
    <dl class="stats">
      <div><dt>Image size</dt><dd>${bytes(x.Size)}</dd></div>
      <div><dt>Stored in layers</dt><dd>${bytes(x.LayersSize)}</dd></div>
      <div><dt>Wasted</dt><dd class=${x.WastedBytes > 0 ? "warn" : ""}>${bytes(x.WastedBytes)}</dd></div>
      <div><dt>Efficiency</dt><dd>${(x.Efficiency * 100).toFixed(1)}%</dd></div>
    </dl>
    <${Wasted} x=${x} />
    <${Layers} x=${x} />
    <${Biggest} x=${x} />
  </div>`;
}

function History({ name }) {
  const [h, setH] = useState(null);
  const [err, setErr] = useState(null);
  useEffect(() => {
    get(`/images/${seg(name)}/history`).then(setH, (e) => setErr(e.message));
  }, [name]);
  if (err) return html`<p class="error" role="alert">${err}</p>`;
  if (!h) return null;
  return html`<section aria-labelledby="h-history">
    <h2 id="h-history">History</h2>
    <table class="files">
      <caption class="sr-only">Image history, newest first</caption>
      <thead><tr><th scope="col">Created</th><th scope="col">Created by</th><th scope="col" class="num">Size</th><th scope="col">Comment</th></tr></thead>
      <tbody>${h.map(
        (r) => html`<tr><td class="nowrap">${ago(r.Created)}</td><td class="path">${r.CreatedBy}</td><td class="num">${bytes(r.Size)}</td><td>${r.Comment}</td></tr>`,
      )}</tbody>
    </table>
  </section>`;
}

export function ImageView({ name }) {
  const [info, setInfo] = useState(null);
  const [err, setErr] = useState(null);
  const [tab, setTab] = useState("size");
  useEffect(() => {
    get(`/images/${seg(name)}/json`).then(setInfo, (e) => setErr(e.message));
  }, [name]);
  return html`<section aria-labelledby="h-image">
    <p class="crumbs"><a href="#/images">Images</a> /</p>
    <h1 id="h-image" tabindex="-1">${name}</h1>
    ${err ? html`<p class="error" role="alert">${err}</p>` : null}
    ${info
      ? html`<div class="facts">
          <span>ID <code>${short(info.Id)}</code></span>
          <span>${bytes(info.Size)}</span>
          <span>created ${ago(info.Created)}</span>
          <span>${info.Os}/${info.Architecture}</span>
          ${info.Config?.ExposedPorts ? html`<span>exposes ${Object.keys(info.Config.ExposedPorts).join(", ")}</span>` : null}
        </div>`
      : null}
    <div class="toolbar" role="group" aria-label="Image views">
      <button type="button" aria-pressed=${tab === "size" ? "true" : "false"} onClick=${() => setTab("size")}>Where the size comes from</button>
      <button type="button" aria-pressed=${tab === "history" ? "true" : "false"} onClick=${() => setTab("history")}>History</button>
    </div>
    ${tab === "size" ? html`<${Explore} name=${name} />` : html`<${History} name=${name} />`}
  </section>`;
}
