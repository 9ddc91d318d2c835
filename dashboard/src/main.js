// The dashboard's shell: navigation, the hash router (#/containers, #/images/<name>, …) and
// the connection banner. Each view lives in views/.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { html, Notices } from "./components.js";
import { start, useStore } from "./store.js";
import { ContainersView } from "./views/containers.js";
import { ContainerView } from "./views/container.js";
import { ImagesView } from "./views/images.js";
import { ImageView } from "./views/image.js";
import { VolumesView } from "./views/volumes.js";
import { NetworksView } from "./views/networks.js";
import { BuildView, BuildsView } from "./views/builds.js";
import { ComposeView } from "./views/compose.js";

const SECTIONS = [
  ["containers", "Containers"],
  ["compose", "Compose projects"],
  ["images", "Images"],
  ["volumes", "Volumes"],
  ["networks", "Networks"],
  ["builds", "Builds"],
];

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [section, ...rest] = raw.split("/");
  return { section: section || "containers", arg: rest.length ? decodeURIComponent(rest.join("/")) : null };
}

function useRoute() {
  const [route, setRoute] = useState(parseHash());
  useEffect(() => {
    const on = () => setRoute(parseHash());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return route;
}

function View({ route }) {
  const { section, arg } = route;
  if (section === "containers" && arg) return html`<${ContainerView} id=${arg} />`;
  if (section === "images" && arg) return html`<${ImageView} name=${arg} />`;
  if (section === "builds" && arg) return html`<${BuildView} id=${arg} />`;
  switch (section) {
    case "images":
      return html`<${ImagesView} />`;
    case "volumes":
      return html`<${VolumesView} />`;
    case "networks":
      return html`<${NetworksView} />`;
    case "builds":
      return html`<${BuildsView} />`;
    case "compose":
      return html`<${ComposeView} />`;
    default:
      return html`<${ContainersView} />`;
  }
}

function App() {
  const route = useRoute();
  const store = useStore();
  useEffect(() => {
    const title = SECTIONS.find(([k]) => k === route.section)?.[1] || "Containers";
    document.title = `${route.arg ? route.arg + " · " : ""}${title} · berth dashboard`;
    // Move focus to the new view's heading, as a page load would.
    const hd = document.querySelector("main h1");
    if (hd) hd.focus({ preventScroll: true });
  }, [route.section, route.arg]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => {
      e.preventDefault();
      document.getElementById("main")?.focus();
    }}>Skip to content</a>
    <header class="top">
      <span class="brand">berth</span>
      <span class="conn" role="status">
        ${store.connected ? html`<span class="dot ok" aria-hidden="true"></span>live` : html`<span class="dot bad" aria-hidden="true"></span>reconnecting…`}
        ${store.version ? html` · engine ${store.version.Version} (API ${store.version.ApiVersion})` : null}
      </span>
    </header>
    <div class="layout">
      <nav aria-label="Sections">
        <ul>
          ${SECTIONS.map(
            ([k, label]) => html`<li key=${k}>
              <a href=${"#/" + k} aria-current=${route.section === k ? "page" : undefined}>${label}</a>
            </li>`,
          )}
        </ul>
      </nav>
      <main id="main" tabindex="-1">
        ${store.error ? html`<p class="banner error" role="alert">${store.error}</p>` : null}
        <${View} route=${route} />
      </main>
    </div>
    <${Notices} />
  `;
}

start();
render(html`<${App} />`, document.getElementById("app"));
