// What every page shares: keyboard navigation (j/k, Enter, /, Esc), filter boxes, a click
// on a source line opening the probe form, the logpoint template preview, and wiring the
// variable trees and the live stream. Listeners are delegated from the document, so parts
// that htmx swaps in work without being set up again.

import { drawAll } from "./tree.js";
import { follow, setUpPause } from "./live.js";

function navItems() {
  return [...document.querySelectorAll("[data-nav]")].filter((n) => !n.hidden && n.offsetParent !== null);
}

function move(step) {
  const items = navItems();
  if (!items.length) return;
  const current = items.findIndex((n) => n.classList.contains("cursor"));
  const next = Math.max(0, Math.min(items.length - 1, current + step));
  items[current]?.classList.remove("cursor");
  items[next].classList.add("cursor");
  items[next].scrollIntoView({ block: "nearest" });
}

function typing(target) {
  return target.closest("input, textarea, select, [contenteditable]") !== null;
}

function closePanel() {
  const form = document.getElementById("probe-form");
  if (form && document.getElementById("panel")) {
    const hint = document.createElement("p");
    hint.className = "hint";
    hint.textContent = "Click a line number to add a tracepoint or a logpoint.";
    form.replaceWith(hint);
    document.querySelector(".ln.selected")?.classList.remove("selected");
    return true;
  }
  return false;
}

function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "Escape") {
    if (typing(event.target)) event.target.blur();
    if (!closePanel()) document.querySelector(".cursor")?.classList.remove("cursor");
    return;
  }
  if (typing(event.target)) return;
  if (event.key === "j") move(1);
  else if (event.key === "k") move(-1);
  else if (event.key === "Enter") {
    const chosen = document.querySelector("[data-nav].cursor");
    if (chosen?.dataset.href) window.location.assign(chosen.dataset.href);
  } else if (event.key === "/") {
    const filter = document.querySelector("input.filter");
    if (filter) { event.preventDefault(); filter.focus(); filter.select(); }
  } else return;
}

function applyFilter(input) {
  const words = input.value.toLowerCase().split(/\s+/).filter(Boolean);
  for (const item of document.querySelectorAll(input.dataset.filter)) {
    const text = item.textContent.toLowerCase();
    item.hidden = !words.every((w) => text.includes(w));
  }
}

function openLine(anchor) {
  const source = document.getElementById("source");
  const line = anchor.closest(".ln");
  if (!source || !line || !("canAdd" in source.dataset) || !window.htmx) return false;
  document.querySelector(".ln.selected")?.classList.remove("selected");
  line.classList.add("selected");
  const query = new URLSearchParams({ service: source.dataset.service, file: source.dataset.path, line: line.dataset.line });
  window.htmx.ajax("GET", `/probes/new?${query}`, { target: "#panel", swap: "innerHTML" });
  const here = new URL(window.location.href);
  here.searchParams.set("line", line.dataset.line);
  here.hash = `L${line.dataset.line}`;
  history.replaceState(null, "", here);
  return true;
}

// The placeholders of a logpoint template, as the server and the agent will read them ({{ and
// }} are braces), for the preview only: the server checks the template (protocol.py).
export function placeholders(template) {
  const found = [];
  for (let i = 0; i < template.length; i++) {
    if (template.startsWith("{{", i) || template.startsWith("}}", i)) { i++; continue; }
    if (template[i] !== "{") continue;
    const end = placeholderEnd(template, i + 1);
    found.push({ text: template.slice(i + 1, end < 0 ? template.length : end), closed: end >= 0 });
    if (end < 0) break;
    i = end;
  }
  return found;
}

// Where the placeholder whose text starts at `start` ends (its "}"), or -1 when it is not
// closed: brackets and strings inside it are skipped, as protocol._placeholder_end does.
function placeholderEnd(template, start) {
  let depth = 0, quote = "", spec = false;
  for (let i = start; i < template.length; i++) {
    const c = template[i];
    if (quote) {
      if (c === "\\") i++;
      else if (template.startsWith(quote, i)) { i += quote.length - 1; quote = ""; }
    } else if (spec) {
      if (c === "}") return i;
    } else if (c === "'" || c === '"') {
      quote = template.startsWith(c.repeat(3), i) ? c.repeat(3) : c;
      i += quote.length - 1;
    } else if ("([{".includes(c)) depth++;
    else if (c === ")" || c === "]" || (c === "}" && depth > 0)) depth--;
    else if (c === "}") return i;
    else if (depth === 0 && (c === ":" || (c === "!" && template[i + 1] !== "="))) spec = true;
  }
  return -1;
}

function preview(input) {
  const box = document.querySelector(input.dataset.preview);
  if (!box) return;
  const items = placeholders(input.value);
  box.replaceChildren();
  if (!items.length) { box.textContent = "no placeholders: the line is logged as written"; return; }
  box.append("values read at the line: ");
  for (const item of items) {
    const code = document.createElement("code");
    code.className = item.closed && item.text.trim() ? "placeholder" : "placeholder bad";
    code.textContent = item.closed ? item.text : `${item.text} (no closing brace)`;
    box.append(code, " ");
  }
}

function kindChanged(form) {
  const kind = form.querySelector('input[name="kind"]:checked')?.value;
  form.classList.toggle("kind-logpoint", kind === "logpoint");
  const template = form.querySelector("input[data-preview]");
  if (template) preview(template);
}

function tick() {
  const now = Date.now() / 1000;
  for (const span of document.querySelectorAll(".countdown[data-expires]")) {
    const at = Number(span.dataset.expires);
    if (!at) continue;
    const left = at - now;
    if (left <= 0) { span.textContent = "expired"; continue; }
    const units = [[86400, "d"], [3600, "h"], [60, "min"]];
    const unit = units.find(([size]) => left >= size);
    span.textContent = unit ? `in ${Math.floor(left / unit[0])} ${unit[1]}` : `in ${Math.floor(left)} s`;
  }
}

function setUp() {
  drawAll();
  follow();
  setUpPause();
  for (const form of document.querySelectorAll(".probe-form")) kindChanged(form);
  for (const input of document.querySelectorAll("input.filter")) if (input.value && input.dataset.filter) applyFilter(input);
  setInterval(tick, 1000);
  document.addEventListener("keydown", onKey);
  document.addEventListener("input", (event) => {
    const target = event.target;
    if (target.matches("input.filter[data-filter]")) applyFilter(target);
    if (target.matches("input[data-preview]")) preview(target);
  });
  document.addEventListener("change", (event) => {
    const target = event.target;
    if (target.matches('input[name="kind"]')) kindChanged(target.form);
    if (target.matches("[data-only-changed]")) document.getElementById("compare")?.classList.toggle("only-changed", target.checked);
  });
  document.addEventListener("click", (event) => {
    const target = event.target;
    if (target.matches(".ln a.nr") && openLine(target)) event.preventDefault();
    else if (target.matches("[data-close]")) closePanel();
    else if (target.matches("[data-toggle-lib]")) {
      const shown = document.body.classList.toggle("show-lib");
      target.textContent = target.textContent.replace(/^(show|hide)/, shown ? "hide" : "show");
    }
  });
  document.body.addEventListener("htmx:load", (event) => {  // new content from htmx
    const added = event.target;
    drawAll(added);
    const forms = added.matches(".probe-form") ? [added] : [...added.querySelectorAll(".probe-form")];
    for (const form of forms) kindChanged(form);
    forms[0]?.querySelector(".field-error")?.parentElement.querySelector("input, textarea")?.focus();
  });
  if (window.location.hash.startsWith("#L")) document.querySelector(window.location.hash)?.scrollIntoView({ block: "center" });
}

setUp();
