// The page's live picture of the daemon: lists of containers, images, volumes and networks,
// fetched once and refetched when /events says something of that kind changed. Views
// subscribe with `useStore`; nothing reloads the page.

import { useEffect, useState } from "preact/hooks";
import { get, streamJson } from "./api.js";

const state = {
  containers: [],
  images: [],
  volumes: [],
  networks: [],
  df: null,
  connected: false,
  error: null,
  version: null,
  tick: 0,
};
const listeners = new Set();
const eventListeners = new Set();

function emit() {
  state.tick++;
  for (const l of listeners) l(state.tick);
}

const loaders = {
  containers: () => get("/containers/json", { all: "1" }),
  images: () => get("/images/json"),
  volumes: async () => (await get("/volumes")).Volumes || [],
  networks: () => get("/networks"),
  df: () => get("/system/df"),
};

const pending = new Map();

/** Refetches one list (debounced: a burst of events costs one request). */
export function refresh(kind) {
  if (pending.has(kind)) return pending.get(kind).promise;
  let resolve;
  const promise = new Promise((r) => (resolve = r));
  const timer = setTimeout(async () => {
    pending.delete(kind);
    try {
      state[kind] = await loaders[kind]();
      state.error = null;
    } catch (e) {
      state.error = `Cannot list ${kind}: ${e.message}`;
    }
    emit();
    resolve();
  }, 120);
  pending.set(kind, { timer, promise });
  return promise;
}

export function refreshAll() {
  return Promise.all(Object.keys(loaders).map(refresh));
}

const affects = {
  container: ["containers", "images", "volumes", "networks", "df"],
  image: ["images", "df"],
  volume: ["volumes", "df"],
  network: ["networks"],
  builder: ["df", "images"],
};

/** Calls `fn(event)` for each event from the daemon; returns the unsubscribe function. */
export function onEvent(fn) {
  eventListeners.add(fn);
  return () => eventListeners.delete(fn);
}

async function follow() {
  let delay = 500;
  for (;;) {
    try {
      await streamJson("/events", null, (ev) => {
        if (!state.connected) {
          state.connected = true;
          emit();
        }
        for (const kind of affects[ev.Type] || []) refresh(kind);
        for (const l of eventListeners) l(ev);
      });
    } catch (e) {
      state.error = `Lost the event stream: ${e.message}`;
    }
    state.connected = false;
    emit();
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
    refreshAll();
  }
}

let started = false;

/** Starts the first fetches and the event stream (once). */
export function start() {
  if (started) return;
  started = true;
  get("/version").then((v) => {
    state.version = v;
    emit();
  }, () => {});
  refreshAll();
  // The stream is up as soon as the daemon answers its headers; mark connected then.
  state.connected = true;
  follow();
}

/** The store, re-rendering the calling component when it changes. */
export function useStore() {
  const [, set] = useState(0);
  useEffect(() => {
    listeners.add(set);
    return () => listeners.delete(set);
  }, []);
  return state;
}
