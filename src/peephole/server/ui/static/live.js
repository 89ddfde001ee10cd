// Live updates: the page names its stream in <meta name="peephole-live">; probe states,
// snapshots, log lines and exception counts arrive as Server-Sent Events from /live.
// Everything received is written with textContent.

function clock(seconds) {
  const d = new Date(seconds * 1000);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ` +
    `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

function link(href, text) {
  const a = el("a", null, text);
  a.href = href;
  return a;
}

function onProbe(probe) {
  for (const pill of document.querySelectorAll(`[data-state="${CSS.escape(probe.id)}"]`)) {
    pill.textContent = probe.state;
    pill.className = `pill ${probe.state}`;
    pill.title = probe.summary;
  }
  for (const s of document.querySelectorAll(`[data-summary="${CSS.escape(probe.id)}"]`)) s.textContent = probe.summary;
  statusRows(probe);
  for (const h of document.querySelectorAll(`[data-captures="${CSS.escape(probe.id)}"]`)) {
    h.textContent = h.textContent.replace(/^\d+/, String(probe.captures));
  }
}

function statusRows(probe) {
  const table = document.querySelector(`table[data-statuses="${CSS.escape(probe.id)}"] tbody`);
  if (!table || !probe.statuses.length) return;
  table.replaceChildren(...probe.statuses.map((s) => {
    const row = el("tr", `status ${s.state}`);
    const cells = [s.instance_id, s.state, s.hits, s.captures, s.drops, s.condition_errors,
      `${(s.time_ns / 1000).toFixed(1)} µs`, s.message ?? ""];
    cells.forEach((value, i) => row.append(i === 0 ? wrap("td", el("code", null, String(value))) : el("td", null, String(value))));
    return row;
  }));
}

function wrap(tag, child) {
  const node = el(tag);
  node.append(child);
  return node;
}

// Events the page shows already (its rows link to them): a replayed one is not added twice.
const seen = new Set();

function shown(id) {
  if (!seen.size) {
    for (const row of document.querySelectorAll('[data-href^="/events/"]')) seen.add(row.dataset.href.slice(8));
  }
  if (seen.has(id)) return true;
  seen.add(id);
  return false;
}

function onHit(event) {
  const list = document.getElementById("hits");
  if (!list || list.dataset.kind !== event.type || shown(event.id)) return;
  const item = el("li", "fresh");
  item.dataset.nav = "";
  item.dataset.href = `/events/${encodeURIComponent(event.id)}`;
  item.append(link(item.dataset.href, clock(event.time)), " ", el("code", null, String(event.instance_id).slice(0, 8)));
  if (event.message !== null) item.append(" ", el("span", "message", event.message));
  list.prepend(item);
  document.getElementById("no-hits")?.setAttribute("hidden", "");
}

const paused = { on: false, held: [] };

function logMatches(event) {
  const level = document.getElementById("log-level")?.value;
  const text = document.getElementById("log-text")?.value.toLowerCase() || "";
  return (!level || event.level === level) && (!text || String(event.message).toLowerCase().includes(text));
}

function showLog(event) {
  const list = document.getElementById("logs");
  if (!list || !logMatches(event) || shown(event.id)) return;
  const item = el("li", `level-${event.level} fresh`);
  item.dataset.level = event.level;
  item.dataset.nav = "";
  item.dataset.href = `/events/${encodeURIComponent(event.id)}`;
  const svc = link(`/probes/${encodeURIComponent(event.probe_id)}`, event.service);
  svc.className = "svc";
  item.append(el("time", null, clock(event.time)), " ", el("span", "lvl", event.level), " ", svc, " ",
    el("span", "message", event.message ?? ""));
  list.prepend(item);
  while (list.children.length > 1000) list.lastElementChild.remove();
  document.getElementById("no-logs")?.setAttribute("hidden", "");
}

function onLog(event) {
  if (paused.on) {
    paused.held.push(event);
    const count = document.getElementById("paused-count");
    if (count) count.textContent = `${paused.held.length} new while paused`;
    return;
  }
  showLog(event);
}

function onException(event, replay) {
  const row = document.querySelector(`tr[data-fingerprint="${CSS.escape(event.fingerprint || "")}"]`);
  if (!row) {
    document.getElementById("new-groups")?.removeAttribute("hidden");
    return;
  }
  if (replay) return;  // stored around the time the page was made: maybe counted already
  const count = row.querySelector(".count");
  count.textContent = String(Number(count.textContent) + (Number(event.count) || 1));
  row.querySelector(".last").textContent = "just now";
  row.classList.add("fresh");
}

export function setUpPause() {
  const button = document.getElementById("pause");
  if (!button) return;
  button.addEventListener("click", () => {
    paused.on = !paused.on;
    button.textContent = paused.on ? "Resume" : "Pause";
    button.setAttribute("aria-pressed", String(paused.on));
    if (!paused.on) {
      for (const event of paused.held.splice(0)) showLog(event);
      document.getElementById("paused-count").textContent = "";
    }
  });
}

export function follow() {
  const meta = document.querySelector('meta[name="peephole-live"]');
  if (!meta) return;
  const source = new EventSource(meta.content);
  source.addEventListener("open", () => document.body.classList.add("live"));
  source.addEventListener("error", () => document.body.classList.remove("live"));
  source.addEventListener("message", (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "error") {  // the session's token was revoked or expired
      source.close();
      window.location.assign("/login");
    } else if (data.type === "probe") onProbe(data.probe);
    else if (data.type === "event") {
      const event = data.event;
      if (event.type === "log") { onLog(event); onHit(event); }
      else if (event.type === "snapshot") onHit(event);
      else if (event.type === "exception") onException(event, data.replay);
    }
  });
  window.addEventListener("beforeunload", () => source.close());
}
