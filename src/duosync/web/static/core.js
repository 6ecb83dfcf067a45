/* duosync console: the toolkit every view file uses, as window.duosync: DOM
 * helpers, formatting, the API token, the API client and polling. Loaded first by
 * index.html; cluster.js (the cluster view) and app.js (routes, task list, task
 * view, create form) take what they need from it.
 *
 * Plain JavaScript, no build step, no third-party code. Every value that comes
 * from the API is put into the page with textContent or setAttribute (never as
 * HTML). The API token lives in sessionStorage only (this tab, this session).
 */
"use strict";

window.duosync = (function () {
  // filled at the end; app.js sets onUnauthorized (the token form)
  const ds = { onUnauthorized: () => {} };
  const TOKEN_KEY = "duosync.apiToken";
  // The API lives next to /console/ (works behind a path prefix too).
  const ROOT = window.location.pathname.replace(/\/console(\/.*)?$/, "");
  const API = ROOT + "/api/v1";
  const LIST_POLL_MS = 1500;
  const DETAIL_POLL_MS = 1000;

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
      ds.onUnauthorized("The API refused the token (" + apiMessage(401, data) + "). Enter a valid token.");
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

  // ------------------------------------------------------------------- polling

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

  // ------------------------------------------------------------ shared widgets

  /** A form field: its label, the input, and a line of help. */
  function field(label, input, help) {
    return el("div", { class: "field" },
      el("label", { for: input.id, text: label }),
      input,
      help ? el("div", { class: "help", text: help }) : null);
  }

  /** A task state as a coloured badge. */
  function stateBadge(state, testid) {
    return el("span", { class: "state state-" + String(state).replace(/[^a-z_]/g, ""), "data-testid": testid, text: state });
  }

  return Object.assign(ds, {
    API, LIST_POLL_MS, DETAIL_POLL_MS,
    el, append, clear, setText, taskHref, taskUrl, stateBadge, field,
    fmtInt, fmtRate, fmtBytes, fmtSeconds, fmtTime, fmtCountdown, fmtAgo, fmtClock, plural, fmtJson,
    getToken, setToken, takeTokenFromHash,
    ApiError, Unauthorized, api, showConn,
    app, poll, stopPolling,
    /** The current route's number: a view whose number is no longer current is stale. */
    generation: () => generation,
  });
})();
