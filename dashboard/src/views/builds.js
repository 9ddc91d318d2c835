// Builds: what the Engine API offers about them, which is the build cache of /system/df
// (each record's kind, description, size, use count and last use). Docker's build history
// (each build's steps with their times and cache hits) lives in BuildKit's history service,
// reached over the /grpc session, not in the Engine API: this view says so rather than
// invent it.

import { ago, bytes, short } from "../api.js";
import { Empty, html } from "../components.js";
import { useStore } from "../store.js";

export function BuildsView() {
  const store = useStore();
  const cache = [...(store.df?.BuildCache || [])].sort((a, b) => Date.parse(b.LastUsedAt || b.CreatedAt) - Date.parse(a.LastUsedAt || a.CreatedAt));
  const total = cache.reduce((s, c) => s + (c.Size || 0), 0);
  return html`<section aria-labelledby="h-builds">
    <h1 id="h-builds" tabindex="-1">Builds</h1>
    <p class="summary">The build cache: ${cache.length} records, ${bytes(total)}. Cached steps are reused by the next build with the same inputs.</p>
    <p class="note">Not shown: a history of builds with each step's time and cache hits. The Engine API does not
      offer it (Docker keeps it in BuildKit's history service, outside the REST API); <code>berth build</code> prints
      each step's time and <code>CACHED</code> marks as it runs.</p>
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
      : html`<${Empty}>The build cache is empty.<//>`}
  </section>`;
}
