// The llm-endpoint admin page. Plain script, no library, no outside request:
// every fetch goes to a relative URL (admin/...), so only to this page's own
// origin and stage prefix, with the admin key pasted into the page. Whatever
// the API sends (tenant names, key ids, models, error messages) is shown with
// textContent or as an attribute value, never parsed as HTML.
"use strict";

(function () {
  // Not the playground's entry: an admin key cannot call models, and a model key is not an admin's.
  const KEY_STORE = "llm-endpoint.admin-key";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const byId = (id) => document.getElementById(id);
  const LIMITS = [
    ["requests_per_minute", "requests/min", "rpm", true],
    ["tokens_per_minute", "tokens/min", "tpm", true],
    ["tokens_per_day", "tokens/day", "tpd", true],
    ["usd_per_day", "US dollars/day", "usd-day", false],
    ["usd_per_month", "US dollars/month", "usd-month", false],
  ];
  const GRACE = [[0, "none: the old secret stops now"], [3600, "1 hour"], [86400, "1 day"],
    [604800, "7 days"]];
  const GROUP_LABEL = { tenant: "tenant", key: "key", model: "model", day: "UTC day" };
  const METRIC_LABEL = { cost_usd: "US dollars", tokens: "tokens", requests: "requests" };
  const state = { keys: [], loaded: false, report: null };

  // --- small helpers ------------------------------------------------------

  function node(tag, className, text) {
    const element = document.createElement(tag);
    if (className) element.className = className;
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function svg(tag, attributes, text) {
    const element = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function button(text, className, label) {
    const element = node("button", className, text);
    element.type = "button";
    if (label) element.setAttribute("aria-label", label);
    return element;
  }

  function money(value) {
    if (typeof value !== "number" || !isFinite(value)) return "n/a";
    if (value === 0) return "$0";
    return "$" + value.toFixed(8).replace(/0+$/, "").replace(/\.$/, "");
  }

  function metricText(metric, value) {
    return metric === "cost_usd" ? money(value) : String(value);
  }

  function when(seconds) {
    if (typeof seconds !== "number") return "never";
    return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function shorten(text, most) {
    return text.length > most ? text.slice(0, most - 1) + "…" : text;
  }

  function setStatus(id, text, isError) {
    const status = byId(id);
    status.textContent = text || "";
    status.className = "status" + (isError ? " error" : "");
  }

  function currentKey() {
    return sessionStorage.getItem(KEY_STORE) || "";
  }

  // --- the API ------------------------------------------------------------

  // The key goes only to this origin: relative URLs, checked once more here.
  function request(path, options) {
    const url = new URL(path, document.baseURI);
    if (url.origin !== window.location.origin) throw new Error("refusing to send the key to " + url.origin);
    const headers = Object.assign({}, (options && options.headers) || {},
      { Authorization: "Bearer " + currentKey() });
    return fetch(url.href, Object.assign({}, options || {}, {
      headers: headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
    }));
  }

  const TITLES = {
    400: "The request was refused",
    404: "Not found",
    413: "The request is too large",
    429: "A limit was reached",
  };

  function describeError(status, body) {
    const envelope = body && typeof body === "object" && body.error && typeof body.error === "object"
      ? body.error : null;
    const code = envelope && typeof envelope.code === "string" ? envelope.code : null;
    const message = envelope && typeof envelope.message === "string" ? envelope.message
      : "no explanation was sent";
    // The gateway's own answers: a bare {"message"} (401) or {"Message"} (403), or the
    // envelope with missing_api_key / invalid_api_key where gateway responses are set.
    if (status === 401 && (!envelope || code === "missing_api_key")) {
      return "No admin key was sent (HTTP 401). Paste one above.";
    }
    if ((status === 403 && !envelope) || code === "invalid_api_key") {
      return "This key was refused (HTTP " + status + (code ? ", " + code : "") +
        "): it is unknown, revoked or expired. Check it and paste it again.";
    }
    if (status === 403 && code === "permission_denied") {
      return "This is not an admin key (HTTP 403, permission_denied): " + message +
        " Paste a key made by scripts/keys.py create-admin.";
    }
    const title = TITLES[status] || (status >= 500 ? "The endpoint failed" : "The request failed");
    return title + " (HTTP " + status + (code ? ", " + code : "") + "): " + message;
  }

  // Whether an answer says the pasted key is no use here (not an admin key, or refused).
  function keyProblem(status, body) {
    const code = body && body.error && typeof body.error === "object" ? body.error.code : null;
    return status === 401 || (status === 403 && (!code || code === "permission_denied")) ||
      code === "invalid_api_key";
  }

  // One call: {ok, status, data} or {ok: false, error}. A refused key also clears the page.
  async function call(method, path, body) {
    let response;
    try {
      response = await request(path, body === undefined ? { method: method } : {
        method: method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
    } catch (error) {
      return { ok: false, status: 0, error: "The endpoint could not be reached: " + (error && error.message) };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (ignored) {
      data = null;
    }
    if (response.ok) return { ok: true, status: response.status, data: data };
    const error = describeError(response.status, data);
    if (keyProblem(response.status, data)) {
      clearViews();
      setStatus("key-status", error, true);
    }
    return { ok: false, status: response.status, error: error };
  }

  // --- the one-time secret ------------------------------------------------

  // The secret lives only in this panel's text, and is gone from the page once hidden.
  function showSecret(secret, about) {
    byId("secret-value").textContent = secret;
    byId("secret-about").textContent = about;
    setStatus("copy-status", "");
    const panel = byId("secret-panel");
    panel.hidden = false;
    panel.scrollIntoView({ block: "nearest" });
    byId("copy-secret").focus();
  }

  function hideSecret() {
    byId("secret-value").textContent = "";
    byId("secret-about").textContent = "";
    setStatus("copy-status", "");
    byId("secret-panel").hidden = true;
  }

  async function copySecret() {
    const value = byId("secret-value");
    try {
      await navigator.clipboard.writeText(value.textContent);
      setStatus("copy-status", "Copied to the clipboard.");
    } catch (ignored) {
      const range = document.createRange();
      range.selectNodeContents(value);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      setStatus("copy-status", "The clipboard is not available here: the secret is selected, copy it " +
        "with Ctrl+C (or Cmd+C).", true);
    }
  }

  // --- keys ---------------------------------------------------------------

  function limitsText(limits) {
    const set = LIMITS.filter(([name]) => limits && Object.prototype.hasOwnProperty.call(limits, name));
    if (!set.length) return "stage defaults";
    const parts = set.map(([name, label]) => {
      const value = limits[name];
      if (value === null) return label + ": unlimited";
      return label + ": " + (name.startsWith("usd") ? money(value) : value);
    });
    return parts.join(" · ") + (set.length < LIMITS.length ? " · others: stage defaults" : "");
  }

  function keyStatus(key) {
    if (!key.enabled) return "revoked";
    if (typeof key.expires_at === "number" && key.expires_at * 1000 <= Date.now()) return "expired";
    return "active";
  }

  // Each cell names its column too: a phone shows a key as a card of labelled lines.
  function cell(row, text, className, column) {
    const td = node("td", className, text);
    td.dataset.column = column;
    row.append(td);
    return td;
  }

  function actionsFor(key, td) {
    td.replaceChildren();
    if (key.scope === "admin") {
      td.append(node("span", "note", "admin key: managed with scripts/keys.py"));
      return;
    }
    if (keyStatus(key) === "revoked") {
      td.append(node("span", "note", "revoked for good"));
      return;
    }
    const rotate = button("Rotate", "rotate", "Rotate " + key.key_id);
    const revoke = button("Revoke", "revoke danger", "Revoke " + key.key_id);
    rotate.addEventListener("click", () => askRotate(key, td));
    revoke.addEventListener("click", () => askRevoke(key, td));
    td.append(rotate, revoke);
  }

  // The confirm step, in the row itself (no browser dialog).
  function askRevoke(key, td) {
    td.replaceChildren();
    const yes = button("Yes, revoke", "confirm-revoke danger", "Yes, revoke " + key.key_id + " for good");
    const no = button("Cancel", "cancel", "Keep " + key.key_id);
    td.append(node("span", "confirm-text", "Revoke for good? Its secret stops working."), yes, no);
    no.addEventListener("click", () => actionsFor(key, td));
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = true;
      const result = await call("DELETE", "admin/keys/" + encodeURIComponent(key.key_id));
      if (!result.ok) {
        if (byId("keys-list").contains(td)) actionsFor(key, td);
        setStatus("keys-status", result.error, true);
        return;
      }
      replaceKey(result.data);
      setStatus("keys-status", "Revoked " + key.key_id + " (tenant " + key.tenant + ").");
    });
    no.focus();
  }

  function askRotate(key, td) {
    td.replaceChildren();
    const grace = node("select", "grace");
    grace.setAttribute("aria-label", "How long the old secret of " + key.key_id + " keeps working");
    for (const [seconds, label] of GRACE) {
      const option = node("option", "", label);
      option.value = String(seconds);
      option.selected = seconds === 86400;
      grace.append(option);
    }
    const yes = button("Rotate now", "confirm-rotate", "Rotate " + key.key_id + " now");
    const no = button("Cancel", "cancel", "Do not rotate " + key.key_id);
    td.append(node("span", "confirm-text", "The old secret keeps working:"), grace, yes, no);
    no.addEventListener("click", () => actionsFor(key, td));
    yes.addEventListener("click", async () => {
      yes.disabled = no.disabled = grace.disabled = true;
      const result = await call("POST", "admin/keys/" + encodeURIComponent(key.key_id) + "/rotate",
        { grace_seconds: Number(grace.value) });
      if (!result.ok) {
        if (byId("keys-list").contains(td)) actionsFor(key, td);
        setStatus("keys-status", result.error, true);
        return;
      }
      const rotated = result.data;
      const until = rotated.previous_key_expires_at;
      showSecret(rotated.key, "The new secret of " + rotated.key_id + " (tenant " + rotated.tenant +
        "). The old one " + (typeof until === "number" && until * 1000 > Date.now()
        ? "keeps working until " + when(until) + "." : "has stopped working."));
      delete rotated.key;
      replaceKey(rotated);
      setStatus("keys-status", "Rotated " + rotated.key_id + ".");
    });
    grace.focus();
  }

  // A key as listed: the answer of a change, less its secret and rotation note.
  function replaceKey(updated) {
    const fields = Object.assign({}, updated);
    delete fields.key;
    delete fields.previous_key_expires_at;
    state.keys = state.keys.map((key) => (key.key_id === fields.key_id ? fields : key));
    renderKeys();
  }

  function keyRow(key) {
    const row = node("tr", "key " + keyStatus(key));
    row.dataset.keyId = key.key_id;
    row.dataset.status = keyStatus(key);
    const id = node("code", "key-id", key.key_id);
    cell(row, "", "", "Key id").append(id);
    cell(row, keyStatus(key) + (key.scope === "admin" ? " · admin" : ""), "status-cell", "Status");
    cell(row, limitsText(key.limits), "limits", "Limits");
    cell(row, Array.isArray(key.models) ? key.models.join(", ") : "all of the stage's", "models", "Models");
    cell(row, when(key.expires_at), "expires", "Expires");
    cell(row, when(key.created_at), "created", "Created");
    actionsFor(key, cell(row, "", "actions", "Actions"));
    return row;
  }

  function renderKeys() {
    const list = byId("keys-list");
    list.replaceChildren();
    if (!state.loaded) return;
    const filter = byId("tenant-filter").value.trim().toLowerCase();
    const tenants = new Map();
    for (const key of state.keys) {
      if (!tenants.has(key.tenant)) tenants.set(key.tenant, []);
      tenants.get(key.tenant).push(key);
    }
    const names = [...tenants.keys()].sort();
    const datalist = byId("tenant-names");
    datalist.replaceChildren(...names.map((name) => {
      const option = node("option");
      option.value = name;
      return option;
    }));
    const shown = names.filter((name) => !filter || name.toLowerCase().includes(filter));
    if (!shown.length) {
      list.append(node("p", "note", state.keys.length ? "No tenant matches the filter." : "No keys yet."));
      return;
    }
    for (const name of shown) {
      const keys = tenants.get(name);
      const group = node("section", "tenant-group");
      group.dataset.tenant = name;
      const head = node("div", "tenant-head");
      head.append(node("h3", "tenant-name", name), node("span", "note",
        keys.length + (keys.length === 1 ? " key" : " keys")));
      const limits = button("Tenant limits", "tenant-limits", "Tenant limits of " + name);
      limits.addEventListener("click", () => {
        byId("tenant-name").value = name;
        loadTenant();
        byId("tenant-form").scrollIntoView({ block: "nearest" });
      });
      head.append(limits);
      const table = node("table", "keys");
      const header = node("tr");
      for (const title of ["Key id", "Status", "Limits", "Models", "Expires", "Created", "Actions"]) {
        const th = node("th", "", title);
        th.scope = "col";
        header.append(th);
      }
      const thead = node("thead");
      thead.append(header);
      const tbody = node("tbody");
      for (const key of keys) tbody.append(keyRow(key));
      table.append(thead, tbody);
      const wrap = node("div", "table-wrap");
      wrap.append(table);
      group.append(head, wrap);
      list.append(group);
    }
  }

  async function loadKeys() {
    setStatus("keys-status", "Loading keys…");
    const result = await call("GET", "admin/keys");
    if (!result.ok) {
      setStatus("keys-status", result.error, true);
      return result;
    }
    state.keys = (result.data && Array.isArray(result.data.data)) ? result.data.data : [];
    state.loaded = true;
    renderKeys();
    const tenants = new Set(state.keys.map((key) => key.tenant)).size;
    setStatus("keys-status", state.keys.length + (state.keys.length === 1 ? " key" : " keys") + " of " +
      tenants + (tenants === 1 ? " tenant." : " tenants."));
    return result;
  }

  // --- forms --------------------------------------------------------------

  // A limit field: undefined (left out), null (unlimited) or a number; an Error when neither.
  function limitValue(text, label, whole, noneAllowed) {
    const value = text.trim().toLowerCase();
    if (value === "") return undefined;
    if (value === "none" || value === "unlimited") {
      if (noneAllowed) return null;
      return undefined;
    }
    const number = Number(value);
    if (!isFinite(number) || number <= 0 || (whole && !Number.isInteger(number))) {
      throw new Error(label + " must be " + (whole ? "a whole number of 1 or more" : "an amount above 0") +
        (noneAllowed ? ", 'none' for unlimited, or empty for the stage's default." : ", or empty for unlimited."));
    }
    return number;
  }

  function limitsFrom(prefix, noneAllowed) {
    const limits = {};
    for (const [name, label, suffix, whole] of LIMITS) {
      const value = limitValue(byId(prefix + suffix).value, label, whole, noneAllowed);
      if (value !== undefined) limits[name] = value;
    }
    return limits;
  }

  async function createKey(event) {
    event.preventDefault();
    let body;
    try {
      body = { tenant: byId("new-tenant").value.trim() };
      const limits = limitsFrom("new-", true);
      if (Object.keys(limits).length) body.limits = limits;
      const models = byId("new-models").value.split(/[\s,]+/).filter(Boolean);
      if (models.length) body.models = models;
      const days = byId("new-expires").value.trim();
      if (days) {
        const number = Number(days);
        if (!isFinite(number) || number <= 0) throw new Error("Expires in days must be above 0, or empty for never.");
        body.expires_at = Math.floor(Date.now() / 1000 + number * 86400);
      }
    } catch (error) {
      setStatus("create-status", error.message, true);
      return;
    }
    if (!body.tenant) {
      setStatus("create-status", "Name the tenant of the new key.", true);
      byId("new-tenant").focus();
      return;
    }
    setStatus("create-status", "Creating…");
    const result = await call("POST", "admin/keys", body);
    if (!result.ok) {
      setStatus("create-status", result.error, true);
      return;
    }
    const made = result.data;
    byId("create-form").reset();
    setStatus("create-status", "Created " + made.key_id + " for tenant " + made.tenant + ".");
    showSecret(made.key, "The secret of the new key " + made.key_id + " (tenant " + made.tenant + ").");
    delete made.key;
    if (state.loaded) {
      state.keys = state.keys.concat([made]);
      renderKeys();
    }
  }

  function fillTenant(limits) {
    for (const [name, , suffix] of LIMITS) {
      const value = limits ? limits[name] : null;
      byId("tenant-" + suffix).value = value === null || value === undefined ? "" : String(value);
    }
  }

  function tenantSummary(tenant, limits) {
    const parts = LIMITS.filter(([name]) => limits[name] !== null && limits[name] !== undefined)
      .map(([name, label]) => label + ": " + (name.startsWith("usd") ? money(limits[name]) : limits[name]));
    return "Tenant " + tenant + ": " + (parts.length ? parts.join(" · ") + "; the rest unlimited."
      : "no limits of its own (its keys' limits apply).");
  }

  async function loadTenant() {
    const tenant = byId("tenant-name").value.trim();
    if (!tenant) {
      setStatus("tenant-status", "Name a tenant first.", true);
      byId("tenant-name").focus();
      return;
    }
    setStatus("tenant-status", "Loading…");
    const result = await call("GET", "admin/tenants/" + encodeURIComponent(tenant));
    if (!result.ok) {
      setStatus("tenant-status", result.error, true);
      return;
    }
    fillTenant(result.data.limits);
    setStatus("tenant-status", tenantSummary(result.data.tenant, result.data.limits));
  }

  async function saveTenant(event) {
    event.preventDefault();
    const tenant = byId("tenant-name").value.trim();
    if (!tenant) {
      setStatus("tenant-status", "Name a tenant first.", true);
      byId("tenant-name").focus();
      return;
    }
    let limits;
    try {
      limits = limitsFrom("tenant-", false);
    } catch (error) {
      setStatus("tenant-status", error.message, true);
      return;
    }
    setStatus("tenant-status", "Saving…");
    // PUT replaces the whole tenant: whatever else it holds besides the limits this form sets
    // (a field a newer API adds) is read first and sent back unchanged.
    const path = "admin/tenants/" + encodeURIComponent(tenant);
    const current = await call("GET", path);
    if (!current.ok) {
      setStatus("tenant-status", current.error, true);
      return;
    }
    const body = {};
    for (const [name, value] of Object.entries(current.data || {})) {
      if (!["object", "tenant", "limits"].includes(name)) body[name] = value;
    }
    body.limits = limits;
    const result = await call("PUT", path, body);
    if (!result.ok) {
      setStatus("tenant-status", result.error, true);
      return;
    }
    fillTenant(result.data.limits);
    setStatus("tenant-status", "Saved. " + tenantSummary(result.data.tenant, result.data.limits));
  }

  // --- spend --------------------------------------------------------------

  function labelOf(group, row) {
    return group === "day" ? row.date : group === "key" ? row.key_id
      : group === "model" ? row.model : row.tenant;
  }

  // Every day of the report, those without spend as zeros (the API lists only days with some).
  function everyDay(report) {
    const byDate = new Map(report.data.map((row) => [row.date, row]));
    const days = [];
    const last = Date.parse(report.to + "T00:00:00Z");
    for (let at = Date.parse(report.from + "T00:00:00Z"); at <= last; at += 86400000) {
      const date = new Date(at).toISOString().slice(0, 10);
      days.push(byDate.get(date) || { date: date, requests: 0, tokens: 0, cost_usd: 0 });
    }
    return days;
  }

  // Charts are drawn at the width they are shown at (one unit a CSS pixel), so their text
  // stays readable from a phone to a wide screen; a resize draws them again.
  function chartWidth(chart) {
    return Math.max(280, Math.round(chart.getBoundingClientRect().width) || 600);
  }

  function columnChart(chart, days, metric) {
    const width = chartWidth(chart), top = 16, base = 150, slot = width / Math.max(1, days.length);
    chart.setAttribute("viewBox", "0 0 " + width + " 170");
    const most = Math.max(...days.map((day) => day[metric]), 0) || 1;
    chart.append(svg("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis" }));
    days.forEach((day, i) => {
      const height = Math.round((day[metric] / most) * (base - top));
      const bar = svg("rect", {
        x: (i * slot + slot * 0.15).toFixed(1), y: base - height, width: (slot * 0.7).toFixed(1),
        height: height, class: i === days.length - 1 ? "bar today" : "bar",
        "data-label": day.date, "data-value": day[metric],
      });
      bar.append(svg("title", {}, day.date + ": " + money(day.cost_usd) + ", " + day.tokens + " tokens, " +
        day.requests + " requests"));
      chart.append(bar);
      const every = width < 500 ? 10 : 5;
      if (i % every === 0 || i === days.length - 1) {
        // The first and last labels keep inside the chart.
        const anchor = i === 0 ? "start" : i === days.length - 1 ? "end" : "middle";
        const x = anchor === "start" ? i * slot : anchor === "end" ? (i + 1) * slot : i * slot + slot / 2;
        chart.append(svg("text", { x: x.toFixed(1), y: base + 14, class: "day", "text-anchor": anchor },
          day.date.slice(5)));
      }
    });
  }

  function barChart(chart, rows, group, metric) {
    const width = chartWidth(chart), shown = rows.slice(0, 12), line = 24;
    const labelWidth = Math.min(190, Math.round(width * 0.4)), valueRoom = 90;
    const mostChars = Math.floor((labelWidth - 12) / 6.5);
    const height = Math.max(1, shown.length) * line + 8;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    const most = Math.max(...shown.map((row) => row[metric]), 0) || 1;
    shown.forEach((row, i) => {
      const label = labelOf(group, row);
      const y = 4 + i * line;
      const length = Math.round((row[metric] / most) * (width - labelWidth - valueRoom));
      chart.append(svg("text", { x: labelWidth - 8, y: y + 16, class: "label" }, shorten(label, mostChars)));
      const bar = svg("rect", {
        x: labelWidth, y: y + 3, width: Math.max(length, row[metric] > 0 ? 1 : 0), height: line - 8,
        class: "bar", "data-label": label, "data-value": row[metric],
      });
      bar.append(svg("title", {}, label + ": " + money(row.cost_usd) + ", " + row.tokens + " tokens, " +
        row.requests + " requests"));
      chart.append(bar, svg("text", { x: labelWidth + length + 6, y: y + 16, class: "value" },
        metricText(metric, row[metric])));
    });
  }

  function drawChart() {
    const chart = byId("spend-chart");
    chart.replaceChildren();
    const report = state.report;
    if (!report) {
      byId("spend-caption").textContent = "";
      return;
    }
    const group = report.group_by, metric = byId("spend-metric").value;
    const rows = group === "day" ? everyDay(report)
      : report.data.slice().sort((a, b) => b[metric] - a[metric] || (labelOf(group, a) < labelOf(group, b) ? -1 : 1));
    if (!rows.length) {
      const width = chartWidth(chart);
      chart.setAttribute("viewBox", "0 0 " + width + " 40");
      chart.append(svg("text", { x: width / 2, y: 25, class: "empty" }, "No spend in these days."));
    } else if (group === "day") {
      columnChart(chart, rows, metric);
    } else {
      barChart(chart, rows, group, metric);
    }
    byId("spend-caption").textContent = METRIC_LABEL[metric] + " per " + GROUP_LABEL[group] + ", " +
      report.from + " to " + report.to + " (UTC)" + (group !== "day" && rows.length > 12
      ? "; the 12 largest (the table has all " + rows.length + ")" : "");
  }

  function drawTable() {
    const table = byId("spend-table");
    const [thead, tbody, tfoot] = [table.tHead, table.tBodies[0], table.tFoot];
    thead.replaceChildren();
    tbody.replaceChildren();
    tfoot.replaceChildren();
    const report = state.report;
    if (!report) return;
    const group = report.group_by;
    const labels = { tenant: ["Tenant"], key: ["Key id", "Tenant"], model: ["Model"],
      day: ["UTC day"] }[group];
    const header = node("tr");
    for (const title of labels.concat(["Requests", "Tokens", "US dollars"])) {
      const th = node("th", "", title);
      th.scope = "col";
      header.append(th);
    }
    thead.append(header);
    const rows = group === "day" ? report.data.slice().sort((a, b) => (a.date < b.date ? -1 : 1))
      : report.data.slice().sort((a, b) => b.cost_usd - a.cost_usd || (labelOf(group, a) < labelOf(group, b) ? -1 : 1));
    const total = { requests: 0, tokens: 0, cost_usd: 0 };
    for (const row of rows) {
      const tr = node("tr");
      tr.dataset.label = labelOf(group, row);
      const cells = group === "key" ? [row.key_id, row.tenant] : [labelOf(group, row)];
      for (const text of cells) tr.append(node("td", "", text));
      tr.append(node("td", "num", String(row.requests)), node("td", "num", String(row.tokens)),
        node("td", "num", money(row.cost_usd)));
      tbody.append(tr);
      total.requests += row.requests;
      total.tokens += row.tokens;
      total.cost_usd += row.cost_usd;
    }
    if (!rows.length) {
      const tr = node("tr");
      const td = node("td", "note", "No spend in these days.");
      td.colSpan = labels.length + 3;
      tr.append(td);
      tbody.append(tr);
      return;
    }
    const tr = node("tr");
    const th = node("th", "", "Total");
    th.scope = "row";
    th.colSpan = labels.length;
    tr.append(th, node("td", "num", String(total.requests)), node("td", "num", String(total.tokens)),
      node("td", "num", money(Math.round(total.cost_usd * 1e8) / 1e8)));
    tfoot.append(tr);
  }

  async function loadSpend() {
    const group = byId("spend-group").value;
    setStatus("spend-status", "Loading spend…");
    const result = await call("GET", "admin/usage?group_by=" + encodeURIComponent(group));
    if (!result.ok) {
      state.report = null;
      drawChart();
      drawTable();
      setStatus("spend-status", result.error, true);
      return;
    }
    state.report = result.data;
    drawChart();
    drawTable();
    setStatus("spend-status", "");
  }

  // The CSV is fetched with the key (a plain link could not send it), then saved from a blob: URL.
  async function downloadCsv() {
    const group = byId("spend-group").value;
    setStatus("spend-status", "Preparing the CSV…");
    let response;
    try {
      response = await request("admin/usage?group_by=" + encodeURIComponent(group) + "&format=csv");
    } catch (error) {
      setStatus("spend-status", "The endpoint could not be reached: " + (error && error.message), true);
      return;
    }
    if (!response.ok) {
      let body = null;
      try {
        body = await response.json();
      } catch (ignored) {
        body = null;
      }
      const error = describeError(response.status, body);
      if (keyProblem(response.status, body)) {
        clearViews();
        setStatus("key-status", error, true);
      }
      setStatus("spend-status", error, true);
      return;
    }
    const blob = new Blob([await response.text()], { type: "text/csv" });
    const url = URL.createObjectURL(blob);
    const link = node("a");
    link.href = url;
    link.download = "usage-by-" + group + ".csv";
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    setStatus("spend-status", "Saved usage-by-" + group + ".csv.");
  }

  // --- the key ------------------------------------------------------------

  // Everything the page shows of the stage: gone when the key is forgotten or refused.
  function clearViews() {
    state.keys = [];
    state.loaded = false;
    state.report = null;
    hideSecret();
    renderKeys();
    byId("tenant-names").replaceChildren();
    drawChart();
    drawTable();
    fillTenant(null);
    for (const id of ["keys-status", "create-status", "tenant-status", "spend-status"]) setStatus(id, "");
  }

  async function useKey() {
    const masked = currentKey().slice(0, 8) + "…";
    setStatus("key-status", "Checking key " + masked);
    const result = await loadKeys();
    if (result.ok) {
      setStatus("key-status", "Admin key " + masked + " in use for this tab.");
      await loadSpend();
    } else {
      setStatus("key-status", result.error, true);
    }
  }

  function start() {
    byId("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = byId("admin-key");
      const typed = input.value.trim();
      if (!typed) return;
      sessionStorage.setItem(KEY_STORE, typed);
      input.value = ""; // taken into the tab, out of the page
      clearViews();
      useKey();
    });
    byId("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      clearViews();
      setStatus("key-status", "Key forgotten.");
    });
    byId("copy-secret").addEventListener("click", copySecret);
    byId("dismiss-secret").addEventListener("click", hideSecret);
    byId("tenant-filter").addEventListener("input", renderKeys);
    byId("refresh-keys").addEventListener("click", loadKeys);
    byId("create-form").addEventListener("submit", createKey);
    byId("tenant-form").addEventListener("submit", saveTenant);
    byId("load-tenant").addEventListener("click", loadTenant);
    byId("spend-group").addEventListener("change", loadSpend);
    byId("spend-metric").addEventListener("change", drawChart);
    byId("refresh-spend").addEventListener("click", loadSpend);
    byId("download-csv").addEventListener("click", downloadCsv);
    let resized = null;
    window.addEventListener("resize", () => {
      clearTimeout(resized);
      resized = setTimeout(() => { if (state.report) drawChart(); }, 150);
    });
    if (currentKey()) useKey();
    else setStatus("key-status", "No key yet: paste an admin key (scripts/keys.py create-admin prints one).");
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
