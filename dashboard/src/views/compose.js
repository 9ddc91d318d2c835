// Compose projects: containers grouped by their com.docker.compose.project label, each
// project's services with their containers, and start/stop for the whole project.

import { ActionButton, Empty, html } from "../components.js";
import { post } from "../api.js";
import { useStore } from "../store.js";
import { ContainerTable } from "./containers.js";

const PROJECT = "com.docker.compose.project";
const SERVICE = "com.docker.compose.service";

/** Groups containers: [{ project, services: [{ service, containers }] }], sorted by name. */
export function groupProjects(containers) {
  const projects = new Map();
  for (const c of containers) {
    const p = c.Labels?.[PROJECT];
    if (!p) continue;
    const s = c.Labels?.[SERVICE] || "(no service)";
    if (!projects.has(p)) projects.set(p, new Map());
    const svc = projects.get(p);
    if (!svc.has(s)) svc.set(s, []);
    svc.get(s).push(c);
  }
  return [...projects.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([project, svc]) => ({
      project,
      services: [...svc.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([service, containers]) => ({ service, containers })),
    }));
}

export function ComposeView() {
  const store = useStore();
  const projects = groupProjects(store.containers);
  return html`<section aria-labelledby="h-compose">
    <h1 id="h-compose" tabindex="-1">Compose projects</h1>
    ${projects.length
      ? projects.map(({ project, services }) => {
          const all = services.flatMap((s) => s.containers);
          const running = all.filter((c) => c.State === "running").length;
          const hid = "proj-" + project.replace(/\W+/g, "-");
          return html`<section class="project" aria-labelledby=${hid} key=${project}>
            <h2 id=${hid}>${project} <span class="muted small">${services.length} services, ${running}/${all.length} running</span></h2>
            <div class="row-actions" role="group" aria-label=${`Actions for project ${project}`}>
              <${ActionButton} label="Start all" action=${() => Promise.all(all.filter((c) => c.State !== "running").map((c) => post(`/containers/${c.Id}/start`)))} done=${`Started ${project}`} />
              <${ActionButton} label="Stop all" action=${() => Promise.all(all.filter((c) => c.State === "running").map((c) => post(`/containers/${c.Id}/stop`)))} done=${`Stopped ${project}`} />
            </div>
            ${services.map(
              ({ service, containers }) => html`<h3>${service}</h3><${ContainerTable} containers=${containers} caption=${`Containers of service ${service}`} />`,
            )}
          </section>`;
        })
      : html`<${Empty}>No compose projects: containers made by <code>berth compose up</code> or <code>docker compose up</code> appear here, grouped by project.<//>`}
  </section>`;
}
