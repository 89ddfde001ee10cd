// The variable tree: captured values (protocol.py's JSON shape) drawn lazily, so a snapshot
// of 10,000 nodes opens at once: a node's children are built the first time it is opened.
// Captured data is hostile: it only ever reaches the page through textContent.

const CUTS = {
  depth: "depth limit", items: "items omitted", length: "truncated", budget: "budget full",
  redacted: "redacted", unsupported: "not captured",
};
// Mirrors protocol.CONTROL_RANGES (a test compares them): C0 and C1 controls, DEL, and the
// bidirectional marks and overrides that reorder a line. Escaped as protocol.printable does.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e-\u200f\u202a-\u202e\u2066-\u2069]/g;

function visible(text) {
  return String(text).replace(CONTROL, (c) => {
    const named = { "\n": "\\n", "\r": "\\r", "\t": "\\t" }[c];
    const code = c.charCodeAt(0);
    return named || (code < 0x100 ? "\\x" + code.toString(16).padStart(2, "0")
                                  : "\\u" + code.toString(16).padStart(4, "0"));
  });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function children(value) {
  if (!value || typeof value !== "object") return [];
  if (Array.isArray(value.items)) return value.items.map((v, i) => [`[${i}]`, v]);
  if (Array.isArray(value.entries)) {
    return value.entries
      .filter((pair) => Array.isArray(pair) && pair.length === 2)
      .map(([k, v]) => [`[${summary(k, 40)}]`, v]);
  }
  if (value.fields && typeof value.fields === "object") return Object.entries(value.fields);
  return [];
}

export function summary(value, room = 80) {
  if (!value || typeof value !== "object") return visible(JSON.stringify(value));
  const kind = visible(value.t ?? "?");
  if ("ref" in value) return `${kind} ‹same as ${visible(value.ref_path ?? value.ref)}›`;
  if (value.t === "error") return `‹error: ${visible(value.error)}›`;
  if ("v" in value) {
    let text = value.t === "NoneType" ? "None" : value.t === "str" ? JSON.stringify(value.v) : String(value.v);
    text = visible(text);
    return text.length > room ? text.slice(0, room) + "…" : text;
  }
  if (value.cut && !children(value).length && !value.fields) return kind;  // the cut says why
  const size = value.len ?? children(value).length;
  return value.fields ? kind : `${kind} (${size})`;
}

function cutText(value) {
  if (!value || typeof value !== "object" || !value.cut) return null;
  const word = CUTS[value.cut] || visible(value.cut);
  if (value.cut === "length") return `‹${word}, ${value.len ?? "?"} chars›`;
  return `‹${word}›`;
}

// A captured value as plain JSON (for "copy as JSON"): cuts stay visible as strings.
export function plain(value) {
  if (!value || typeof value !== "object") return value;
  if (value.cut && !("v" in value) && !children(value).length) return `‹${CUTS[value.cut] || value.cut}›`;
  if ("ref" in value) return `‹same as ${value.ref_path ?? value.ref}›`;
  if ("v" in value) return value.v;
  if (Array.isArray(value.items)) return value.items.map(plain);
  if (Array.isArray(value.entries)) {
    const out = {};
    for (const [k, v] of value.entries) out[typeof k === "object" && k && "v" in k ? String(k.v) : summary(k)] = plain(v);
    return out;
  }
  if (value.fields) {
    const out = { __type__: value.t };
    for (const [k, v] of Object.entries(value.fields)) out[k] = plain(v);
    return out;
  }
  return null;
}

function node(name, value) {
  const item = el("li", "node");
  const row = el("div", "row");
  const kids = children(value);
  const toggle = el("button", "toggle", kids.length ? "▸" : " ");
  toggle.type = "button";
  toggle.disabled = !kids.length;
  toggle.setAttribute("aria-expanded", "false");
  row.append(toggle, el("span", "name", visible(name)), el("span", "eq", " = "));
  const shown = el("span", "value", summary(value));
  row.append(shown);
  if (value && typeof value === "object" && "v" in value && value.t !== "NoneType") {
    row.append(el("span", "type", visible(value.t)));  // containers name their type already
  }
  const cut = cutText(value);
  if (cut) row.append(el("span", `cut cut-${value.cut}`, cut));
  if (value && value.omitted) row.append(el("span", "cut cut-items", `‹${value.omitted} more omitted›`));
  const copy = el("button", "copy", "copy");
  copy.type = "button";
  copy.title = "Copy the value as JSON";
  copy.addEventListener("click", (event) => {
    event.stopPropagation();
    const text = JSON.stringify(plain(value), null, 2);
    copy.dataset.copied = text;
    navigator.clipboard?.writeText(text).then(() => { copy.textContent = "copied"; }, () => {});
  });
  row.append(copy);
  item.append(row);
  if (kids.length) {
    let list = null;
    const open = () => {
      if (!list) {
        list = el("ul", "children");
        for (const [k, v] of kids) list.append(node(k, v));
        item.append(list);
      }
      const expanded = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(expanded));
      toggle.textContent = expanded ? "▾" : "▸";
      list.hidden = !expanded;
    };
    toggle.addEventListener("click", open);
    row.addEventListener("dblclick", open);
  }
  return item;
}

export function drawTree(container, values) {
  const list = el("ul", "tree-root");
  for (const [name, value] of Object.entries(values || {})) list.append(node(name, value));
  if (!list.children.length) list.append(el("li", "empty", "nothing captured"));
  container.replaceChildren(list);
}

export function drawAll(root = document) {
  for (const container of root.querySelectorAll(".tree[data-source]")) {
    const source = document.getElementById(container.dataset.source);
    if (!source) continue;
    drawTree(container, JSON.parse(source.textContent));
  }
}
