/* duosync console: a small single-page app over the REST API (/api/v1).
 *
 * Plain JavaScript, no build step, no third-party code. Every value that comes
 * from the API is put into the page with textContent or setAttribute (never as
 * HTML). The API token lives in sessionStorage only (this tab, this session).
 *
 * Routes (the URL hash):
 *   #/             task list
 *   #/new          create a task
 *   #/tasks/NAME   one task (NAME is URL-encoded)
 *   #token=XYZ     given once: stored, then removed from the address bar
 */
"use strict";

(function () {
  const TOKEN_KEY = "duosync.apiToken";
  // The API lives next to /console/ (works behind a path prefix too).
  const ROOT = window.location.pathname.replace(/\/console(\/.*)?$/, "");
  const API = ROOT + "/api/v1";
  const LIST_POLL_MS = 1500;
  const DETAIL_POLL_MS = 1000;

  const ACTION_LABELS = {
    start: "Start",
    pause: "Pause",
    resume: "Resume",
    release: "Release",
    configure_reverse: "Configure reverse task",
  };
  const CONFIRM = {
    release: "Release this task? It cannot be started again afterwards.",
  };

  // ---------------------------------------------------------------- DOM helpers

  /** Make an element: el("a", {href: "#/", "data-testid": "x"}, "text", child...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "onclick" || key === "onsubmit" || key === "onchange") {
        node.addEventListener(key.slice(2), value);
      } else if (key === "text") {
        node.textContent = String(value);
      } else if (value === true) {
        node.setAttribute(key, "");
      } else {
        node.setAttribute(key, String(value));
      }
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
    return node;
  }

  function setText(node, value) {
    const text = value === null || value === undefined ? "" : String(value);
    if (node.textContent !== text) node.textContent = text;
  }

  function taskHref(name) {
    return "#/tasks/" + encodeURIComponent(name);
  }

  function taskUrl(name, suffix) {
    return API + "/tasks/" + encodeURIComponent(name) + (suffix || "");
  }

  // ------------------------------------------------------------------ formatting

  function fmtInt(n) {
    if (n === null || n === undefined) return "\u2014";
    return Math.round(Number(n)).toLocaleString("en-US");
  }

  function fmtRate(n) {
    if (n === null || n === undefined) return "\u2014";
    return Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return "\u2014";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
      v /= 1024;
      i += 1;
    }
    return (i === 0 ? String(Math.round(v)) : v.toFixed(1)) + " " + units[i];
  }

  function fmtSeconds(s) {
    if (s === null || s === undefined) return "\u2014";
    const v = Number(s);
    if (v < 60) return v.toFixed(v < 10 ? 1 : 0) + " s";
    const m = Math.floor(v / 60);
    if (m < 60) return m + " min " + Math.round(v % 60) + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function fmtTime(t) {
    if (t === null || t === undefined || t === "") return "";
    const d = typeof t === "number" ? new Date(t * 1000) : new Date(t);
    return isNaN(d.getTime()) ? String(t) : d.toLocaleString();
  }

  /** A countdown to a Unix time: "in 12 s", "in 2 min 5 s", "now". */
  function fmtCountdown(t) {
    if (t === null || t === undefined) return "";
    const left = Math.ceil(Number(t) - Date.now() / 1000);
    if (left <= 0) return "now";
    return "in " + (left < 60 ? left + " s" : fmtSeconds(left));
  }

  /** How long ago a Unix time was: "5 s", "3 min 2 s". */
  function fmtAgo(t) {
    if (t === null || t === undefined) return "";
    return fmtSeconds(Math.max(0, Math.round(Date.now() / 1000 - Number(t))));
  }

  /** A Unix time as a local clock time (hours and minutes, and seconds if asked). */
  function fmtClock(t, seconds) {
    const opts = { hour: "2-digit", minute: "2-digit" };
    if (seconds) opts.second = "2-digit";
    return new Date(Number(t) * 1000).toLocaleTimeString([], opts);
  }

  function plural(n, one, many) {
    return fmtInt(n) + " " + (Number(n) === 1 ? one : many);
  }

  function fmtJson(v) {
    if (v === null || v === undefined) return "";
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  // ---------------------------------------------------------------------- token

  function getToken() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function setToken(token) {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("forget-token").hidden = !token;
  }

  /** Take #token=... (or #/route&token=...) from the address bar, once. */
  function takeTokenFromHash() {
    const hash = window.location.hash.replace(/^#/, "");
    const m = hash.match(/(?:^|[&?])token=([^&]*)/);
    if (!m) return;
    setToken(decodeURIComponent(m[1]));
    let rest = hash.replace(/(?:^|[&?])token=[^&]*/, "").replace(/^[&?]/, "");
    if (!rest.startsWith("/")) rest = "/";
    // replaceState: the token never stays in the address bar nor in the history
    window.history.replaceState(null, "", window.location.pathname + window.location.search + "#" + rest);
  }

  // ------------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, body) {
      super(apiMessage(status, body));
      this.status = status;
      this.body = body;
    }
  }

  function apiMessage(status, body) {
    if (body && typeof body === "object") {
      const text = body.error || body.message || body.detail;
      if (text) return typeof text === "string" ? text : JSON.stringify(text);
    }
    return "HTTP " + status;
  }

  class Unauthorized extends Error {}

  async function api(method, url, body) {
    const headers = { Authorization: "Bearer " + getToken(), Accept: "application/json" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      showConn("cannot reach the duosync service", true);
      throw new ApiError(0, { error: "cannot reach the duosync service (" + err.message + ")" });
    }
    showConn("", false);
    let data = null;
    const text = await response.text();
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_e) {
        data = { error: text.slice(0, 500) };
      }
    }
    if (response.status === 401) {
      setToken("");
      showTokenForm("The API refused the token (" + apiMessage(401, data) + "). Enter a valid token.");
      throw new Unauthorized("unauthorized");
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  function showConn(text, bad) {
    const node = document.getElementById("conn-status");
    setText(node, text);
    node.classList.toggle("bad", !!bad);
  }

  // ------------------------------------------------------------------- routing

  const app = () => document.getElementById("app");
  let generation = 0; // bumped on every route change: stale polls stop themselves
  let pollTimer = null;

  function stopPolling() {
    generation += 1;
    if (pollTimer !== null) clearTimeout(pollTimer);
    pollTimer = null;
  }

  /** Call *fn* now and every *ms* after it finished, until the route changes. */
  function poll(fn, ms) {
    const gen = generation;
    const tick = async () => {
      if (gen !== generation) return;
      try {
        await fn(() => gen !== generation);
      } catch (err) {
        if (err instanceof Unauthorized) return; // the token form is up: stop
        console.error(err);
      }
      if (gen === generation) pollTimer = setTimeout(tick, ms);
    };
    tick();
  }

  function route() {
    stopPolling();
    takeTokenFromHash();
    if (!getToken()) {
      showTokenForm("");
      return;
    }
    document.getElementById("forget-token").hidden = false;
    const hash = window.location.hash.replace(/^#/, "") || "/";
    let m;
    if (hash === "/" || hash === "") {
      renderList();
    } else if (hash === "/new") {
      renderCreate();
    } else if ((m = hash.match(/^\/tasks\/(.+)$/))) {
      let name;
      try {
        name = decodeURIComponent(m[1]);
      } catch (_e) {
        name = m[1];
      }
      renderDetail(name);
    } else {
      clear(app()).appendChild(
        el("section", { class: "card" }, el("h1", { text: "Not found" }), el("p", {}, el("a", { href: "#/", text: "Back to the tasks" })))
      );
    }
  }

  // ---------------------------------------------------------------- token form

  function showTokenForm(reason) {
    stopPolling();
    const input = el("input", {
      id: "token-input",
      type: "password",
      autocomplete: "off",
      required: true,
      minlength: "1",
      "data-testid": "token-input",
    });
    const form = el(
      "form",
      { class: "card narrow", "data-testid": "token-form", onsubmit: (ev) => {
        ev.preventDefault();
        setToken(input.value.trim());
        route();
      } },
      el("h1", { text: "API token" }),
      el("p", { class: "muted" }, "The console talks to the duosync API with its bearer token (",
        el("code", { text: "DUOSYNC_API_TOKEN" }), ", or the file ", el("code", { text: "HOME/api-token" }),
        "). It is kept in this browser tab only."),
      reason ? el("p", { class: "error", role: "alert", "data-testid": "token-error", text: reason }) : null,
      el("label", { for: "token-input", text: "Token" }),
      input,
      el("div", { class: "buttons" }, el("button", { type: "submit", class: "primary", "data-testid": "token-submit", text: "Continue" }))
    );
    clear(app()).appendChild(form);
    input.focus();
  }

  // ----------------------------------------------------------------- task list

  function renderList() {
    const tbody = el("tbody", { "data-testid": "task-rows" });
    const empty = el("p", { class: "muted", "data-testid": "no-tasks", hidden: true },
      "No tasks yet. ", el("a", { href: "#/new", text: "Create one" }), ".");
    const error = el("p", { class: "error", role: "alert", "data-testid": "list-error", hidden: true });
    const view = el(
      "section",
      { class: "card", "data-testid": "task-list" },
      el("div", { class: "title-row" },
        el("h1", { text: "Tasks" }),
        el("a", { href: "#/new", class: "button primary", "data-testid": "new-task", text: "New task" })),
      error,
      el("table", { class: "grid" },
        el("thead", {}, el("tr", {},
          ["Name", "State", "Health", "Source \u2192 target", "Rows/s", "Lag", "Actions"].map((h) => el("th", { scope: "col", text: h })))),
        tbody),
      empty
    );
    clear(app()).appendChild(view);

    let last = "";
    poll(async (stale) => {
      let tasks;
      try {
        tasks = await api("GET", API + "/tasks");
      } catch (err) {
        if (err instanceof ApiError) {
          error.hidden = false;
          setText(error, err.message);
          return;
        }
        throw err;
      }
      if (stale()) return;
      error.hidden = true;
      const key = JSON.stringify(tasks);
      if (key === last) return; // nothing changed: keep the DOM (and the focus) as is
      last = key;
      empty.hidden = tasks.length > 0;
      clear(tbody);
      for (const t of tasks) tbody.appendChild(taskRow(t, error));
    }, LIST_POLL_MS);
  }

  function taskRow(t, errorNode) {
    const p = t.progress || {};
    const actions = el("td", { class: "actions" });
    for (const a of t.actions || []) {
      if (a === "configure_reverse") {
        actions.appendChild(el("a", { href: taskHref(t.name), class: "button", "data-testid": "action-configure_reverse", text: ACTION_LABELS[a] }));
        continue;
      }
      actions.appendChild(actionButton(t.name, a, (err) => {
        errorNode.hidden = !err;
        setText(errorNode, err ? t.name + ": " + err : "");
      }, () => {}));
    }
    return el(
      "tr",
      { "data-testid": "task-row", "data-name": t.name },
      el("td", {}, el("a", { href: taskHref(t.name), "data-testid": "task-link", text: t.name }),
        t.kind === "reverse" ? el("span", { class: "tag", text: "reverse" }) : null,
        t.kind === "two-way" ? el("span", { class: "tag", text: "two-way" }) : null),
      el("td", {}, stateBadge(t.state, "task-state"), t.error ? el("div", { class: "error small", text: t.error }) : null),
      el("td", {}, healthBadge(t, "task-health")),
      el("td", { class: "endpoints" }, el("span", { text: t.source }), " \u2192 ", el("span", { text: t.target })),
      el("td", { class: "num", "data-testid": "rows-per-second" }, t.progress ? fmtRate(p.rows_per_second) : "\u2014"),
      el("td", { class: "num", "data-testid": "lag" }, t.progress ? fmtSeconds(p.lag_seconds) : "\u2014"),
      actions
    );
  }

  function stateBadge(state, testid) {
    return el("span", { class: "state state-" + String(state).replace(/[^a-z_]/g, ""), "data-testid": testid, text: state });
  }

  // --------------------------------------------------------------------- health

  /** "healthy", "retrying" or "failed": a task's self-healing status. */
  function healthOf(t) {
    const h = t.health || {};
    if (h.retrying || (t.progress && t.progress.retrying)) return "retrying";
    if (t.state === "failed" || h.healthy === false) return "failed";
    return "healthy";
  }

  function healthText(t) {
    const h = t.health || {};
    const kind = healthOf(t);
    if (kind !== "retrying") return kind;
    return h.attempts ? "retrying (attempt " + fmtInt(h.attempts) + ")" : "retrying";
  }

  function healthBadge(t, testid) {
    const h = t.health || {};
    const kind = healthOf(t);
    return el("span", { class: "health health-" + kind, "data-testid": testid, "data-health": kind,
      title: kind === "healthy" ? null : h.last_error || null, text: healthText(t) });
  }

  // ---------------------------------------------------------------- timeline

  const EVENT_LABELS = {
    phase: "phase",
    failure: "failed",
    pause: "paused",
    retry: "retry",
    recovered: "recovered",
    note: "note",
  };

  /** What a history event is, for the timeline: phase, failure, pause, retry,
   * recovered or note (events without a kind, of older services: from the states). */
  function eventCategory(h) {
    const kind = h.kind || (h.from && h.from === h.to ? "note" : "state");
    if (kind === "retry" || kind === "recovered" || kind === "note") return kind;
    if (kind !== "state") return "note";
    if (h.to === "failed") return "failure";
    if (h.to === "paused") return "pause";
    return "phase";
  }

  function timelineItem(h) {
    const cat = eventCategory(h);
    const when = typeof h.at === "number" ? new Date(h.at * 1000) : new Date(h.at);
    const label = cat === "note" && h.kind && h.kind !== "note" ? h.kind : EVENT_LABELS[cat];
    const move = (cat === "phase" || cat === "failure" || cat === "pause") && (h.from || h.to);
    return el("li", { class: "tl-item tl-" + cat, "data-testid": "history-row", "data-kind": cat, "data-to": h.to || "" },
      el("span", { class: "tl-dot", "aria-hidden": "true" }),
      el("div", { class: "tl-body" },
        el("div", { class: "tl-head" },
          el("time", { class: "tl-at", datetime: isNaN(when.getTime()) ? null : when.toISOString(), text: fmtTime(h.at) }),
          el("span", { class: "tl-label", "data-testid": "history-kind", text: label }),
          move ? el("span", { class: "tl-move", "data-testid": "history-move" },
            h.from ? stateBadge(h.from, "history-from") : null, h.from ? " \u2192 " : null,
            h.to ? stateBadge(h.to, "history-to") : null) : null),
        h.detail ? el("div", { class: "tl-detail", "data-testid": "history-detail", text: h.detail }) : null));
  }

  // ------------------------------------------------------------------- chart

  const SVG_NS = "http://www.w3.org/2000/svg";

  /** Make an SVG element (attributes with setAttribute, text as text nodes). */
  function svgEl(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      node.setAttribute(key, String(value));
    }
    return append(node, children);
  }

  /** The last hour of rows/s and lag (progress.chart) as an inline SVG: two
   * polylines, each on its own scale (rows/s on the left, lag on the right). */
  function chartSvg(points) {
    const W = 720, H = 210, L = 28, R = 28, T = 22, B = 24;
    const pw = W - L - R;
    const ph = H - T - B;
    const end = Number(points[points.length - 1].at);
    const shown = points.filter((pt) => Number(pt.at) >= end - 3600);
    const span = Math.max(60, end - Number(shown[0].at));
    const start = end - span;
    const rows = shown.map((pt) => Math.max(0, Number(pt.rows_per_second) || 0));
    const lagged = shown.filter((pt) => pt.lag_seconds !== null && pt.lag_seconds !== undefined);
    const rowsMax = Math.max(0, ...rows);
    const lagMax = Math.max(0, ...lagged.map((pt) => Number(pt.lag_seconds)));
    const x = (at) => (L + ((Number(at) - start) / span) * pw).toFixed(1);
    const y = (v, max) => (T + ph - (max > 0 ? Math.min(v, max) / max : 0) * ph).toFixed(1);
    const line = (list, value, max, cls, testid) => {
      if (!list.length) return null;
      const coords = list.map((pt) => x(pt.at) + "," + y(value(pt), max));
      const lastXY = coords[coords.length - 1].split(",");
      return svgEl("g", { class: cls, "data-testid": testid },
        svgEl("polyline", { points: coords.join(" "), fill: "none" }),
        svgEl("circle", { cx: lastXY[0], cy: lastXY[1], r: "2.5" }));
    };
    const label = (px, py, anchor, cls, text) =>
      svgEl("text", { x: px, y: py, "text-anchor": anchor, class: cls }, text);
    return svgEl("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", class: "chart-svg", role: "img",
      "aria-label": "rows per second and lag over the last hour", "data-testid": "chart-svg" },
      svgEl("title", {}, "Rows/s and lag, last hour"),
      svgEl("rect", { x: L, y: T, width: pw, height: ph, class: "chart-frame" }),
      svgEl("line", { x1: L, x2: L + pw, y1: T + ph / 2, y2: T + ph / 2, class: "chart-grid" }),
      // each scale's top is its maximum: rows/s on the left, lag on the right
      label(L, T - 7, "start", "chart-axis chart-rows", "\u2191 max " + fmtRate(rowsMax) + " rows/s"),
      label(L - 5, T + ph, "end", "chart-axis", "0"),
      label(L + pw, T - 7, "end", "chart-axis chart-lag", lagged.length ? "lag max " + fmtSeconds(lagMax) + " \u2191" : "no lag measured"),
      label(L + pw + 5, T + ph, "start", "chart-axis", "0 s"),
      label(L, H - 6, "start", "chart-axis", fmtClock(start, span < 600)),
      label(L + pw, H - 6, "end", "chart-axis", fmtClock(end, span < 600)),
      line(shown, (pt) => Math.max(0, Number(pt.rows_per_second) || 0), rowsMax, "chart-rows", "chart-rows"),
      line(lagged, (pt) => Number(pt.lag_seconds), lagMax, "chart-lag", "chart-lag"));
  }

  /** A button that POSTs an action; *report(message|null)* shows its outcome. */
  function actionButton(name, action, report, after) {
    const button = el("button", {
      type: "button",
      class: action === "release" ? "danger" : action === "start" || action === "resume" ? "primary" : "",
      "data-testid": "action-" + action,
      text: ACTION_LABELS[action] || action,
    });
    button.addEventListener("click", async () => {
      if (CONFIRM[action] && !window.confirm(CONFIRM[action])) return;
      button.disabled = true;
      report(null);
      try {
        await api("POST", taskUrl(name, "/" + action));
      } catch (err) {
        if (err instanceof ApiError) report(err.message);
        else if (!(err instanceof Unauthorized)) report(String(err));
      } finally {
        button.disabled = false;
        after();
      }
    });
    return button;
  }

  // --------------------------------------------------------------- create form

  function field(label, input, help) {
    return el("div", { class: "field" },
      el("label", { for: input.id, text: label }),
      input,
      help ? el("div", { class: "help", text: help }) : null);
  }

  function renderCreate() {
    const name = el("input", { id: "f-name", name: "name", "data-testid": "field-name", placeholder: "shop-copy", autocomplete: "off" });
    const source = el("input", { id: "f-source", name: "source", "data-testid": "field-source", placeholder: "mariadb://user:password@host:3306", autocomplete: "off" });
    const target = el("input", { id: "f-target", name: "target", "data-testid": "field-target", placeholder: "oceanbase://user:password@host:2881", autocomplete: "off" });
    const types = ["schema", "full", "incremental"].map((t) =>
      el("label", { class: "check" },
        el("input", { type: "checkbox", name: "types", value: t, "data-testid": "type-" + t, checked: t !== "incremental" }), " " + t));
    const topology = el("select", { id: "f-topology", "data-testid": "field-topology" },
      el("option", { value: "one-way", text: "one-way" }), el("option", { value: "two-way", text: "two-way" }));
    const databases = el("input", { id: "f-databases", "data-testid": "field-databases", placeholder: "shop, billing", autocomplete: "off" });
    const renames = el("textarea", { id: "f-renames", rows: "3", "data-testid": "field-renames", placeholder: "shop=shop_v2" });
    const writeConcurrency = el("input", { id: "f-write-concurrency", type: "number", min: "1", max: "512", placeholder: "4", "data-testid": "field-write-concurrency" });
    const rate = el("input", { id: "f-rate", type: "number", min: "1", placeholder: "unlimited", "data-testid": "field-rate" });
    const chunkRows = el("input", { id: "f-chunk-rows", type: "number", min: "100", max: "1000000", placeholder: "10000", "data-testid": "field-chunk-rows" });
    const nonEmpty = el("select", { id: "f-non-empty", "data-testid": "field-non-empty-target" },
      el("option", { value: "stop", text: "stop (refuse to copy)" }), el("option", { value: "ignore", text: "ignore (copy anyway, keep target rows)" }));
    const json = el("textarea", { id: "f-json", rows: "10", class: "mono", spellcheck: "false", "data-testid": "field-json",
      placeholder: '{"name": "...", "source": "mariadb://...", "target": "...", "types": ["schema", "full"]}' });
    const error = el("div", { class: "error", role: "alert", "data-testid": "form-error", hidden: true });
    const submit = el("button", { type: "submit", class: "primary", "data-testid": "create-submit", text: "Create task" });

    function fromForm() {
      const spec = {
        name: name.value.trim(),
        source: source.value.trim(),
        target: target.value.trim(),
        types: types.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
        topology: topology.value,
      };
      const dbs = databases.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (dbs.length) spec.select = { databases: dbs };
      const map = {};
      for (const line of renames.value.split("\n")) {
        if (!line.trim()) continue;
        const i = line.indexOf("=");
        if (i < 0) throw new Error("database renames: write each as source=target, got \u201c" + line.trim() + "\u201d");
        map[line.slice(0, i).trim()] = line.slice(i + 1).trim();
      }
      if (Object.keys(map).length) spec.rename = { databases: map };
      const options = { non_empty_target: nonEmpty.value };
      if (writeConcurrency.value !== "") options.write_concurrency = Number(writeConcurrency.value);
      if (rate.value !== "") options.rate_rows_per_second = Number(rate.value);
      if (chunkRows.value !== "") options.chunk_rows = Number(chunkRows.value);
      spec.options = options;
      return spec;
    }

    const form = el(
      "form",
      { class: "card", "data-testid": "create-form", novalidate: true },
      el("h1", { text: "New task" }),
      el("p", { class: "muted", text: "The task is created, not started: start it from its page (pre-checks run first)." }),
      el("div", { class: "cols" },
        el("fieldset", {},
          el("legend", { text: "Task" }),
          field("Name", name, "1-64 letters, digits, '_', '.', '-'"),
          field("Source URL", source, "e.g. mariadb://root@127.0.0.1:3306"),
          field("Target URL", target, "e.g. oceanbase://root@127.0.0.1:2881"),
          el("div", { class: "field" }, el("span", { class: "label", text: "Types" }), el("div", { class: "checks" }, types)),
          field("Topology", topology, "two-way: a reverse task can be configured once the forward task is in incremental sync")),
        el("fieldset", {},
          el("legend", { text: "Objects and options" }),
          field("Databases to select", databases, "comma-separated"),
          field("Database renames", renames, "one per line: source=target"),
          field("Write concurrency", writeConcurrency, "threads writing the target (1-512)"),
          field("Rate limit (rows/s)", rate, "empty: unlimited"),
          field("Rows per chunk", chunkRows, "full copy chunk size (100-1000000)"),
          field("Non-empty target", nonEmpty))),
      el("details", { class: "advanced", "data-testid": "advanced" },
        el("summary", { text: "Advanced: spec as JSON" }),
        el("p", { class: "muted", text: "When this is filled, it is sent as-is and the fields above are ignored (same fields as a YAML task spec)." }),
        json),
      error,
      el("div", { class: "buttons" }, submit, el("a", { href: "#/", class: "button", text: "Cancel" }))
    );

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.hidden = true;
      let spec;
      try {
        if (json.value.trim()) {
          try {
            spec = JSON.parse(json.value);
          } catch (e) {
            throw new Error("spec as JSON: not valid JSON (" + e.message + ")");
          }
        } else {
          spec = fromForm();
        }
      } catch (e) {
        showError(e.message);
        return;
      }
      submit.disabled = true;
      try {
        const created = await api("POST", API + "/tasks", spec);
        window.location.hash = taskHref(created.name);
      } catch (err) {
        if (err instanceof ApiError) showError(err.message);
        else if (!(err instanceof Unauthorized)) showError(String(err));
      } finally {
        submit.disabled = false;
      }
    });

    function showError(text) {
      error.hidden = false;
      setText(error, text);
    }

    clear(app()).appendChild(form);
    name.focus();
  }

  // ---------------------------------------------------------------- task detail

  function renderDetail(name) {
    const ids = {};
    const value = (id, cls) => (ids[id] = el("dd", { "data-testid": id, class: cls || "" }));
    const actionError = el("div", { class: "error", role: "alert", "data-testid": "action-error", hidden: true });
    const actions = el("div", { class: "buttons", "data-testid": "actions" });
    const reverseBox = el("div", { class: "reverse", "data-testid": "reverse" });
    const bar = el("progress", { max: "1", value: "0", "data-testid": "progress-bar", "aria-label": "full copy progress" });
    const barText = el("span", { class: "muted", "data-testid": "copy-fraction" });
    const copyBox = el("div", { class: "copy", "data-testid": "copy", hidden: true },
      el("div", { class: "label", text: "Full copy" }), bar, " ", barText);
    const taskError = el("p", { class: "error", role: "alert", "data-testid": "task-error", hidden: true });
    const prechecks = el("tbody", { "data-testid": "prechecks" });
    const noPrechecks = el("p", { class: "muted", text: "No pre-checks have run yet (they run when the task starts)." });
    const history = el("ol", { class: "timeline", "data-testid": "history" });
    const noHistory = el("p", { class: "muted", "data-testid": "no-history", text: "No events yet." });
    const healthBanner = el("div", { class: "health-banner", role: "status", "data-testid": "health-banner" });
    const chartBox = el("div", { class: "chart-box", "data-testid": "chart" });
    const chartLegend = el("p", { class: "chart-legend muted", "data-testid": "chart-legend" });
    const conflictsBox = el("div", { "data-testid": "conflicts", hidden: true });
    const spec = el("pre", { class: "mono spec", "data-testid": "task-spec" });
    const header = el("h1", { "data-testid": "task-name", text: name });
    const notFound = el("p", { class: "error", role: "alert", "data-testid": "detail-error", hidden: true });

    const view = el(
      "div",
      { "data-testid": "task-detail", "data-name": name },
      el("p", { class: "crumbs" }, el("a", { href: "#/", text: "\u2190 Tasks" })),
      el("section", { class: "card" },
        el("div", { class: "title-row" }, header, el("span", { class: "spacer" }), actions),
        notFound,
        actionError,
        taskError,
        healthBanner,
        el("dl", { class: "facts" },
          el("dt", { text: "State" }), ids["task-state"] = el("dd", {}, stateBadge("", "task-state")),
          el("dt", { text: "Phase" }), value("task-phase"),
          el("dt", { text: "Source" }), value("task-source", "endpoints"),
          el("dt", { text: "Target" }), value("task-target", "endpoints"),
          el("dt", { text: "Types" }), value("task-types"),
          el("dt", { text: "Kind" }), value("task-kind")),
        reverseBox),
      el("section", { class: "card" },
        el("h2", { text: "Progress" }),
        copyBox,
        el("dl", { class: "facts figures" },
          el("dt", { text: "Rows" }), value("rows", "num"),
          el("dt", { text: "Rows/s" }), value("rows-per-second", "num"),
          el("dt", { text: "Bytes" }), value("bytes", "num"),
          el("dt", { text: "Bytes/s" }), value("bytes-per-second", "num"),
          el("dt", { text: "Lag" }), value("lag", "num"),
          el("dt", { text: "Synced rows" }), value("synced-rows", "num"),
          el("dt", { text: "Conflicts" }), el("dd", {}, ids["conflicts-count"] = el("span", { "data-testid": "conflicts-count" }), " ",
            el("button", { type: "button", class: "small", "data-testid": "show-conflicts", text: "Show conflicts", onclick: () => toggleConflicts() }))),
        el("div", { class: "chart-wrap", "data-testid": "chart-card" },
          el("h3", { text: "Last hour" }),
          chartLegend,
          chartBox)),
      el("section", { class: "card", hidden: true, "data-testid": "conflicts-card" }, el("h2", { text: "Conflicts" }), conflictsBox),
      el("section", { class: "card" },
        el("h2", { text: "Pre-checks" }),
        noPrechecks,
        el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, ["Check", "Status", "Detail", ""].map((h) => el("th", { scope: "col", text: h })))),
          prechecks)),
      el("section", { class: "card" },
        el("div", { class: "title-row" }, el("h2", { text: "Timeline" }), el("span", { class: "muted small", text: "newest first, local time" })),
        noHistory,
        history),
      el("section", { class: "card" },
        el("details", {}, el("summary", { text: "Spec (passwords hidden)" }), spec))
    );
    clear(app()).appendChild(view);

    const conflictsCard = view.querySelector('[data-testid="conflicts-card"]');
    const reportAction = (msg) => {
      actionError.hidden = !msg;
      setText(actionError, msg || "");
    };
    let keys = {};
    const changed = (k, v) => {
      const s = JSON.stringify(v);
      if (keys[k] === s) return false;
      keys[k] = s;
      return true;
    };
    let refreshNow = () => {};
    let reverseFormOpen = false;

    async function toggleConflicts() {
      const show = conflictsCard.hidden;
      conflictsCard.hidden = !show;
      conflictsBox.hidden = !show;
      if (show) await loadConflicts();
    }

    async function loadConflicts() {
      clear(conflictsBox).appendChild(el("p", { class: "muted", text: "Loading\u2026" }));
      let data;
      try {
        data = await api("GET", taskUrl(name, "/conflicts?limit=100"));
      } catch (err) {
        if (err instanceof ApiError) clear(conflictsBox).appendChild(el("p", { class: "error", text: err.message }));
        return;
      }
      clear(conflictsBox);
      conflictsBox.appendChild(el("p", { class: "muted" },
        "Total recorded: ", el("span", { "data-testid": "conflicts-total", text: fmtInt(data.total) }),
        data.copy_conflicts ? " \u00b7 during the full copy: " + fmtJson(data.copy_conflicts) : "",
        " ", el("button", { type: "button", class: "small", text: "Refresh", onclick: () => loadConflicts() })));
      const list = data.conflicts || [];
      if (!list.length) {
        conflictsBox.appendChild(el("p", { class: "muted", "data-testid": "no-conflicts", text: "No conflicts recorded." }));
        return;
      }
      conflictsBox.appendChild(el("table", { class: "grid small" },
        el("thead", {}, el("tr", {}, ["#", "Table", "Op", "Key", "Resolution", "Reason", "Before", "After", "Target row", "At"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, list.map((c) => el("tr", { "data-testid": "conflict-row" },
          el("td", { text: c.id }),
          el("td", { text: c.table }),
          el("td", { text: c.op }),
          el("td", { class: "mono", text: fmtJson(c.key) }),
          el("td", { text: c.resolution }),
          el("td", { text: c.reason }),
          el("td", { class: "mono", text: fmtJson(c.before) }),
          el("td", { class: "mono", text: fmtJson(c.after) }),
          el("td", { class: "mono", text: fmtJson(c.current) }),
          el("td", { text: fmtTime(c.recorded_at) }))))));
    }

    function renderActions(t) {
      if (!changed("actions", t.actions)) return;
      clear(actions);
      for (const a of t.actions || []) {
        if (a === "configure_reverse") {
          actions.appendChild(el("button", { type: "button", "data-testid": "action-configure_reverse", text: ACTION_LABELS[a],
            onclick: () => { reverseFormOpen = true; keys.reverse = null; renderReverse(t); } }));
        } else {
          actions.appendChild(actionButton(name, a, reportAction, () => refreshNow()));
        }
      }
    }

    function renderReverse(t) {
      const offered = (t.actions || []).includes("configure_reverse");
      if (!changed("reverse", [t.reverse_task, offered, reverseFormOpen])) return;
      clear(reverseBox);
      if (t.reverse_task && t.reverse_task.state !== "released") {
        reverseBox.appendChild(el("p", {}, "Reverse task: ",
          el("a", { href: taskHref(t.reverse_task.name), "data-testid": "reverse-link", text: t.reverse_task.name }),
          " ", stateBadge(t.reverse_task.state, "reverse-state")));
      }
      if (!offered || !reverseFormOpen) return;
      const conflict = el("select", { id: "r-conflict", "data-testid": "reverse-conflict" },
        el("option", { value: "overwrite", text: "overwrite (the source's row wins)" }),
        el("option", { value: "ignore", text: "ignore (keep the target's row)" }));
      const wc = el("input", { id: "r-write-concurrency", type: "number", min: "1", max: "512", placeholder: "4", "data-testid": "reverse-write-concurrency" });
      const err = el("div", { class: "error", role: "alert", "data-testid": "reverse-error", hidden: true });
      const submit = el("button", { type: "submit", class: "primary", "data-testid": "reverse-submit", text: "Create reverse task" });
      const form = el("form", { class: "inline-form", "data-testid": "reverse-form" },
        el("h2", { text: "Configure the reverse task" }),
        el("p", { class: "muted", text: "The reverse task writes the target's changes back to the source (DML only). Its objects come from this task." }),
        field("Conflict policy", conflict),
        field("Write concurrency", wc),
        err,
        el("div", { class: "buttons" }, submit,
          el("button", { type: "button", text: "Cancel", onclick: () => { reverseFormOpen = false; keys.reverse = null; renderReverse(t); } })));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const body = { conflict: conflict.value };
        if (wc.value !== "") body.write_concurrency = Number(wc.value);
        submit.disabled = true;
        err.hidden = true;
        try {
          const created = await api("POST", taskUrl(name, "/reverse"), body);
          reverseFormOpen = false;
          keys.reverse = null;
          clear(reverseBox).appendChild(el("p", {}, "Reverse task created: ",
            el("a", { href: taskHref(created.name), "data-testid": "reverse-link", text: created.name }),
            " \u2014 open it and press Start."));
          keys.reverse = JSON.stringify([{ name: created.name, state: created.state }, false, false]);
        } catch (e) {
          if (e instanceof ApiError) {
            err.hidden = false;
            setText(err, e.message);
          }
        } finally {
          submit.disabled = false;
        }
      });
      reverseBox.appendChild(form);
    }

    function renderPrechecks(list) {
      if (!changed("prechecks", list)) return;
      noPrechecks.hidden = list.length > 0;
      clear(prechecks);
      for (const c of list) {
        const cell = el("td", {});
        if (c.skipped) {
          cell.appendChild(el("span", { class: "tag", text: "skipped" }));
        } else if (c.status === "fail") {
          cell.appendChild(el("button", { type: "button", class: "small", "data-testid": "skip-precheck", "data-check": c.name, text: "Skip",
            onclick: async (ev) => {
              ev.target.disabled = true;
              reportAction(null);
              try {
                await api("POST", taskUrl(name, "/prechecks/" + encodeURIComponent(c.name) + "/skip"));
              } catch (e) {
                if (e instanceof ApiError) reportAction(e.message);
              }
              refreshNow();
            } }));
        }
        prechecks.appendChild(el("tr", { "data-testid": "precheck-row", "data-check": c.name, "data-status": c.status },
          el("td", { "data-testid": "precheck-name", text: c.name }),
          el("td", {}, el("span", { class: "status status-" + String(c.status).replace(/[^a-z]/g, ""), "data-testid": "precheck-status", text: c.status })),
          el("td", { class: "detail", text: c.detail || "" }),
          cell));
      }
    }

    function renderHistory(list) {
      if (!changed("history", list)) return;
      noHistory.hidden = list.length > 0;
      clear(history);
      for (const h of list.slice().reverse()) history.appendChild(timelineItem(h));
    }

    // the parts of the health banner that move with the clock (see the ticker)
    let healthClock = null;

    function renderHealth(t) {
      const h = t.health || {};
      const kind = healthOf(t);
      if (!changed("health", [kind, h, t.state])) return;
      healthBanner.className = "health-banner health-banner-" + kind;
      healthBanner.setAttribute("data-health", kind);
      clear(healthBanner);
      healthClock = null;
      const total = plural(h.retries_total || 0, "retry", "retries") + " in all";
      if (kind !== "retrying") {
        healthBanner.appendChild(el("div", { class: "health-line" },
          el("span", { class: "health health-" + kind, "data-testid": "health-summary", "data-health": kind, text: kind + " (" + total + ")" }),
          h.last_error_at ? el("span", { class: "muted small", text: "last error at " + fmtTime(h.last_error_at) }) : null));
        return;
      }
      const since = el("span", { "data-testid": "health-since" });
      const countdown = el("strong", { "data-testid": "health-countdown" });
      healthBanner.appendChild(el("div", { class: "health-line" },
        healthBadge(t, "health-state"),
        el("span", { "data-testid": "health-summary" },
          el("span", { "data-testid": "health-attempts", text: plural(h.attempts || 0, "failed attempt", "failed attempts") }),
          h.since ? " since " : null, h.since ? since : null,
          h.next_attempt_at ? " \u00b7 next attempt " : null, h.next_attempt_at ? countdown : null,
          " \u00b7 " + total)));
      if (h.last_error) {
        healthBanner.appendChild(el("div", { class: "health-reason" },
          el("span", { class: "label", text: "Reason" }),
          el("span", { class: "mono", "data-testid": "health-reason", text: h.last_error }),
          h.last_error_at ? el("span", { class: "muted small", text: " (" + fmtTime(h.last_error_at) + ")" }) : null));
      }
      healthClock = () => {
        if (h.since) setText(since, fmtTime(h.since) + " (" + fmtAgo(h.since) + " ago)");
        if (h.next_attempt_at) {
          setText(countdown, fmtCountdown(h.next_attempt_at));
          countdown.setAttribute("data-at", String(h.next_attempt_at));
        }
      };
      healthClock();
    }

    function renderChart(p) {
      const points = (p && p.chart) || [];
      if (!changed("chart", points)) return;
      clear(chartBox);
      clear(chartLegend);
      if (!points.length) {
        chartLegend.hidden = true;
        chartBox.appendChild(el("p", { class: "muted chart-empty", "data-testid": "chart-empty", text: "no data yet" }));
        return;
      }
      chartLegend.hidden = false;
      const rowsMax = Math.max(0, ...points.map((pt) => Number(pt.rows_per_second) || 0));
      const lags = points.filter((pt) => pt.lag_seconds !== null && pt.lag_seconds !== undefined).map((pt) => Number(pt.lag_seconds));
      append(chartLegend, [
        el("span", { class: "swatch swatch-rows", "aria-hidden": "true" }), " rows/s (max " + fmtRate(rowsMax) + ")",
        el("span", { class: "swatch swatch-lag", "aria-hidden": "true" }), " lag (max " + (lags.length ? fmtSeconds(Math.max(...lags)) : "\u2014") + ")",
        " \u00b7 a point every 10 s",
      ]);
      chartBox.appendChild(chartSvg(points));
    }

    function renderFigures(t) {
      const p = t.progress;
      const state = t.state;
      const badge = ids["task-state"].firstChild;
      setText(badge, state);
      badge.className = "state state-" + String(state).replace(/[^a-z_]/g, "");
      setText(ids["task-phase"], p && p.phase ? p.phase : state);
      setText(ids["task-source"], t.source);
      setText(ids["task-target"], t.target);
      setText(ids["task-types"], (t.types || []).join(", "));
      setText(ids["task-kind"], t.kind || "");
      taskError.hidden = !t.error;
      setText(taskError, t.error || "");
      const set = (id, raw, text) => {
        ids[id].setAttribute("data-value", raw === null || raw === undefined ? "" : String(raw));
        setText(ids[id], text);
      };
      set("rows", p ? p.rows : null, p ? fmtInt(p.rows) : "\u2014");
      set("rows-per-second", p ? p.rows_per_second : null, p ? fmtRate(p.rows_per_second) : "\u2014");
      set("bytes", p ? p.bytes : null, p ? fmtBytes(p.bytes) : "\u2014");
      set("bytes-per-second", p ? p.bytes_per_second : null, p ? fmtBytes(p.bytes_per_second) + "/s" : "\u2014");
      set("lag", p ? p.lag_seconds : null, p ? fmtSeconds(p.lag_seconds) : "\u2014");
      set("synced-rows", p ? p.synced_rows : null, p ? fmtInt(p.synced_rows) : "\u2014");
      set("conflicts-count", p ? p.conflicts : null, p ? fmtInt(p.conflicts) : "\u2014");
      const copy = p && p.copy;
      copyBox.hidden = !copy;
      if (copy) {
        const f = Math.max(0, Math.min(1, Number(copy.fraction) || 0));
        bar.value = f;
        bar.setAttribute("data-value", String(f));
        let text = (f * 100).toFixed(1) + "% \u00b7 chunks " + fmtInt(copy.chunks_done) + "/" + fmtInt(copy.chunks) +
          " \u00b7 rows " + fmtInt(copy.rows_done) + (copy.rows_estimated !== null && copy.rows_estimated !== undefined ? " of ~" + fmtInt(copy.rows_estimated) : "");
        if (copy.eta_seconds !== null && copy.eta_seconds !== undefined && f < 1) text += " \u00b7 ETA " + fmtSeconds(copy.eta_seconds);
        setText(barText, text);
      }
    }

    const gen = generation;
    refreshNow = () => {
      if (gen !== generation) return;
      load(() => gen !== generation).catch((e) => { if (!(e instanceof Unauthorized)) console.error(e); });
    };

    async function load(stale) {
      let t;
      try {
        t = await api("GET", taskUrl(name));
      } catch (err) {
        if (err instanceof ApiError) {
          notFound.hidden = false;
          setText(notFound, err.message);
          return;
        }
        throw err;
      }
      if (stale()) return;
      notFound.hidden = true;
      view.setAttribute("data-state", t.state);
      renderFigures(t);
      renderHealth(t);
      renderChart(t.progress);
      renderActions(t);
      renderReverse(t);
      renderPrechecks(t.prechecks || []);
      renderHistory(t.history || []);
      if (changed("spec", t.spec)) setText(spec, JSON.stringify(t.spec, null, 2));
    }

    // the banner's countdown moves every second, between the polls too
    const ticker = setInterval(() => {
      if (gen !== generation) {
        clearInterval(ticker);
        return;
      }
      if (healthClock) healthClock();
    }, 500);

    poll(load, DETAIL_POLL_MS);
  }

  // ------------------------------------------------------------------- start

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("forget-token").addEventListener("click", () => {
      setToken("");
      showTokenForm("Token forgotten.");
    });
    window.addEventListener("hashchange", route);
    route();
  });
})();
