// The llm-endpoint playground. Plain script, no library, no outside request:
// every fetch goes to a relative URL, so only to this page's own origin (and
// stage prefix). Everything the server or the model sends is shown with
// textContent, never parsed as HTML.
"use strict";

(function () {
  const KEY_STORE = "llm-endpoint.key";
  const byId = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const state = { history: [], controller: null, starting: false };

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

  function money(value) {
    if (typeof value !== "number" || !isFinite(value)) return "n/a";
    if (value === 0) return "$0";
    return "$" + value.toFixed(8).replace(/0+$/, "").replace(/\.$/, "");
  }

  function count(n, noun) {
    return n + " " + noun + (n === 1 ? "" : "s");
  }

  function currentKey() {
    return sessionStorage.getItem(KEY_STORE) || "";
  }

  // The key goes only to this origin: relative URLs, checked once more here.
  function api(path, options) {
    const url = new URL(path, document.baseURI);
    if (url.origin !== window.location.origin) throw new Error("refusing to send the key to " + url.origin);
    const headers = Object.assign({}, (options && options.headers) || {},
      { Authorization: "Bearer " + currentKey() });
    return fetch(url.href, Object.assign({}, options || {}, {
      headers: headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
    }));
  }

  // --- errors -------------------------------------------------------------

  const TITLES = {
    400: "The request was refused",
    404: "Not found",
    413: "The request is too large",
    429: "A limit was reached",
  };

  function describeError(status, body, retryAfter) {
    const envelope = body && typeof body === "object" && body.error && typeof body.error === "object"
      ? body.error : null;
    // The gateway's own answers: a bare {"message"} (401) or {"Message"} (403), or the
    // envelope with missing_api_key / invalid_api_key where gateway responses are set.
    const code = envelope && envelope.code;
    if (status === 401 && (!envelope || code === "missing_api_key")) {
      return "No API key was sent (HTTP 401). Paste a key above.";
    }
    if (status !== null && ((status === 403 && !envelope) || code === "invalid_api_key")) {
      return "This API key was refused (HTTP " + status + (code ? ", " + code : "") +
        "): it is unknown, revoked or expired. Check it and paste it again.";
    }
    let title = TITLES[status] || (status >= 500 ? "The endpoint or the model failed" : "The request failed");
    if (status === null) title = "The model failed during the answer";
    const where = [status === null ? null : "HTTP " + status, envelope && envelope.code].filter(Boolean).join(", ");
    const message = envelope && typeof envelope.message === "string" ? envelope.message
      : "no explanation was sent";
    let text = title + (where ? " (" + where + ")" : "") + ": " + message;
    if (retryAfter && !/retry after/i.test(message)) text += " Retry after " + retryAfter + " s.";
    return text;
  }

  async function httpError(response) {
    let body = null;
    try {
      body = await response.json();
    } catch (ignored) {
      body = null;
    }
    return describeError(response.status, body, response.headers.get("Retry-After"));
  }

  // --- server-sent events -------------------------------------------------

  // Yields the data of each event ("[DONE]" included) as it arrives.
  async function* sseData(stream) {
    const reader = stream.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const takeEvents = function* (final) {
      // Line ends may be \r\n, \n or \r; a \r at the very end may be half of a \r\n.
      const keep = !final && buffer.endsWith("\r") ? 1 : 0;
      buffer = buffer.slice(0, buffer.length - keep).replace(/\r\n?/g, "\n") + buffer.slice(buffer.length - keep);
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = eventData(block);
        if (data !== null) yield data;
      }
      if (final && buffer.trim()) {
        const data = eventData(buffer);
        buffer = "";
        if (data !== null) yield data;
      }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        yield* takeEvents(false);
      }
      buffer += decoder.decode();
      yield* takeEvents(true);
    } finally {
      reader.cancel().catch(() => {}); // the reader stopped early: close the connection
    }
  }

  function eventData(block) {
    const lines = [];
    for (const line of block.split("\n")) {
      if (!line.startsWith("data:")) continue; // comments, event:, id:, retry:
      lines.push(line.slice(line.startsWith("data: ") ? 6 : 5));
    }
    return lines.length ? lines.join("\n") : null;
  }

  // --- the conversation ---------------------------------------------------

  // Keep the newest turn in sight (the transcript scrolls on a wide screen, the page on a phone).
  function follow(item) {
    item.scrollIntoView({ block: "end", inline: "nearest" });
  }

  function addTurn(role, text) {
    const item = node("li", "turn " + role);
    item.append(node("p", "who", role === "user" ? "You" : "Model"));
    const body = node("p", "text", text);
    item.append(body);
    byId("transcript").append(item);
    follow(item);
    return { item: item, text: body };
  }

  function mergeToolCalls(calls, deltas) {
    for (const delta of deltas) {
      const index = Number.isInteger(delta.index) ? delta.index : calls.length;
      const call = calls[index] || (calls[index] = { id: "", name: "", arguments: "" });
      if (typeof delta.id === "string") call.id = delta.id;
      const fn = delta.function || {};
      if (typeof fn.name === "string") call.name += fn.name;
      if (typeof fn.arguments === "string") call.arguments += fn.arguments;
    }
  }

  function renderToolCalls(container, calls) {
    container.replaceChildren();
    for (const call of calls) {
      if (!call) continue;
      const box = node("div", "tool-call");
      const head = node("p", "tool-head", "Tool call: ");
      head.append(node("code", "tool-name", call.name || "(no name)"));
      if (call.id) head.append(node("span", "tool-id", " id " + call.id));
      let args = call.arguments;
      try {
        args = JSON.stringify(JSON.parse(call.arguments), null, 2);
      } catch (ignored) {
        // still arriving, or not JSON: shown as sent
      }
      box.append(head, node("pre", "tool-args", args));
      container.append(box);
    }
  }

  function limitsLine(headers) {
    const parts = [];
    for (const [name, label] of [["requests", "requests/min"], ["tokens", "tokens/min"],
      ["tokens-day", "tokens/day"]]) {
      const limit = headers.get("x-ratelimit-limit-" + name);
      if (limit === null) continue;
      parts.push(label + ": " + headers.get("x-ratelimit-remaining-" + name) + " of " + limit +
        " left, resets in " + headers.get("x-ratelimit-reset-" + name));
    }
    return parts.length ? "Rate limits: " + parts.join(" · ") : "Rate limits: none on this key";
  }

  function usageLine(usage) {
    if (!usage) return "Usage: not reported";
    return "Usage: " + usage.prompt_tokens + " prompt + " + usage.completion_tokens + " completion = " +
      usage.total_tokens + " tokens · cost " + money(usage.cost_usd);
  }

  // The tools field: null when empty, else the parsed array (or an error is thrown).
  function tools() {
    const text = byId("tools").value.trim();
    if (!text) return null;
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new Error("Tools are not valid JSON: " + error.message);
    }
    if (!Array.isArray(parsed)) throw new Error("Tools must be a JSON array of tool definitions.");
    return parsed;
  }

  function requestBody(messages, toolList) {
    const body = {
      model: byId("model").value,
      messages: messages,
      stream: true,
      stream_options: { include_usage: true },
    };
    const temperature = byId("temperature").value.trim();
    if (temperature !== "") body.temperature = Number(temperature);
    const maxTokens = byId("max-tokens").value.trim();
    if (maxTokens !== "") body.max_tokens = Number(maxTokens);
    if (toolList) body.tools = toolList;
    return body;
  }

  function setBusy(busy) {
    byId("send").disabled = busy;
    byId("stop").disabled = !busy;
  }

  async function send(prompt, toolList) {
    const system = byId("system").value.trim();
    const messages = (system ? [{ role: "system", content: system }] : [])
      .concat(state.history, [{ role: "user", content: prompt }]);
    addTurn("user", prompt);
    const answer = addTurn("assistant", "");
    answer.item.setAttribute("aria-busy", "true");
    answer.item.dataset.state = "streaming";
    const callsBox = node("div", "tool-calls");
    const meta = node("div", "meta");
    answer.item.append(callsBox, meta);
    const result = { text: "", calls: [], usage: null, finish: null, error: null, done: false, stopped: false };
    const controller = new AbortController();
    state.controller = controller;
    setBusy(true);
    let response = null;
    try {
      response = await api("v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(requestBody(messages, toolList)),
        signal: controller.signal,
      });
      if (!response.ok) {
        result.error = await httpError(response);
      } else {
        for await (const data of sseData(response.body)) {
          if (data === "[DONE]") {
            result.done = true;
            break;
          }
          let event;
          try {
            event = JSON.parse(data);
          } catch (ignored) {
            result.error = "The stream sent an event that is not JSON; the answer stops here.";
            break;
          }
          if (event && event.error) {
            result.error = describeError(null, event);
            break;
          }
          for (const choice of event.choices || []) {
            const delta = choice.delta || {};
            if (typeof delta.content === "string" && delta.content) {
              result.text += delta.content;
              answer.text.textContent = result.text;
              follow(answer.item);
            }
            if (Array.isArray(delta.tool_calls)) {
              mergeToolCalls(result.calls, delta.tool_calls);
              renderToolCalls(callsBox, result.calls);
            }
            if (choice.finish_reason) result.finish = choice.finish_reason;
          }
          if (event.usage) result.usage = event.usage;
        }
        if (!result.done && !result.error) {
          result.error = "The stream ended without its end marker: the answer may be cut short.";
        }
      }
    } catch (error) {
      if (error && error.name === "AbortError") result.stopped = true;
      else result.error = "The endpoint could not be reached: " + (error && error.message);
    } finally {
      state.controller = null;
      setBusy(false);
    }
    answer.item.removeAttribute("aria-busy");
    if (result.stopped) {
      answer.item.dataset.state = "stopped";
      meta.append(node("p", "stopped", "Stopped: the request was cancelled."));
    } else if (result.error) {
      answer.item.dataset.state = "error";
      meta.append(node("p", "error", result.error));
    } else {
      answer.item.dataset.state = "done";
    }
    if (result.calls.length) {
      meta.append(node("p", "note", "The model asked for tool calls; this page shows them and does not " +
        "run them, and the conversation goes on without them."));
    }
    if (result.usage) {
      const usage = node("p", "usage", usageLine(result.usage) +
        (result.finish ? " · finish: " + result.finish : ""));
      meta.append(usage);
    }
    if (response && response.ok) meta.append(node("p", "limits", limitsLine(response.headers)));
    follow(answer.item);
    if (!result.error && result.text) {
      state.history.push({ role: "user", content: prompt }, { role: "assistant", content: result.text });
    }
    refreshUsage();
  }

  // --- models and usage ---------------------------------------------------

  function showKeyStatus(text, isError) {
    const status = byId("key-status");
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  // What the page shows of a key: gone when the key is forgotten, refused or replaced, so
  // that one key's usage is never shown beside another.
  function clearKeyView() {
    byId("model").replaceChildren();
    byId("usage-facts").replaceChildren();
    byId("usage-chart").replaceChildren();
    const status = byId("usage-status");
    status.textContent = "";
    status.className = "";
  }

  async function loadModels() {
    const response = await api("v1/models");
    if (!response.ok) {
      clearKeyView();
      showKeyStatus(await httpError(response), true);
      return false;
    }
    const body = await response.json();
    const select = byId("model");
    const previous = select.value;
    select.replaceChildren();
    // Chat models only: the embedding models the endpoint also lists cannot answer here.
    for (const model of (body.data || []).filter((m) => (m.kind || "chat") === "chat")) {
      const option = node("option", "", model.id);
      option.value = model.id;
      select.append(option);
    }
    if (previous) select.value = previous;
    return true;
  }

  function limitText(value, unit) {
    return value === null || value === undefined ? null : value + " " + unit;
  }

  function fact(list, term, value) {
    list.append(node("dt", "", term), node("dd", "", value));
  }

  function drawChart(days) {
    const chart = byId("usage-chart");
    chart.replaceChildren();
    const width = 280, top = 16, base = 108, slot = width / days.length;
    const most = Math.max(1, ...days.map((day) => day.tokens));
    chart.append(svg("line", { x1: 0, y1: base, x2: width, y2: base, class: "axis" }));
    days.forEach((day, i) => {
      const height = Math.round((day.tokens / most) * (base - top));
      const x = i * slot + slot * 0.15;
      const bar = svg("rect", {
        x: x.toFixed(1), y: base - height, width: (slot * 0.7).toFixed(1), height: height,
        class: i === days.length - 1 ? "bar today" : "bar", "data-tokens": day.tokens,
      });
      bar.append(svg("title", {}, day.date + ": " + day.tokens + " tokens, " + day.requests +
        " requests, " + money(day.cost_usd)));
      chart.append(bar);
      chart.append(svg("text", { x: (i * slot + slot / 2).toFixed(1), y: base + 14, class: "day" },
        day.date.slice(5)));
      if (day.tokens) {
        chart.append(svg("text", { x: (i * slot + slot / 2).toFixed(1), y: base - height - 4, class: "value" },
          String(day.tokens)));
      }
    });
  }

  async function refreshUsage() {
    const status = byId("usage-status");
    if (!currentKey()) return;
    let usage;
    try {
      const response = await api("usage");
      if (!response.ok) {
        const why = await httpError(response);
        if (response.status === 401 || response.status === 403) clearKeyView();
        status.textContent = why;
        status.className = "error";
        return;
      }
      usage = await response.json();
    } catch (error) {
      status.textContent = "Usage could not be read: " + (error && error.message);
      status.className = "error";
      return;
    }
    const facts = byId("usage-facts");
    facts.replaceChildren();
    const limits = usage.limits || {};
    const limitParts = [limitText(limits.requests_per_minute, "requests/min"),
      limitText(limits.tokens_per_minute, "tokens/min"), limitText(limits.tokens_per_day, "tokens/day")]
      .filter(Boolean);
    fact(facts, "Tenant", usage.tenant);
    fact(facts, "Key id", usage.key_id);
    fact(facts, "Limits", limitParts.length ? limitParts.join(" · ") : "none");
    const today = usage.today;
    fact(facts, "Today (UTC)", count(today.requests, "request") + " · " + count(today.tokens, "token") +
      " · " + money(today.cost_usd));
    drawChart(usage.days || []);
    status.textContent = "";
    status.className = "";
  }

  async function useKey() {
    const masked = currentKey().slice(0, 8) + "…";
    showKeyStatus("Checking key " + masked, false);
    try {
      if (await loadModels()) {
        showKeyStatus("Key " + masked + " in use for this tab.", false);
        if (document.activeElement === byId("api-key") || document.activeElement === byId("use-key")) {
          byId("prompt").focus(); // keyboard users go straight on to the message
        }
        await refreshUsage();
      }
    } catch (error) {
      showKeyStatus("The endpoint could not be reached: " + (error && error.message), true);
    }
  }

  // --- wiring -------------------------------------------------------------

  // The key in the field becomes the tab's key (the field is emptied: the key is not kept
  // in the page). Returns whether there was one.
  function adoptTypedKey() {
    const input = byId("api-key");
    const typed = input.value.trim();
    if (!typed) return false;
    sessionStorage.setItem(KEY_STORE, typed);
    input.value = "";
    clearKeyView();
    return true;
  }

  function start() {
    byId("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (adoptTypedKey()) useKey();
    });
    byId("forget-key").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      clearKeyView();
      showKeyStatus("Key forgotten.", false);
    });
    byId("chat-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const input = byId("prompt");
      const prompt = input.value;
      if (!prompt.trim() || state.controller || state.starting) return;
      if (!currentKey() && !byId("api-key").value.trim()) {
        showKeyStatus("Paste an API key first.", true);
        byId("api-key").focus();
        return;
      }
      let toolList;
      try {
        toolList = tools();
      } catch (error) {
        byId("tools-status").textContent = error.message;
        byId("tools").focus();
        return;
      }
      byId("tools-status").textContent = "";
      input.value = "";
      if (adoptTypedKey()) {
        // A key pasted but not confirmed with "Use key" is the one meant: check it (and load
        // its models) first; a refused key still gets its answer, the refusal, in the transcript.
        state.starting = true;
        setBusy(true);
        try {
          await useKey();
        } finally {
          state.starting = false;
          setBusy(false);
        }
      }
      send(prompt, toolList);
    });
    byId("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        byId("chat-form").requestSubmit();
      }
    });
    byId("stop").addEventListener("click", () => {
      if (state.controller) state.controller.abort();
    });
    byId("clear-chat").addEventListener("click", () => {
      state.history = [];
      byId("transcript").replaceChildren();
    });
    byId("refresh-usage").addEventListener("click", refreshUsage);
    if (currentKey()) useKey();
    else showKeyStatus("No key yet: paste one (make run prints a local key).", false);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
