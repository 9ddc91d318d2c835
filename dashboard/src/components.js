// Small building blocks shared by the views: the `html` template tag, status messages read
// out by screen readers, buttons that report the daemon's answer, dialogs, sparklines.

import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

export const html = htm.bind(h);

// One polite live region for the whole page: what an action did, or Docker's refusal.
const noticeListeners = new Set();
let notices = [];
let seq = 0;

/** Shows a message (kind "ok" or "error") in the page's status area. */
export function notify(text, kind = "ok") {
  const n = { id: ++seq, text, kind };
  notices = [...notices.slice(-3), n];
  for (const l of noticeListeners) l(notices);
  if (kind === "ok") {
    setTimeout(() => dismiss(n.id), 6000);
  }
}

function dismiss(id) {
  notices = notices.filter((n) => n.id !== id);
  for (const l of noticeListeners) l(notices);
}

export function Notices() {
  const [list, setList] = useState(notices);
  useEffect(() => {
    noticeListeners.add(setList);
    return () => noticeListeners.delete(setList);
  }, []);
  return html`<div class="notices" role="status" aria-live="polite">
    ${list.map(
      (n) => html`<div key=${n.id} class=${"notice " + n.kind}>
        <span>${n.text}</span>
        <button type="button" class="link" onClick=${() => dismiss(n.id)} aria-label="Dismiss message">×</button>
      </div>`,
    )}
  </div>`;
}

/**
 * A button that runs `action` (async), disables itself meanwhile, and reports failure with
 * the daemon's message; `done` is announced on success.
 */
export function ActionButton({ action, label, done, danger, title, class: cls, disabled }) {
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    try {
      await action();
      if (done) notify(done);
    } catch (e) {
      notify(e.message, "error");
    } finally {
      setBusy(false);
    }
  };
  return html`<button
    type="button"
    class=${[danger ? "danger" : "", cls || ""].join(" ").trim()}
    onClick=${run}
    disabled=${busy || disabled}
    aria-busy=${busy ? "true" : "false"}
    title=${title}
  >${label}</button>`;
}

/** A modal dialog (the native <dialog>): focus moves in, Escape closes it. */
export function Dialog({ title, onClose, children }) {
  const ref = useRef();
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    const closed = () => onClose();
    d.addEventListener("close", closed);
    return () => d.removeEventListener("close", closed);
  }, []);
  const id = "dlg-" + title.replace(/\W+/g, "-");
  return html`<dialog ref=${ref} aria-labelledby=${id}>
    <h2 id=${id}>${title}</h2>
    ${children}
  </dialog>`;
}

/** A tiny line chart of the last values (0..max), with its meaning in words for readers. */
export function Sparkline({ values, max, label, text }) {
  const w = 90;
  const hgt = 22;
  const top = Math.max(max || 0, ...values, 1e-9);
  const pts = values.map((v, i) => `${(i / Math.max(values.length - 1, 1)) * w},${hgt - (v / top) * (hgt - 2) - 1}`);
  return html`<span class="spark">
    <svg width=${w} height=${hgt} role="img" aria-label=${`${label}: ${text}`} viewBox=${`0 0 ${w} ${hgt}`}>
      ${values.length > 1 ? html`<polyline points=${pts.join(" ")} />` : null}
    </svg>
    <span class="spark-text" aria-hidden="true">${text}</span>
  </span>`;
}

/** A coloured state label: running, exited, paused…, with health when there is one. */
export function StateBadge({ state, status }) {
  const health = /\((healthy|unhealthy|health: starting)\)/.exec(status || "");
  return html`<span class="badges">
    <span class=${"badge state-" + state}>${state}</span>
    ${health ? html`<span class=${"badge health-" + health[1].replace(/\W+/g, "-")}>${health[1]}</span>` : null}
  </span>`;
}

/** A labelled form field. */
export function Field({ label, hint, children, id }) {
  return html`<div class="field">
    <label for=${id}>${label}</label>
    ${children}
    ${hint ? html`<small id=${id + "-hint"}>${hint}</small>` : null}
  </div>`;
}

/** A section that shows a message when its list is empty. */
export function Empty({ children }) {
  return html`<p class="empty">${children}</p>`;
}

/**
 * A button that asks first: "Remove" opens a dialog naming what goes, whose confirm button
 * runs `action`; a refusal (e.g. Docker's "image is being used") shows in the dialog.
 */
export function ConfirmButton({ label, question, confirm, action, done, children }) {
  const [open, setOpen] = useState(false);
  const [err, setErr] = useState(null);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    setErr(null);
    try {
      await action();
      setOpen(false);
      if (done) notify(done);
    } catch (e) {
      setErr(e.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<button type="button" class="danger" onClick=${() => setOpen(true)}>${label}</button>
    ${open
      ? html`<${Dialog} title=${question} onClose=${() => setOpen(false)}>
          ${children}
          ${err ? html`<p class="error" role="alert">${err}</p>` : null}
          <div class="actions">
            <button type="button" class="danger" onClick=${run} disabled=${busy}>${confirm || label}</button>
            <button type="button" onClick=${() => setOpen(false)}>Cancel</button>
          </div>
        <//>`
      : null}`;
}
