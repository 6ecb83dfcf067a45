/* duosync console: the cluster (duosync serve --cluster). The view of its nodes
 * (#/cluster: leader, labels, drains, the tasks each runs, tasks between nodes)
 * and the cluster's parts of the other pages: the task list's node column, a
 * task's node and epoch, its moves (placement events) and the timeline's badge
 * for them. Uses core.js (window.duosync); app.js calls it as duosync.cluster.
 *
 * A single service (no --cluster) shows none of it: GET /api/v1/cluster says
 * enabled false, so the Cluster tab stays hidden, and its tasks carry no node.
 */
"use strict";

window.duosync.cluster = (function (ds) {
  const {
    API, LIST_POLL_MS, el, append, clear, setText, taskHref, stateBadge, fmtTime,
    ApiError, Unauthorized, api, app, poll, generation,
  } = ds;

  // the states in which a task should run on some node (service/runtime/states.py ACTIVE)
  const ACTIVE = new Set(["prechecking", "schema_migration", "full_migration", "incremental_running", "incremental_monitoring"]);

  // ------------------------------------------------------ this node, the tab

  let status = null; // the last GET /cluster answer; null until one came
  let probing = false;

  function learn(s) {
    status = s;
    document.getElementById("nav-cluster").hidden = !(s && s.enabled);
  }

  /** Ask the API (once a page) whether this service is a node of a cluster: the
   * Cluster tab shows if so. The cluster view asks again at every refresh. */
  function probe() {
    if (status !== null || probing) return;
    probing = true;
    api("GET", API + "/cluster").then(learn, (err) => {
      // unreachable or refused: asked again at the next route
      if (!(err instanceof ApiError) && !(err instanceof Unauthorized)) console.error(err);
    }).finally(() => { probing = false; });
  }

  /** The name of the node that serves this console (null on a single service). */
  function thisNode() {
    return status && status.enabled ? status.node : null;
  }

  function nodeLink(name) {
    const self = name === thisNode();
    return el("a", { href: "#/cluster", class: self ? "node-name this-node" : "node-name",
      title: self ? "this node (it serves this console)" : null, text: name });
  }

  // ------------------------------------------------- placement events, parsed

  // the leader's wording (cluster/leader.py): the failover history of a task
  const ASSIGNED = /^assigned to node (.+?) \(epoch (\d+)\): ([\s\S]*)$/;
  const WAITING = /^waiting for a node: ([\s\S]*)$/;

  /** A placement event's detail as {node, epoch, reason}; node null: waiting. */
  function parsePlacement(detail) {
    const text = String(detail || "");
    let m = text.match(ASSIGNED);
    if (m) return { node: m[1], epoch: m[2], reason: m[3] };
    m = text.match(WAITING);
    return { node: null, epoch: null, reason: m ? m[1] : text };
  }

  /** The timeline's badge of a placement event: where the task went. */
  function timelineBadge(h) {
    const p = parsePlacement(h.detail);
    return el("span", { class: "tl-node", "data-testid": "history-node", "data-node": p.node || "" },
      p.node ? "\u2192 node " + p.node + " \u00b7 epoch " + p.epoch : "no node");
  }

  // ------------------------------------------------- task list and task view

  /** The task list's cell: the node the task is assigned to. */
  function nodeCell(t) {
    return el("td", { "data-testid": "task-node", "data-node": t.node || "" },
      t.node ? nodeLink(t.node) : el("span", { class: "muted", text: "\u2014" }));
  }

  /** A task's node and epoch (*term* and *value*, a dt and its dd) and its moves
   * (*box*): the placement events, newest first. All hidden outside a cluster. */
  function showPlacement(t, term, value, box) {
    const clustered = "node" in t;
    term.hidden = value.hidden = box.hidden = !clustered;
    if (!clustered) return;
    clear(value);
    if (t.node) {
      append(value, [nodeLink(t.node), " \u00b7 epoch ", el("span", { class: "mono", "data-testid": "task-epoch", text: t.epoch })]);
    } else {
      value.appendChild(el("span", { class: "muted", text: ACTIVE.has(t.state) ? "none yet: waiting for a node" : "none (a task runs on a node while it is active)" }));
    }
    const moves = (t.history || []).filter((h) => h.kind === "placement").reverse();
    clear(box).appendChild(el("h3", {}, "Moves ", el("span", { class: "muted small", text: "where the cluster placed the task, newest first" })));
    if (!moves.length) {
      box.appendChild(el("p", { class: "muted small", "data-testid": "no-moves", text: "No placement yet." }));
      return;
    }
    box.appendChild(el("table", { class: "grid small", "data-testid": "moves" },
      el("thead", {}, el("tr", {}, ["At", "Node", "Epoch", "Reason"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, moves.map((h) => {
        const p = parsePlacement(h.detail);
        return el("tr", { "data-testid": "move-row", "data-node": p.node || "" },
          el("td", { class: "num", text: fmtTime(h.at) }),
          el("td", { "data-testid": "move-node" }, p.node ? nodeLink(p.node) : el("span", { class: "muted", text: "waiting" })),
          el("td", { class: "num mono", text: p.epoch || "" }),
          el("td", { class: "detail", "data-testid": "move-reason", text: p.reason }));
      }))));
  }

  // -------------------------------------------------------- the cluster view

  function renderView() {
    const error = el("p", { class: "error", role: "alert", "data-testid": "cluster-error", hidden: true });
    const actionError = el("p", { class: "error", role: "alert", "data-testid": "cluster-action-error", hidden: true });
    const facts = el("p", { class: "muted", "data-testid": "cluster-facts" });
    const alone = el("p", { class: "muted", "data-testid": "cluster-disabled", hidden: true },
      "This service runs alone, not in a cluster (", el("code", { text: "duosync serve --cluster zk://HOST:PORT/PATH" }), " starts a node).");
    const tbody = el("tbody", { "data-testid": "cluster-nodes" });
    const table = el("table", { class: "grid", hidden: true },
      el("thead", {}, el("tr", {}, ["Node", "Labels", "Tasks it runs", "Process", ""].map((h) => el("th", { scope: "col", text: h })))),
      tbody);
    const moving = el("div", { class: "moving", "data-testid": "cluster-moving", hidden: true });
    const view = el("section", { class: "card", "data-testid": "cluster-view" },
      el("div", { class: "title-row" }, el("h1", { text: "Cluster" })),
      facts, error, actionError, alone, table, moving);
    clear(app()).appendChild(view);

    const report = (msg) => {
      actionError.hidden = !msg;
      setText(actionError, msg || "");
    };
    const gen = generation();
    const refresh = () => {
      if (gen !== generation()) return;
      load(() => gen !== generation()).catch((e) => { if (!(e instanceof Unauthorized)) console.error(e); });
    };
    let last = "";

    async function load(stale) {
      let s, tasks;
      try {
        [s, tasks] = await Promise.all([api("GET", API + "/cluster"), api("GET", API + "/tasks")]);
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
      learn(s);
      const states = {};
      for (const t of tasks) states[t.name] = t.state;
      const key = JSON.stringify([s, tasks.map((t) => [t.name, t.state, t.node])]);
      if (key === last) return; // nothing changed: keep the DOM (and the focus) as is
      last = key;
      view.setAttribute("data-enabled", String(!!s.enabled));
      alone.hidden = !!s.enabled;
      table.hidden = !s.enabled;
      if (!s.enabled) {
        clear(facts);
        moving.hidden = true;
        return;
      }
      clear(facts);
      append(facts, [
        el("span", { class: "mono", "data-testid": "cluster-url", text: s.cluster }),
        " \u00b7 leader ", s.leader ? el("strong", { "data-testid": "cluster-leader", text: s.leader }) : "none (an election is under way)",
        " \u00b7 this console is served by node ", el("strong", { "data-testid": "cluster-self", text: s.node }),
        " \u00b7 " + s.nodes.length + (s.nodes.length === 1 ? " node" : " nodes") + " alive",
      ]);
      clear(tbody);
      for (const n of s.nodes) tbody.appendChild(nodeRow(n, s, states, report, refresh));
      renderMoving(moving, s, tasks, states, report, refresh);
    }

    poll(load, LIST_POLL_MS);
  }

  function nodeRow(n, s, states, report, after) {
    const assigned = s.assignments || {};
    const self = n.name === s.node;
    const running = n.tasks || [];
    // assigned here, not started yet: a handover waits for the old node to let go
    const starting = Object.keys(assigned).filter((t) => assigned[t].node === n.name && !running.includes(t)).sort();
    const items = [
      ...running.map((t) => taskItem(t, states[t], "node-task",
        assigned[t] && assigned[t].node !== n.name ? "moving to " + assigned[t].node : null)),
      ...starting.map((t) => taskItem(t, states[t], "node-task-starting", "starting here")),
    ];
    const labels = Object.entries(n.labels || {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return el("tr", { "data-testid": "node-row", "data-name": n.name, "data-leader": String(!!n.leader),
      "data-draining": String(!!n.draining), "data-self": String(self), class: self ? "this-node" : null },
      el("td", {},
        el("strong", { class: "node-name", "data-testid": "node-name", text: n.name }),
        n.leader ? el("span", { class: "tag tag-leader", "data-testid": "node-leader", text: "leader" }) : null,
        self ? el("span", { class: "tag tag-self", "data-testid": "node-self", text: "this node" }) : null,
        n.draining ? el("span", { class: "tag tag-draining", "data-testid": "node-draining", text: "draining" }) : null,
        el("div", { class: "muted small mono", "data-testid": "node-api", text: n.api })),
      el("td", {}, labels.length
        ? labels.map(([k, v]) => el("span", { class: "tag tag-label", "data-testid": "node-label", text: k + "=" + v }))
        : el("span", { class: "muted", text: "none" })),
      el("td", {}, items.length
        ? el("ul", { class: "node-tasks" }, items)
        : el("span", { class: "muted", "data-testid": "node-idle", text: n.draining ? "none (draining)" : "none" })),
      el("td", { class: "small" },
        el("div", { text: (n.host || "?") + " \u00b7 pid " + n.pid }),
        n.started_at ? el("div", { class: "muted", text: "since " + fmtTime(n.started_at) }) : null),
      el("td", { class: "actions" }, drainButton(n.name, !!n.draining, report, after)));
  }

  function taskItem(name, state, testid, note) {
    return el("li", { "data-testid": testid, "data-name": name },
      el("a", { href: taskHref(name), "data-testid": "node-task-link", text: name }),
      state ? " " : null, state ? stateBadge(state, "node-task-state") : null,
      note ? el("span", { class: "tag tag-moving", "data-testid": "node-task-note", text: note }) : null);
  }

  /** Tasks assigned to a node that is gone (the leader moves them), active tasks
   * no node runs, and drains of nodes that are not alive (a drain outlives its node). */
  function renderMoving(box, s, tasks, states, report, after) {
    const live = new Set(s.nodes.map((n) => n.name));
    const assigned = s.assignments || {};
    const lines = [];
    for (const [t, a] of Object.entries(assigned)) {
      if (live.has(a.node)) continue;
      lines.push(el("li", { "data-testid": "moving-row", "data-name": t, "data-node": a.node },
        el("a", { href: taskHref(t), text: t }), " ", states[t] ? stateBadge(states[t], "moving-state") : null,
        " assigned to node ", el("strong", { text: a.node }), " (epoch " + a.epoch + ", since " + fmtTime(a.at) + "), which is gone: moving to a live node"));
    }
    for (const t of tasks) {
      if (t.node || !ACTIVE.has(t.state) || t.name in assigned) continue;
      lines.push(el("li", { "data-testid": "waiting-row", "data-name": t.name },
        el("a", { href: taskHref(t.name), text: t.name }), " ", stateBadge(t.state, "moving-state"),
        " waiting for a node (its timeline says why)"));
    }
    for (const d of s.drains || []) {
      if (live.has(d)) continue;
      lines.push(el("li", { "data-testid": "gone-drain", "data-name": d },
        "Node ", el("strong", { text: d }), " is not alive and still drained (it takes no tasks when it comes back) ",
        drainButton(d, true, report, after)));
    }
    box.hidden = !lines.length;
    clear(box);
    if (lines.length) append(box, [el("h2", { text: "Between nodes" }), el("ul", { class: "moving-list" }, lines)]);
  }

  /** Drain a node (its tasks move to others at their next checkpoint) or end its drain. */
  function drainButton(name, draining, report, after) {
    const button = el("button", { type: "button", class: draining ? "small" : "small danger",
      "data-testid": draining ? "node-undrain" : "node-drain", "data-node": name, text: draining ? "End drain" : "Drain" });
    button.addEventListener("click", async () => {
      const question = draining
        ? "End the drain of node " + name + "? It receives tasks again."
        : "Drain node " + name + "? Its tasks move to other nodes at their next checkpoint, and it receives none until the drain ends.";
      if (!window.confirm(question)) return;
      button.disabled = true;
      report(null);
      try {
        await api(draining ? "DELETE" : "POST", API + "/cluster/nodes/" + encodeURIComponent(name) + "/drain");
      } catch (err) {
        if (err instanceof ApiError) report("node " + name + ": " + err.message);
        else if (!(err instanceof Unauthorized)) report(String(err));
      } finally {
        button.disabled = false;
        after();
      }
    });
    return button;
  }

  return { probe, thisNode, nodeCell, showPlacement, parsePlacement, timelineBadge, renderView };
})(window.duosync);
