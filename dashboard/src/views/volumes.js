// Volumes: size and users (from /system/df and the container list), remove, and a file
// browser. The Engine API has no call that lists a volume's files, and the dashboard never
// reads the data root, so browsing goes through the archive API of a container that mounts
// the volume (GET /containers/{id}/archive?path=…, a tar read here); a volume no container
// mounts cannot be browsed, and the page says so.

import { useEffect, useState } from "preact/hooks";
import { ConfirmButton, Dialog, Empty, html } from "../components.js";
import { ApiError, bytes, del } from "../api.js";
import { useStore } from "../store.js";

/** Reads the entries of a tar archive: [{ name, size, type }] ("file", "dir", "link"). */
export function readTar(buf) {
  const u8 = new Uint8Array(buf);
  const dec = new TextDecoder();
  const str = (o, n) => dec.decode(u8.subarray(o, o + n)).replace(/\0.*$/s, "");
  const out = [];
  let off = 0;
  let longName = null;
  while (off + 512 <= u8.length) {
    if (u8.subarray(off, off + 512).every((b) => b === 0)) break;
    let name = str(off, 100);
    const size = parseInt(str(off + 124, 12).trim() || "0", 8) || 0;
    const flag = String.fromCharCode(u8[off + 156] || 48);
    const prefix = str(off + 257, 6).startsWith("ustar") ? str(off + 345, 155) : "";
    if (prefix) name = `${prefix}/${name}`;
    const body = off + 512;
    off = body + Math.ceil(size / 512) * 512;
    if (flag === "L") {
      longName = dec.decode(u8.subarray(body, body + size)).replace(/\0.*$/s, "");
      continue;
    }
    if (flag === "x" || flag === "g") continue;
    if (longName) {
      name = longName;
      longName = null;
    }
    const type = flag === "5" ? "dir" : flag === "2" || flag === "1" ? "link" : "file";
    out.push({ name: name.replace(/\/$/, ""), size: type === "file" ? size : 0, type });
  }
  return out;
}

/** The direct children of the archive's top directory, directories sized by their files. */
export function children(entries) {
  const top = entries[0]?.name.split("/")[0];
  const kids = new Map();
  for (const e of entries) {
    const parts = e.name.split("/");
    if (parts[0] !== top || parts.length < 2) continue;
    const k = parts[1];
    const cur = kids.get(k) || { name: k, size: 0, type: parts.length === 2 ? e.type : "dir" };
    if (parts.length === 2) cur.type = e.type;
    cur.size += e.size;
    kids.set(k, cur);
  }
  return [...kids.values()].sort((a, b) => (b.type === "dir") - (a.type === "dir") || b.size - a.size);
}

function Browser({ volume, via, onClose }) {
  const [path, setPath] = useState("");
  const [list, setList] = useState(null);
  const [err, setErr] = useState(null);
  const root = via.mount.Destination;
  useEffect(() => {
    setList(null);
    setErr(null);
    const q = new URLSearchParams({ path: `${root}${path ? "/" + path : ""}` });
    fetch(`/api/containers/${encodeURIComponent(via.container.Id)}/archive?${q}`)
      .then(async (r) => {
        if (!r.ok) throw new ApiError(r.status, (await r.json().catch(() => ({}))).message || r.statusText);
        return r.arrayBuffer();
      })
      .then((b) => setList(children(readTar(b))), (e) => setErr(e.message));
  }, [path]);
  const up = path.split("/").slice(0, -1).join("/");
  return html`<${Dialog} title=${`Files of volume ${volume}`} onClose=${onClose}>
    <p class="muted small">Read through container ${via.container.Names[0].slice(1)}, which mounts it at ${root}.</p>
    <p><code>/${path}</code></p>
    ${err ? html`<p class="error" role="alert">${err}</p>` : null}
    ${list === null && !err ? html`<p aria-live="polite">Reading…</p>` : null}
    ${list
      ? html`<table class="files">
          <caption class="sr-only">Entries of /${path}</caption>
          <thead><tr><th scope="col">Name</th><th scope="col" class="num">Size</th></tr></thead>
          <tbody>
            ${path ? html`<tr><td><button type="button" class="link" onClick=${() => setPath(up)}>.. (up)</button></td><td></td></tr>` : null}
            ${list.map(
              (e) => html`<tr><td>${e.type === "dir"
                ? html`<button type="button" class="link" onClick=${() => setPath(path ? `${path}/${e.name}` : e.name)}>${e.name}/</button>`
                : e.name}</td><td class="num">${bytes(e.size)}</td></tr>`,
            )}
          </tbody>
        </table>
        ${list.length ? null : html`<${Empty}>Empty.<//>`}`
      : null}
    <div class="actions"><button type="button" onClick=${onClose}>Close</button></div>
  <//>`;
}

export function VolumesView() {
  const store = useStore();
  const [browse, setBrowse] = useState(null);
  const sizes = new Map((store.df?.Volumes || []).map((v) => [v.Name, v.UsageData]));
  const users = (name) =>
    store.containers
      .map((c) => ({ container: c, mount: (c.Mounts || []).find((m) => m.Type === "volume" && m.Name === name) }))
      .filter((x) => x.mount);
  const vols = [...store.volumes].sort((a, b) => a.Name.localeCompare(b.Name));
  return html`<section aria-labelledby="h-volumes">
    <h1 id="h-volumes" tabindex="-1">Volumes</h1>
    ${vols.length
      ? html`<table class="list">
          <caption class="sr-only">Volumes</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Driver</th><th scope="col" class="num">Size</th><th scope="col">Used by</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>${vols.map((v) => {
            const u = users(v.Name);
            const size = sizes.get(v.Name)?.Size;
            return html`<tr key=${v.Name}>
              <th scope="row" class="ellipsis" title=${v.Name}>${v.Name}</th>
              <td>${v.Driver}</td>
              <td class="num">${size >= 0 ? bytes(size) : "–"}</td>
              <td>${u.length ? u.map((x) => html`<a class="chip" href=${"#/containers/" + encodeURIComponent(x.container.Names[0].slice(1))}>${x.container.Names[0].slice(1)}</a>`) : html`<span class="muted">none</span>`}</td>
              <td><div class="row-actions" role="group" aria-label=${`Actions for volume ${v.Name}`}>
                <button type="button" disabled=${!u.length} title=${u.length ? "" : "No container mounts it: the Engine API can only read files through one"}
                  onClick=${() => setBrowse({ volume: v.Name, via: u[0] })}>Browse files</button>
                <${ConfirmButton} label="Remove" question=${`Remove volume ${v.Name}?`} action=${() => del(`/volumes/${encodeURIComponent(v.Name)}`)} done=${`Removed volume ${v.Name}`}>
                  <p>Its data is deleted for good.</p>
                <//>
              </div></td>
            </tr>`;
          })}</tbody>
        </table>`
      : html`<${Empty}>No volumes.<//>`}
    ${browse ? html`<${Browser} volume=${browse.volume} via=${browse.via} onClose=${() => setBrowse(null)} />` : null}
  </section>`;
}
