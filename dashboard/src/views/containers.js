// Containers: one row each with its state, published ports (links), uptime and live CPU and
// memory, and the lifecycle actions Docker offers for that state.

import { ActionButton, ConfirmButton, Empty, html, Sparkline, StateBadge } from "../components.js";
import { bytes, del, post, short } from "../api.js";
import { useStats } from "../stats.js";
import { useStore } from "../store.js";

/** The name Docker shows: the first name without its slash. */
export function nameOf(c) {
  return (c.Names?.[0] || short(c.Id)).replace(/^\//, "");
}

/** Published TCP/UDP ports, one per host port, as links to 127.0.0.1. */
export function PortLinks({ ports }) {
  const seen = new Set();
  const list = (ports || [])
    .filter((p) => p.PublicPort)
    .filter((p) => {
      const k = `${p.PublicPort}/${p.Type}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  if (!list.length) return html`<span class="muted">–</span>`;
  return html`<ul class="inline">
    ${list.map((p) =>
      p.Type === "tcp"
        ? html`<li><a href=${`http://127.0.0.1:${p.PublicPort}/`} target="_blank" rel="noopener noreferrer"
            aria-label=${`Open port ${p.PublicPort} (container port ${p.PrivatePort}) in a new tab`}
          >${p.PublicPort}→${p.PrivatePort}</a></li>`
        : html`<li>${p.PublicPort}→${p.PrivatePort}/${p.Type}</li>`,
    )}
  </ul>`;
}

function Usage({ c }) {
  const running = c.State === "running";
  const { cpu, mem, limit } = useStats(c.Id, running);
  if (!running) return html`<td class="muted">–</td><td class="muted">–</td>`;
  const lastCpu = cpu.length ? cpu[cpu.length - 1] : 0;
  const lastMem = mem.length ? mem[mem.length - 1] : 0;
  return html`<td><${Sparkline} values=${cpu} max=${100} label="CPU" text=${`${lastCpu.toFixed(1)}%`} /></td>
    <td><${Sparkline} values=${mem} max=${limit && limit < 1e15 ? limit : 0} label="Memory" text=${bytes(lastMem)} /></td>`;
}

/** The buttons that fit a container's state. */
export function Lifecycle({ c }) {
  const id = encodeURIComponent(c.Id);
  const name = nameOf(c);
  const st = c.State;
  const buttons = [];
  if (st === "running") {
    buttons.push(html`<${ActionButton} label="Stop" title=${`Stop ${name}`} action=${() => post(`/containers/${id}/stop`)} done=${`Stopped ${name}`} />`);
    buttons.push(html`<${ActionButton} label="Restart" title=${`Restart ${name}`} action=${() => post(`/containers/${id}/restart`)} done=${`Restarted ${name}`} />`);
    buttons.push(html`<${ActionButton} label="Pause" title=${`Pause ${name}`} action=${() => post(`/containers/${id}/pause`)} done=${`Paused ${name}`} />`);
  } else if (st === "paused") {
    buttons.push(html`<${ActionButton} label="Unpause" title=${`Unpause ${name}`} action=${() => post(`/containers/${id}/unpause`)} done=${`Unpaused ${name}`} />`);
    buttons.push(html`<${ActionButton} label="Stop" title=${`Stop ${name}`} action=${() => post(`/containers/${id}/stop`)} done=${`Stopped ${name}`} />`);
  } else {
    buttons.push(html`<${ActionButton} label="Start" title=${`Start ${name}`} action=${() => post(`/containers/${id}/start`)} done=${`Started ${name}`} />`);
  }
  buttons.push(html`<${ConfirmButton}
    label="Remove"
    question=${`Remove container ${name}?`}
    action=${() => del(`/containers/${id}`, { v: "0" })}
    done=${`Removed ${name}`}
  ><p>Its writable layer goes with it; named volumes stay.</p><//>`);
  return html`<div class="row-actions" role="group" aria-label=${`Actions for ${name}`}>${buttons}</div>`;
}

/** A table of containers (the whole list, or a compose project's). */
export function ContainerTable({ containers, caption }) {
  return html`<table class="list">
    <caption class="sr-only">${caption}</caption>
    <thead>
      <tr>
        <th scope="col">Name</th>
        <th scope="col">Image</th>
        <th scope="col">State</th>
        <th scope="col">Ports</th>
        <th scope="col">Status</th>
        <th scope="col">CPU</th>
        <th scope="col">Memory</th>
        <th scope="col"><span class="sr-only">Actions</span></th>
      </tr>
    </thead>
    <tbody>
      ${containers.map(
        (c) => html`<tr key=${c.Id} data-name=${nameOf(c)}>
          <th scope="row"><a href=${"#/containers/" + encodeURIComponent(nameOf(c))}>${nameOf(c)}</a></th>
          <td class="ellipsis" title=${c.Image}>${c.Image}</td>
          <td><${StateBadge} state=${c.State} status=${c.Status} /></td>
          <td><${PortLinks} ports=${c.Ports} /></td>
          <td class="nowrap">${(c.Status || "").replace(/\s*\((healthy|unhealthy|health: starting)\)/, "")}</td>
          <${Usage} c=${c} />
          <td><${Lifecycle} c=${c} /></td>
        </tr>`,
      )}
    </tbody>
  </table>`;
}

export function ContainersView() {
  const store = useStore();
  const list = [...store.containers].sort((a, b) => b.Created - a.Created);
  const running = list.filter((c) => c.State === "running").length;
  return html`<section aria-labelledby="h-containers">
    <h1 id="h-containers" tabindex="-1">Containers</h1>
    <p class="summary">${list.length} container${list.length === 1 ? "" : "s"}, ${running} running. Open one for its logs, terminal and details.</p>
    ${list.length ? html`<${ContainerTable} containers=${list} caption="Containers" />` : html`<${Empty}>No containers yet. Run one from the Images view.<//>`}
  </section>`;
}
