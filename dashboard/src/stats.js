// Live CPU and memory per container, from GET /containers/{id}/stats?stream=1: one stream per
// watched container, shared by every view that shows it, closed when none does. Figures are
// computed as `docker stats` computes them.

import { useEffect, useState } from "preact/hooks";
import { streamJson } from "./api.js";

const KEEP = 30;
const streams = new Map(); // id -> { users, abort, cpu: [], mem: [], limit, listeners }

/** CPU percent of one stats sample, as docker stats: share of the host times its CPUs. */
export function cpuPercent(s) {
  const cpu = s.cpu_stats || {};
  const pre = s.precpu_stats || {};
  const cpuDelta = (cpu.cpu_usage?.total_usage || 0) - (pre.cpu_usage?.total_usage || 0);
  const sysDelta = (cpu.system_cpu_usage || 0) - (pre.system_cpu_usage || 0);
  const online = cpu.online_cpus || cpu.cpu_usage?.percpu_usage?.length || 1;
  return sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * online * 100 : 0;
}

/** Memory in use, less the page cache that could be dropped (cgroup v2, then v1). */
export function memUsage(s) {
  const m = s.memory_stats || {};
  const st = m.stats || {};
  const cache = st.inactive_file ?? st.total_inactive_file ?? 0;
  return Math.max(0, (m.usage || 0) - cache);
}

function open(id) {
  const entry = { users: 0, abort: new AbortController(), cpu: [], mem: [], limit: 0, listeners: new Set() };
  streams.set(id, entry);
  streamJson(`/containers/${encodeURIComponent(id)}/stats`, { stream: "1" }, (s) => {
    entry.cpu = [...entry.cpu, cpuPercent(s)].slice(-KEEP);
    entry.mem = [...entry.mem, memUsage(s)].slice(-KEEP);
    entry.limit = s.memory_stats?.limit || 0;
    for (const l of entry.listeners) l({ cpu: entry.cpu, mem: entry.mem, limit: entry.limit });
  }, { signal: entry.abort.signal }).catch(() => {});
  return entry;
}

/** The last samples of a running container (empty arrays while stopped). */
export function useStats(id, running) {
  const [data, setData] = useState({ cpu: [], mem: [], limit: 0 });
  useEffect(() => {
    if (!running) return undefined;
    const entry = streams.get(id) || open(id);
    entry.users++;
    entry.listeners.add(setData);
    setData({ cpu: entry.cpu, mem: entry.mem, limit: entry.limit });
    return () => {
      entry.listeners.delete(setData);
      if (--entry.users === 0) {
        entry.abort.abort();
        streams.delete(id);
      }
    };
  }, [id, running]);
  return data;
}
