/* duosync console: a small single-page app over the REST API (/api/v1).
 *
 * Plain JavaScript, no build step, no third-party code. Every value that comes
 * from the API is put into the page with textContent or setAttribute (never as
 * HTML). The toolkit (DOM helpers, formatting, token, API client, polling) is
 * core.js; the create form is create.js; the cluster view and the cluster's parts
 * of the pages are cluster.js.
 *
 * Routes (the URL hash):
 *   #/             task list
 *   #/new          create a task (create.js)
 *   #/tasks/NAME   one task (NAME is URL-encoded)
 *   #/cluster      the cluster's nodes (cluster.js; only on a node of a cluster)
 *   #token=XYZ     given once: stored, then removed from the address bar
 */
"use strict";

(function (ds) {
  const {
    API, LIST_POLL_MS, DETAIL_POLL_MS,
    el, append, clear, setText, taskHref, taskUrl, stateBadge, field,
    fmtInt, fmtRate, fmtBytes, fmtSeconds, fmtTime, fmtCountdown, fmtAgo, fmtClock, plural, fmtJson,
    getToken, setToken, takeTokenFromHash,
    ApiError, Unauthorized, api,
    app, poll, stopPolling, generation,
  } = ds;
  const cluster = ds.cluster;

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

  // ------------------------------------------------------------------- routing

  function route() {
    stopPolling();
    takeTokenFromHash();
    if (!getToken()) {
      showTokenForm("");
      return;
    }
    document.getElementById("forget-token").hidden = false;
    cluster.probe();
    const hash = window.location.hash.replace(/^#/, "") || "/";
    let m;
    if (hash === "/" || hash === "") {
      renderList();
    } else if (hash === "/new") {
      ds.create.render();
    } else if (hash === "/cluster") {
      cluster.renderView();
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
  ds.onUnauthorized = showTokenForm; // the API client's answer to a 401

  // ----------------------------------------------------------------- task list

  function renderList() {
    const tbody = el("tbody", { "data-testid": "task-rows" });
    const empty = el("p", { class: "muted", "data-testid": "no-tasks", hidden: true },
      "No tasks yet. ", el("a", { href: "#/new", text: "Create one" }), ".");
    const error = el("p", { class: "error", role: "alert", "data-testid": "list-error", hidden: true });
    const head = el("tr", {});
    const view = el(
      "section",
      { class: "card", "data-testid": "task-list" },
      el("div", { class: "title-row" },
        el("h1", { text: "Tasks" }),
        el("a", { href: "#/new", class: "button primary", "data-testid": "new-task", text: "New task" })),
      error,
      el("table", { class: "grid" },
        el("thead", {}, head),
        tbody),
      empty
    );
    clear(app()).appendChild(view);
    // in a cluster (its tasks carry a node): a node column
    const renderHead = (clustered) => append(clear(head),
      ["Name", "State", "Health", clustered ? "Node" : null, "Source \u2192 target", "Rows/s", "Lag", "Actions"]
        .filter(Boolean).map((h) => el("th", { scope: "col", text: h })));
    renderHead(false);

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
      const key = JSON.stringify([tasks, cluster.thisNode()]);
      if (key === last) return; // nothing changed: keep the DOM (and the focus) as is
      last = key;
      empty.hidden = tasks.length > 0;
      const clustered = tasks.some((t) => "node" in t);
      renderHead(clustered);
      clear(tbody);
      for (const t of tasks) tbody.appendChild(taskRow(t, error, clustered));
    }, LIST_POLL_MS);
  }

  function taskRow(t, errorNode, clustered) {
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
      clustered ? cluster.nodeCell(t) : null,
      el("td", { class: "endpoints" }, el("span", { text: t.source }), " \u2192 ", el("span", { text: t.target })),
      el("td", { class: "num", "data-testid": "rows-per-second" }, t.progress ? fmtRate(p.rows_per_second) : "\u2014"),
      el("td", { class: "num", "data-testid": "lag" }, t.progress ? fmtSeconds(p.lag_seconds) : "\u2014"),
      actions
    );
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
    placement: "placement",
    fenced: "fenced",
  };

  /** What a history event is, for the timeline: phase, failure, pause, retry,
   * recovered, note, or in a cluster placement (the leader put the task on a node,
   * or found none) and fenced (a run that lost the task committed nothing). Events
   * without a kind (of older services): from the states. */
  function eventCategory(h) {
    const kind = h.kind || (h.from && h.from === h.to ? "note" : "state");
    if (["retry", "recovered", "note", "placement", "fenced"].includes(kind)) return kind;
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
            h.to ? stateBadge(h.to, "history-to") : null) : null,
          cat === "placement" ? cluster.timelineBadge(h) : null),
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

  // ---------------------------------------------------------------- task detail

  function renderDetail(name) {
    const ids = {};
    const value = (id, cls) => (ids[id] = el("dd", { "data-testid": id, class: cls || "" }));
    const actionError = el("div", { class: "error", role: "alert", "data-testid": "action-error", hidden: true });
    const actions = el("div", { class: "buttons", "data-testid": "actions" });
    const reverseBox = el("div", { class: "reverse", "data-testid": "reverse" });
    const movesBox = el("div", { class: "moves", "data-testid": "task-moves", hidden: true });
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
          el("dt", { text: "Kind" }), value("task-kind"),
          ids["task-node-term"] = el("dt", { text: "Node", hidden: true }),
          ids["task-node"] = el("dd", { "data-testid": "task-node", hidden: true })),
        movesBox,
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
        el("thead", {}, el("tr", {}, ["#", "Table", "Op", "Key", "Resolution", "Winner", "Reason", "Before", "After", "Target row", "At"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, list.map((c) => el("tr", { "data-testid": "conflict-row" },
          el("td", { text: c.id }),
          el("td", { text: c.table }),
          el("td", { text: c.op }),
          el("td", { class: "mono", text: fmtJson(c.key) }),
          el("td", { text: c.resolution }),
          el("td", { "data-testid": "conflict-winner", text: c.winner ? c.winner + "'s row" : "\u2014" }),
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

    const gen = generation();
    refreshNow = () => {
      if (gen !== generation()) return;
      load(() => gen !== generation()).catch((e) => { if (!(e instanceof Unauthorized)) console.error(e); });
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
      const placements = (t.history || []).filter((h) => h.kind === "placement");
      if (changed("placement", ["node" in t, t.node, t.epoch, t.state, placements, cluster.thisNode()])) {
        cluster.showPlacement(t, ids["task-node-term"], ids["task-node"], movesBox);
      }
      if (changed("spec", t.spec)) setText(spec, JSON.stringify(t.spec, null, 2));
    }

    // the banner's countdown moves every second, between the polls too
    const ticker = setInterval(() => {
      if (gen !== generation()) {
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
})(window.duosync);
