// Images: tags, size, age and the containers using each; run one with a small form, tag,
// push (with the daemon's progress), remove (Docker's refusal shown when it is in use).

import { useState } from "preact/hooks";
import { ConfirmButton, Dialog, Empty, Field, html, notify } from "../components.js";
import { ago, bytes, del, post, seg, short, streamJson } from "../api.js";
import { useStore } from "../store.js";

/** Parses `-p` forms: "8080:80", "127.0.0.1:8080:80", "[::1]::80", "80", "53:53/udp". */
export function parsePort(spec) {
  const bad = () => new Error(`invalid port "${spec}": use [IP:]HOST:CONTAINER[/PROTO], e.g. 8080:80`);
  const [addr, proto = "tcp", extra] = spec.trim().split("/");
  if (extra !== undefined || !["tcp", "udp", "sctp"].includes(proto)) throw bad();
  const i = addr.lastIndexOf(":");
  const container = addr.slice(i + 1);
  let ip = "";
  let host = "";
  if (i >= 0) {
    const rest = addr.slice(0, i);
    const j = rest.lastIndexOf(":");
    host = rest.slice(j + 1);
    ip = j >= 0 ? rest.slice(0, j).replace(/^\[(.*)\]$/, "$1") : "";
    if (j >= 0 && !ip) throw bad();
  }
  if (!/^\d+$/.test(container) || !/^\d*$/.test(host) || /[\[\]]/.test(ip)) throw bad();
  return { key: `${container}/${proto}`, binding: { HostIp: ip, HostPort: host } };
}

const lines = (s) => s.split("\n").map((l) => l.trim()).filter(Boolean);

/** The body of POST /containers/create for the run form. */
export function createBody(image, { ports, volumes, env, cmd }) {
  const exposed = {};
  const bindings = {};
  for (const p of lines(ports)) {
    const { key, binding } = parsePort(p);
    exposed[key] = {};
    (bindings[key] ||= []).push(binding);
  }
  const body = {
    Image: image,
    Env: lines(env),
    ExposedPorts: exposed,
    HostConfig: { PortBindings: bindings, Binds: lines(volumes) },
  };
  if (cmd.trim()) body.Cmd = ["sh", "-c", cmd.trim()];
  return body;
}

function RunDialog({ image, onClose }) {
  const [f, setF] = useState({ name: "", ports: "", volumes: "", env: "", cmd: "" });
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    try {
      const body = createBody(image, f);
      const c = await post("/containers/create", f.name ? { name: f.name } : null, body);
      await post(`/containers/${c.Id}/start`);
      notify(`Started ${f.name || short(c.Id)} from ${image}`);
      onClose();
      location.hash = `#/containers/${encodeURIComponent(f.name || c.Id)}`;
    } catch (x) {
      setErr(x.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} title=${`Run ${image}`} onClose=${onClose}>
    <form onSubmit=${submit} class="form">
      <${Field} label="Name" id="run-name" hint="Optional; Docker picks one otherwise.">
        <input id="run-name" value=${f.name} onInput=${set("name")} aria-describedby="run-name-hint" />
      <//>
      <${Field} label="Ports" id="run-ports" hint="One per line, HOST:CONTAINER (8080:80).">
        <textarea id="run-ports" rows="2" value=${f.ports} onInput=${set("ports")} aria-describedby="run-ports-hint"></textarea>
      <//>
      <${Field} label="Volumes" id="run-volumes" hint="One per line, VOLUME:/path or /host/dir:/path.">
        <textarea id="run-volumes" rows="2" value=${f.volumes} onInput=${set("volumes")} aria-describedby="run-volumes-hint"></textarea>
      <//>
      <${Field} label="Environment" id="run-env" hint="One per line, KEY=value.">
        <textarea id="run-env" rows="2" value=${f.env} onInput=${set("env")} aria-describedby="run-env-hint"></textarea>
      <//>
      <${Field} label="Command" id="run-cmd" hint="Optional, run with sh -c; the image's own command otherwise.">
        <input id="run-cmd" value=${f.cmd} onInput=${set("cmd")} aria-describedby="run-cmd-hint" />
      <//>
      ${err ? html`<p class="error" role="alert">${err}</p>` : null}
      <div class="actions">
        <button type="submit" class="primary" disabled=${busy}>Run</button>
        <button type="button" onClick=${onClose}>Cancel</button>
      </div>
    </form>
  <//>`;
}

function TagDialog({ image, onClose }) {
  const [target, setTarget] = useState("");
  const [err, setErr] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    const m = /^(.+?)(?::([\w][\w.-]{0,127}))?$/.exec(target.trim());
    if (!m || !target.trim()) return setErr("Give a name such as localhost:5000/team/app:1.0");
    try {
      await post(`/images/${seg(image)}/tag`, { repo: m[1], tag: m[2] || "latest" });
      notify(`Tagged ${image} as ${m[1]}:${m[2] || "latest"}`);
      onClose();
    } catch (x) {
      setErr(x.message);
    }
  };
  return html`<${Dialog} title=${`Tag ${image}`} onClose=${onClose}>
    <form onSubmit=${submit} class="form">
      <${Field} label="New name" id="tag-target" hint="REPOSITORY[:TAG]">
        <input id="tag-target" value=${target} onInput=${(e) => setTarget(e.target.value)} required aria-describedby="tag-target-hint" />
      <//>
      ${err ? html`<p class="error" role="alert">${err}</p>` : null}
      <div class="actions"><button type="submit" class="primary">Tag</button><button type="button" onClick=${onClose}>Cancel</button></div>
    </form>
  <//>`;
}

function PushDialog({ tags, onClose }) {
  const [tag, setTag] = useState(tags[0]);
  const [log, setLog] = useState([]);
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setErr(null);
    setLog([]);
    const i = tag.lastIndexOf(":");
    const [repo, t] = i > tag.lastIndexOf("/") ? [tag.slice(0, i), tag.slice(i + 1)] : [tag, "latest"];
    let failed = null;
    try {
      await streamJson(`/images/${seg(repo)}/push`, { tag: t }, (m) => {
        if (m.error || m.errorDetail) failed = m.error || m.errorDetail.message;
        const line = [m.id, m.status, m.progress].filter(Boolean).join(" ");
        if (line) setLog((l) => [...l.slice(-30), line]);
      }, { method: "POST" });
      if (failed) throw new Error(failed);
      notify(`Pushed ${tag}`);
    } catch (x) {
      setErr(x.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<${Dialog} title="Push an image" onClose=${onClose}>
    <form onSubmit=${submit} class="form">
      <${Field} label="Name to push" id="push-tag">
        <select id="push-tag" value=${tag} onChange=${(e) => setTag(e.target.value)}>
          ${tags.map((t) => html`<option value=${t}>${t}</option>`)}
        </select>
      <//>
      <pre class="progress" aria-live="polite">${log.join("\n")}</pre>
      ${err ? html`<p class="error" role="alert">${err}</p>` : null}
      <div class="actions"><button type="submit" class="primary" disabled=${busy}>Push</button><button type="button" onClick=${onClose}>Close</button></div>
    </form>
  <//>`;
}

export function ImagesView() {
  const store = useStore();
  const [dialog, setDialog] = useState(null);
  const users = (img) => store.containers.filter((c) => c.ImageID === img.Id);
  const images = [...store.images].sort((a, b) => b.Created - a.Created);
  return html`<section aria-labelledby="h-images">
    <h1 id="h-images" tabindex="-1">Images</h1>
    <p class="summary">${images.length} images, ${bytes(images.reduce((s, i) => s + (i.Size || 0), 0))} in all. Open one for its layers and where its size comes from.</p>
    ${images.length
      ? html`<table class="list">
          <caption class="sr-only">Images</caption>
          <thead><tr>
            <th scope="col">Tags</th><th scope="col">ID</th><th scope="col">Size</th><th scope="col">Created</th>
            <th scope="col">Used by</th><th scope="col"><span class="sr-only">Actions</span></th>
          </tr></thead>
          <tbody>
            ${images.map((img) => {
              const tags = (img.RepoTags || []).filter((t) => t !== "<none>:<none>");
              const ref = tags[0] || img.Id;
              const u = users(img);
              return html`<tr key=${img.Id}>
                <th scope="row">
                  <a href=${"#/images/" + encodeURIComponent(ref)}>${tags.length ? tags[0] : "<none>"}</a>
                  ${tags.slice(1).map((t) => html`<div class="muted small">${t}</div>`)}
                </th>
                <td><code>${short(img.Id)}</code></td>
                <td class="num">${bytes(img.Size)}</td>
                <td class="nowrap">${ago(img.Created)}</td>
                <td>${u.length ? u.map((c) => html`<a class="chip" href=${"#/containers/" + encodeURIComponent(c.Names[0].slice(1))}>${c.Names[0].slice(1)}</a>`) : html`<span class="muted">none</span>`}</td>
                <td><div class="row-actions" role="group" aria-label=${`Actions for ${ref}`}>
                  <button type="button" class="primary" onClick=${() => setDialog({ kind: "run", ref })}>Run</button>
                  <button type="button" onClick=${() => setDialog({ kind: "tag", ref })}>Tag</button>
                  ${tags.length ? html`<button type="button" onClick=${() => setDialog({ kind: "push", tags })}>Push</button>` : null}
                  <${ConfirmButton} label="Remove" question=${`Remove image ${ref}?`} action=${() => del(`/images/${seg(ref)}`)} done=${`Removed ${ref}`}>
                    <p>${tags.length > 1 ? "Only this tag goes; the image stays while other tags name it." : "Its layers go unless another image shares them."}</p>
                  <//>
                </div></td>
              </tr>`;
            })}
          </tbody>
        </table>`
      : html`<${Empty}>No images. Build one with <code>berth build</code> or import one.<//>`}
    ${dialog?.kind === "run" ? html`<${RunDialog} image=${dialog.ref} onClose=${() => setDialog(null)} />` : null}
    ${dialog?.kind === "tag" ? html`<${TagDialog} image=${dialog.ref} onClose=${() => setDialog(null)} />` : null}
    ${dialog?.kind === "push" ? html`<${PushDialog} tags=${dialog.tags} onClose=${() => setDialog(null)} />` : null}
  </section>`;
}
