// Networks: driver, subnets, the containers attached (from the container list), create and
// remove (Docker refuses to remove a network in use or a predefined one; its words show).

import { useState } from "preact/hooks";
import { ConfirmButton, Empty, html, notify } from "../components.js";
import { post, del } from "../api.js";
import { useStore } from "../store.js";

export function NetworksView() {
  const store = useStore();
  const [name, setName] = useState("");
  const [err, setErr] = useState(null);
  const attached = (n) =>
    store.containers.filter((c) => Object.values(c.NetworkSettings?.Networks || {}).some((e) => e.NetworkID === n.Id) || Object.keys(c.NetworkSettings?.Networks || {}).includes(n.Name));
  const create = async (e) => {
    e.preventDefault();
    setErr(null);
    try {
      await post("/networks/create", null, { Name: name.trim(), Driver: "bridge" });
      notify(`Created network ${name.trim()}`);
      setName("");
    } catch (x) {
      setErr(x.message);
    }
  };
  const nets = [...store.networks].sort((a, b) => a.Name.localeCompare(b.Name));
  return html`<section aria-labelledby="h-networks">
    <h1 id="h-networks" tabindex="-1">Networks</h1>
    <form class="toolbar" onSubmit=${create}>
      <label for="net-name">New bridge network</label>
      <input id="net-name" value=${name} onInput=${(e) => setName(e.target.value)} required />
      <button type="submit">Create</button>
      ${err ? html`<span class="error" role="alert">${err}</span>` : null}
    </form>
    ${nets.length
      ? html`<table class="list">
          <caption class="sr-only">Networks</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Driver</th><th scope="col">Subnets</th><th scope="col">Containers</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>${nets.map((n) => {
            const cs = attached(n);
            const builtin = ["bridge", "host", "none"].includes(n.Name);
            return html`<tr key=${n.Id}>
              <th scope="row">${n.Name}</th>
              <td>${n.Driver}</td>
              <td>${(n.IPAM?.Config || []).map((c) => c.Subnet).filter(Boolean).join(", ") || "–"}</td>
              <td>${cs.length ? cs.map((c) => html`<a class="chip" href=${"#/containers/" + encodeURIComponent(c.Names[0].slice(1))}>${c.Names[0].slice(1)}</a>`) : html`<span class="muted">none</span>`}</td>
              <td>${builtin
                ? html`<span class="muted small">predefined</span>`
                : html`<${ConfirmButton} label="Remove" question=${`Remove network ${n.Name}?`} action=${() => del(`/networks/${encodeURIComponent(n.Id)}`)} done=${`Removed network ${n.Name}`}><p>Containers must be disconnected first.</p><//>`}</td>
            </tr>`;
          })}</tbody>
        </table>`
      : html`<${Empty}>No networks.<//>`}
  </section>`;
}
