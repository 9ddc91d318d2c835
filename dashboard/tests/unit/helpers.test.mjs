// Unit tests of the page's pure helpers (node's test runner: `npm test`).
import { test } from "node:test";
import assert from "node:assert/strict";
import { bytes, human, seg, short } from "../../src/api.js";
import { cpuPercent, memUsage } from "../../src/stats.js";
import { createBody, parsePort } from "../../src/views/images.js";
import { children, readTar } from "../../src/views/volumes.js";
import { groupProjects } from "../../src/views/compose.js";

test("ports as -p takes them", () => {
  assert.deepEqual(parsePort("8080:80"), { key: "80/tcp", binding: { HostIp: "", HostPort: "8080" } });
  assert.deepEqual(parsePort("127.0.0.1:8080:80"), { key: "80/tcp", binding: { HostIp: "127.0.0.1", HostPort: "8080" } });
  assert.deepEqual(parsePort("[::1]::80"), { key: "80/tcp", binding: { HostIp: "::1", HostPort: "" } });
  assert.deepEqual(parsePort("80"), { key: "80/tcp", binding: { HostIp: "", HostPort: "" } });
  assert.deepEqual(parsePort("53:53/udp"), { key: "53/udp", binding: { HostIp: "", HostPort: "53" } });
  for (const bad of ["", "x:80", "80/http", "8080:80/tcp/x", ":8080:80", "a.b:8080:http"]) {
    assert.throws(() => parsePort(bad), /invalid port/, bad);
  }
});

test("the run form's create body", () => {
  const b = createBody("busybox", { ports: "8080:80\n\n 53:53/udp ", volumes: "data:/data", env: "A=1\nB=2", cmd: " echo hi " });
  assert.deepEqual(b.ExposedPorts, { "80/tcp": {}, "53/udp": {} });
  assert.deepEqual(b.HostConfig.PortBindings["80/tcp"], [{ HostIp: "", HostPort: "8080" }]);
  assert.deepEqual(b.HostConfig.Binds, ["data:/data"]);
  assert.deepEqual(b.Env, ["A=1", "B=2"]);
  assert.deepEqual(b.Cmd, ["sh", "-c", "echo hi"]);
  assert.equal(createBody("busybox", { ports: "", volumes: "", env: "", cmd: "" }).Cmd, undefined);
});

function tarEntry(name, body, type = "0") {
  const h = new Uint8Array(512);
  const put = (off, s) => h.set(new TextEncoder().encode(s), off);
  put(0, name);
  put(124, body.length.toString(8).padStart(11, "0"));
  h[156] = type.charCodeAt(0);
  put(257, "ustar\0");
  const data = new Uint8Array(Math.ceil(body.length / 512) * 512);
  data.set(new TextEncoder().encode(body));
  return [h, data];
}

test("a tar from the archive API, listed one level deep", () => {
  const long = "data/" + "x".repeat(120);
  const parts = [
    ...tarEntry("data/", "", "5"),
    ...tarEntry("data/greeting.txt", "hello\n"),
    ...tarEntry("data/sub/", "", "5"),
    ...tarEntry("data/sub/a", "12345"),
    ...tarEntry("data/sub/b", "123"),
    ...tarEntry("././@LongLink", long, "L"),
    ...tarEntry("data/xxxx", "1"),
    new Uint8Array(1024),
  ];
  const buf = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    buf.set(p, off);
    off += p.length;
  }
  const entries = readTar(buf.buffer);
  assert.deepEqual(entries.map((e) => e.name), ["data", "data/greeting.txt", "data/sub", "data/sub/a", "data/sub/b", long]);
  assert.deepEqual(children(entries), [
    { name: "sub", size: 8, type: "dir" },
    { name: "x".repeat(120), size: 1, type: "file" },
    { name: "greeting.txt", size: 6, type: "file" },
  ].sort((a, b) => (b.type === "dir") - (a.type === "dir") || b.size - a.size));
});

test("compose projects grouped by label", () => {
  const c = (id, p, s) => ({ Id: id, Labels: p ? { "com.docker.compose.project": p, "com.docker.compose.service": s } : {} });
  const g = groupProjects([c("1", "b", "web"), c("2", "a", "db"), c("3", "b", "api"), c("4"), c("5", "b", "web")]);
  assert.deepEqual(g.map((p) => p.project), ["a", "b"]);
  assert.deepEqual(g[1].services.map((s) => [s.service, s.containers.map((x) => x.Id)]), [["api", ["3"]], ["web", ["1", "5"]]]);
});

test("stats as docker stats computes them", () => {
  const s = {
    cpu_stats: { cpu_usage: { total_usage: 300 }, system_cpu_usage: 2000, online_cpus: 2 },
    precpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 1000 },
    memory_stats: { usage: 1000, stats: { inactive_file: 200 } },
  };
  assert.equal(cpuPercent(s), 40);
  assert.equal(memUsage(s), 800);
  assert.equal(cpuPercent({ cpu_stats: {}, precpu_stats: {} }), 0);
  assert.equal(memUsage({ memory_stats: { usage: 5, stats: { total_inactive_file: 10 } } }), 0);
});

test("formatting", () => {
  assert.equal(bytes(999), "999B");
  assert.equal(bytes(300007), "300.0kB");
  assert.equal(bytes(1_980_000), "1.98MB");
  assert.equal(human(1), "1 second");
  assert.equal(human(7200), "2 hours");
  assert.equal(short("sha256:0123456789abcdef"), "0123456789ab");
  assert.equal(seg("localhost:5000/team/app:1 x"), "localhost:5000/team/app:1%20x");
});

test("build history helpers", async () => {
  const { seconds, stepSummary, elapsed, tagsText } = await import("../../src/views/builds.js");
  assert.equal(seconds(0.04), "0.0s");
  assert.equal(seconds(12.44), "12.4s");
  assert.equal(seconds(125), "2m 5s");
  assert.equal(seconds(null), "–");
  assert.equal(stepSummary({ StepsRun: 3, TotalSteps: 3, CachedSteps: 1 }), "3 steps, 1 cached");
  assert.equal(stepSummary({ StepsRun: 2, TotalSteps: 5, CachedSteps: 0 }), "2 of 5 steps, 0 cached");
  assert.equal(stepSummary({ StepsRun: 1, TotalSteps: 1, CachedSteps: 1 }), "1 step, 1 cached");
  assert.equal(elapsed({ Duration: 1.5, StartedAt: "2026-01-01T00:00:00Z" }), 1.5);
  assert.equal(elapsed({ StartedAt: "2026-01-01T00:00:00Z" }, Date.parse("2026-01-01T00:00:03Z")), 3);
  assert.equal(elapsed({ StartedAt: "bad" }), null);
  assert.equal(tagsText({ Tags: ["a:1", "b:2"] }), "a:1, b:2");
  assert.equal(tagsText({ Tags: [] }), "<none>");
});
