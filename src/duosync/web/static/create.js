/* duosync console: the create form (#/new). A task is created, not started: its
 * page starts it. The fields make a task spec (the same fields as a YAML spec);
 * the advanced box sends a spec as JSON as-is. Uses core.js (window.duosync);
 * app.js calls it as duosync.create.render().
 */
"use strict";

window.duosync.create = (function (ds) {
  const { API, el, clear, setText, taskHref, field, ApiError, Unauthorized, api, app } = ds;

  function render() {
    const name = el("input", { id: "f-name", name: "name", "data-testid": "field-name", placeholder: "shop-copy", autocomplete: "off" });
    const source = el("input", { id: "f-source", name: "source", "data-testid": "field-source", placeholder: "mariadb://user:password@host:3306", autocomplete: "off" });
    const target = el("input", { id: "f-target", name: "target", "data-testid": "field-target", placeholder: "oceanbase://user:password@host:2881", autocomplete: "off" });
    const types = ["schema", "full", "incremental"].map((t) =>
      el("label", { class: "check" },
        el("input", { type: "checkbox", name: "types", value: t, "data-testid": "type-" + t, checked: t !== "incremental" }), " " + t));
    const topology = el("select", { id: "f-topology", "data-testid": "field-topology" },
      el("option", { value: "one-way", text: "one-way" }), el("option", { value: "two-way", text: "two-way" }));
    const databases = el("input", { id: "f-databases", "data-testid": "field-databases", placeholder: "shop, billing", autocomplete: "off" });
    const objects = el("textarea", { id: "f-objects", rows: "4", class: "mono", spellcheck: "false", "data-testid": "field-objects",
      placeholder: "shop.orders\nshop.customers crm.clients   # renamed on the target" });
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
      // parsed by the server (the select.import format), so its errors name the line
      if (objects.value.trim()) spec.objects_text = objects.value;
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
          field("Objects (one per line: db.table [target_db.target_table])", objects,
            "tables or views to select (the second name renames it on the target); # starts a comment"),
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

  return { render };
})(window.duosync);
