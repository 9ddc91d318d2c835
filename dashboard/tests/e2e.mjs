// The dashboard end to end, as a person uses it, in Debian's Chromium driven by Playwright.
// Run by tests/e2e/tests/dashboard.rs, which starts the daemon, the container and
// `berth dashboard`, and passes what to look for in the environment:
//   DASHBOARD_URL  the URL `berth dashboard` printed (with its token)
//   CONTAINER      a running, healthy busybox container that serves APP_TEXT on APP_PORT and logs tick-N lines
//   VOLUME         a named volume it mounts, holding greeting.txt; it is in compose project demo, service web
//   PUSH_TAG       a name in a registry on 127.0.0.1 to tag busybox:latest as and push
//   IMAGE          an image built to waste bytes (one layer's file deleted by a later one)
//   WASTED         its wasted bytes as the test computed them from the layer tars
//   ARTIFACTS      where screenshots go
//   BERTH, BERTH_HOST  the berth CLI and the daemon it talks to, for builds run while the page is open
//   BUILD_DIR      a context with ok.dockerfile (its first RUN already cached) and fail.dockerfile
//   CHROMIUM       the browser to drive (default /usr/bin/chromium)
// Prints one line per step; exits non-zero at the first failure, with a screenshot of it.

import { chromium } from "playwright";
import AxeBuilder from "@axe-core/playwright";
import { mkdirSync } from "node:fs";
import { spawnSync } from "node:child_process";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const URL_ = env("DASHBOARD_URL");
const CONTAINER = env("CONTAINER");
const APP_PORT = env("APP_PORT");
const APP_TEXT = env("APP_TEXT");
const IMAGE = env("IMAGE");
const VOLUME = env("VOLUME");
const PUSH_TAG = env("PUSH_TAG");
const WASTED = Number(env("WASTED"));
const ARTIFACTS = env("ARTIFACTS");
const BERTH = env("BERTH");
const BERTH_HOST = env("BERTH_HOST");
const BUILD_DIR = env("BUILD_DIR");
mkdirSync(ARTIFACTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
const page = await context.newPage();
const consoleErrors = [];
page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
page.on("pageerror", (e) => consoleErrors.push(String(e)));
page.setDefaultTimeout(15000);

let stepName = "";
async function step(name, fn) {
  stepName = name;
  const t0 = Date.now();
  await fn();
  console.log(`ok ${name} (${Date.now() - t0} ms)`);
}
const shot = (name) => page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: false });

async function axe(name) {
  const r = await new AxeBuilder({ page }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
  const bad = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) {
    throw new Error(
      `axe on ${name}: ` +
        bad.map((v) => `${v.impact} ${v.id} (${v.help}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(" | ")}`).join("; "),
    );
  }
  console.log(`ok axe ${name}: ${r.violations.length} minor/moderate, 0 serious or critical`);
}

try {
  await step("open the printed URL", async () => {
    const resp = await page.goto(URL_);
    if (!resp.ok()) throw new Error(`status ${resp.status()}`);
    // The token moved from the address bar into a cookie.
    if (page.url().includes("token=")) throw new Error(`token still in the URL: ${page.url()}`);
    await page.getByRole("heading", { name: "Containers", level: 1 }).waitFor();
  });

  const row = page.locator(`tr[data-name="${CONTAINER}"]`);
  await step("see the running container", async () => {
    await row.getByText("running", { exact: true }).waitFor();
    await row.getByText("healthy", { exact: true }).waitFor();
    await row.getByRole("img", { name: /^CPU: / }).waitFor();
    await shot("01-containers");
  });

  await axe("containers");

  await step("click its published port and get the app's page", async () => {
    const [popup] = await Promise.all([
      context.waitForEvent("page"),
      row.getByRole("link", { name: new RegExp(`Open port ${APP_PORT}\\b`) }).click(),
    ]);
    await popup.waitForLoadState();
    const body = await popup.textContent("body");
    if (!body.includes(APP_TEXT)) throw new Error(`the app's page says ${JSON.stringify(body)}`);
    await popup.screenshot({ path: `${ARTIFACTS}/02-app.png` });
    await popup.close();
  });

  await step("read a live log line", async () => {
    await row.getByRole("link", { name: CONTAINER }).click();
    await page.getByRole("heading", { name: CONTAINER, level: 1 }).waitFor();
    const logs = page.getByLabel("Container logs");
    await logs.getByText(/tick-\d+/).first().waitFor();
    const before = (await logs.textContent()).match(/tick-\d+/g).length;
    // A line written after the page opened arrives without a reload.
    await page.waitForFunction(
      ([n]) => (document.querySelector(".log-lines")?.textContent.match(/tick-\d+/g) || []).length > n,
      [before],
    );
    await page.getByLabel("Search logs").fill("tick-");
    await logs.locator("mark").first().waitFor();
    await shot("03-logs");
  });

  await axe("container logs");

  await step("run `echo hi` in its terminal", async () => {
    await page.getByRole("tab", { name: "Terminal" }).click();
    await page.getByRole("button", { name: "Open terminal" }).click();
    await page.getByText("connected").waitFor();
    await page.locator(".xterm-host .xterm").click();
    await page.keyboard.type("echo h''i\n");
    // The command echoes as `echo h''i`; only the output line is exactly `hi`.
    await page.waitForFunction(() =>
      [...document.querySelectorAll(".xterm-rows > div")].some((r) => r.textContent.trim() === "hi"),
    );
    await shot("04-terminal");
  });

  await step("attach to its output", async () => {
    await page.getByRole("tab", { name: "Attach" }).click();
    await page.getByRole("button", { name: "Attach", exact: true }).click();
    await page.waitForFunction(() =>
      [...document.querySelectorAll(".xterm-rows > div")].some((r) => /tick-\d+/.test(r.textContent)),
    );
  });

  await step("read its details", async () => {
    await page.getByRole("tab", { name: "Details" }).click();
    const details = page.getByRole("tabpanel");
    await details.getByText("dash-vol → /data").waitFor();
    await details.getByText("healthy", { exact: true }).waitFor();
  });

  await step("see it in its compose project", async () => {
    await page.getByRole("link", { name: "Compose projects" }).click();
    const proj = page.getByRole("region", { name: /^demo\b/ });
    await proj.getByRole("heading", { name: "web", level: 3 }).waitFor();
    await proj.locator(`tr[data-name="${CONTAINER}"]`).waitFor();
  });

  await axe("compose projects");

  await step("browse the files of its volume", async () => {
    await page.getByRole("link", { name: "Volumes" }).click();
    const vrow = page.getByRole("row", { name: new RegExp(VOLUME) });
    await vrow.getByRole("link", { name: CONTAINER }).waitFor();
    await vrow.getByRole("button", { name: "Browse files" }).click();
    const dlg = page.getByRole("dialog", { name: `Files of volume ${VOLUME}` });
    await dlg.getByRole("cell", { name: "greeting.txt" }).waitFor();
    await shot("06-volume");
    await dlg.getByRole("button", { name: "Close" }).click();
  });

  await step("create and remove a network", async () => {
    await page.getByRole("link", { name: "Networks" }).click();
    await page.getByLabel("New bridge network").fill("dash-net");
    await page.getByRole("button", { name: "Create" }).click();
    const nrow = page.getByRole("row", { name: /dash-net/ });
    await nrow.waitFor();
    await axe("networks");
    await nrow.getByRole("button", { name: "Remove" }).click();
    await page.getByRole("dialog", { name: "Remove network dash-net?" }).getByRole("button", { name: "Remove" }).click();
    await nrow.waitFor({ state: "detached" });
  });

  await step("watch builds appear live, with CACHED steps and a failed step's output", async () => {
    await page.getByRole("link", { name: "Builds" }).click();
    await page.getByRole("heading", { name: "Builds", level: 1 }).waitFor();
    await page.getByRole("row", { name: new RegExp(IMAGE) }).getByText("completed", { exact: true }).waitFor();
    // Both builds run while the view is open: it polls the history and shows them.
    const build = (file, tag) =>
      spawnSync(BERTH, ["build", "--progress", "plain", "-f", file, "-t", tag, "."], {
        cwd: BUILD_DIR,
        env: { ...process.env, BERTH_HOST, BERTH_NO_AUTOSTART: "1" },
        encoding: "utf8",
      });
    const good = build("ok.dockerfile", "built:2");
    if (good.status !== 0) throw new Error(`build built:2: ${good.stdout}${good.stderr}`);
    const okRow = page.getByRole("row", { name: /built:2/ });
    await okRow.getByText("completed", { exact: true }).waitFor();
    await okRow.getByText(/^3 steps, [12] cached$/).waitFor();
    const bad = build("fail.dockerfile", "broken:1");
    if (bad.status === 0) throw new Error("the failing build succeeded");
    const badRow = page.getByRole("row", { name: /broken:1/ });
    await badRow.getByText("failed", { exact: true }).waitFor();
    await shot("08-builds");
    await axe("builds");

    await okRow.getByRole("link").click();
    await page.getByRole("heading", { name: /^Build [0-9a-f]{12}/, level: 1 }).waitFor();
    const steps = page.getByRole("list", { name: "Steps" }).getByRole("listitem");
    await steps.filter({ hasText: "RUN echo one" }).getByText("CACHED", { exact: true }).waitFor();
    const fresh = steps.filter({ hasText: "RUN echo two" });
    await fresh.waitFor();
    if (await fresh.getByText("CACHED", { exact: true }).count()) throw new Error("the fresh step is marked CACHED");
    await axe("a build's steps");

    await page.getByRole("link", { name: "← All builds" }).click();
    await badRow.getByRole("link").click();
    const failed = page.getByRole("list", { name: "Steps" }).getByRole("listitem").filter({ hasText: "exit 3" });
    await failed.getByText("failed", { exact: true }).waitFor();
    await failed.getByLabel(/^Output of step/).getByText(/boom-from-the-step/).waitFor();
    await page.locator(".banner.error").waitFor();
    await shot("09-failed-build");
    await axe("a failed build");
  });

  await step("see Docker's refusal to remove an image in use", async () => {
    await page.getByRole("link", { name: "Images", exact: true }).click();
    const irow = page.getByRole("row", { name: /busybox:latest/ });
    await irow.getByRole("link", { name: CONTAINER }).waitFor();
    await irow.getByRole("button", { name: "Remove" }).click();
    const dlg = page.getByRole("dialog", { name: "Remove image busybox:latest?" });
    await dlg.getByRole("button", { name: "Remove" }).click();
    await dlg.getByRole("alert").getByText(/conflict|being used|must force/i).waitFor();
    await shot("07-refusal");
    await axe("images with a dialog");
    await dlg.getByRole("button", { name: "Cancel" }).click();
  });

  await step("tag the image for a registry and push it", async () => {
    const irow = page.getByRole("row", { name: /busybox:latest/ });
    await irow.getByRole("button", { name: "Tag" }).click();
    const tag = page.getByRole("dialog", { name: "Tag busybox:latest" });
    await tag.getByLabel("New name").fill(PUSH_TAG);
    await tag.getByRole("button", { name: "Tag" }).click();
    await irow.getByText(PUSH_TAG).waitFor();
    await irow.getByRole("button", { name: "Push" }).click();
    const push = page.getByRole("dialog", { name: "Push an image" });
    await push.getByLabel("Name to push").selectOption(PUSH_TAG);
    await push.getByRole("button", { name: "Push" }).click();
    await page.getByRole("status").getByText(`Pushed ${PUSH_TAG}`).waitFor({ timeout: 30000 });
    await push.getByRole("button", { name: "Close" }).click();
  });

  await step("run a container from the image's form", async () => {
    const irow = page.getByRole("row", { name: /busybox:latest/ });
    await irow.getByRole("button", { name: "Run" }).click();
    const dlg = page.getByRole("dialog", { name: "Run busybox:latest" });
    await dlg.getByLabel("Name").fill("dash-run");
    await dlg.getByLabel("Environment").fill("GREETING=from-the-form");
    await dlg.getByLabel("Command").fill("echo $GREETING; exec sleep 300");
    await dlg.getByRole("button", { name: "Run" }).click();
    await page.getByRole("heading", { name: "dash-run", level: 1 }).waitFor();
    await page.getByLabel("Container logs").getByText("from-the-form").waitFor();
    await page.getByRole("link", { name: "Containers" }).first().click();
  });

  await step("stop it and watch the state change without a reload", async () => {
    await page.getByRole("link", { name: "Containers" }).first().click();
    await row.getByText("running", { exact: true }).waitFor();
    await page.evaluate(() => (window.__noReload = true));
    await row.getByRole("button", { name: "Stop" }).click();
    await row.getByText("exited", { exact: true }).waitFor({ timeout: 30000 });
    if (!(await page.evaluate(() => window.__noReload))) throw new Error("the page reloaded");
    await shot("05-stopped");
  });

  await step("remove it", async () => {
    await row.getByRole("button", { name: "Remove" }).click();
    const dlg = page.getByRole("dialog", { name: `Remove container ${CONTAINER}?` });
    await dlg.getByRole("button", { name: "Remove" }).click();
    await row.waitFor({ state: "detached" });
  });

  await step("open the image and see its layers and wasted bytes", async () => {
    await page.getByRole("link", { name: "Images", exact: true }).click();
    await page.getByRole("link", { name: IMAGE }).click();
    await page.getByRole("heading", { name: "Layers" }).waitFor();
    const layers = await page.locator("ol.layers > li").count();
    if (layers < 3) throw new Error(`${layers} layers shown`);
    await page.locator("ol.layers").getByText(/RUN .*rm/).first().waitFor();
    const wasted = await page.locator(".wasted-total").textContent();
    const want = fmt(WASTED);
    if (wasted !== want) throw new Error(`wasted shows ${wasted}, the layer tars say ${want} (${WASTED} bytes)`);
    await page.locator("table.wasted .hint").first().waitFor();
    await page.locator("ol.layers summary").nth(1).click();
    await shot("08-image");
  });

  await axe("image");

  if (consoleErrors.length) console.log(`console errors (not fatal): ${consoleErrors.join(" | ")}`);
  console.log("all steps passed");
  await browser.close();
} catch (e) {
  console.log(`FAILED at "${stepName}": ${e.message}`);
  await shot("failure").catch(() => {});
  if (consoleErrors.length) console.log(`console errors: ${consoleErrors.join(" | ")}`);
  await browser.close();
  process.exit(1);
}

// Same formatting as the page (src/api.js `bytes`).
function fmt(n) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 2 : 1)}${units[i]}`;
}
