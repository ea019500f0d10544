/* The live dashboard (ag2_logging): renders the snapshot the server sends, over a WebSocket
   (Django Channels, under ASGI) or by polling the JSON endpoint (WSGI, or when the WebSocket
   cannot connect). Text goes in with textContent only: nothing from the server is HTML. */
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function cell(row, text, cls, href) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    row.appendChild(td);
    return td;
  }

  function elapsed(seconds) {
    var h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
    var mm = (h ? String(m).padStart(2, "0") : String(m));
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  function number(n) { return Number(n).toLocaleString("en-US"); }

  function count(n, one, many) { return number(n) + " " + (n === 1 ? one : many); }

  function fill(tableId, rows, build) {
    var body = $(tableId).tBodies[0];
    var fresh = document.createElement("tbody");
    rows.forEach(function (item) {
      var tr = document.createElement("tr");
      build(tr, item);
      fresh.appendChild(tr);
    });
    body.parentNode.replaceChild(fresh, body);
  }

  function render(data) {
    $("ag2-live-running-count").textContent = number(data.running_count);
    $("ag2-live-today").textContent = data.today.cost_text;
    $("ag2-live-today-calls").textContent = count(data.today.calls, "call", "calls") + " · " + data.today.key;
    $("ag2-live-month").textContent = data.month.cost_text;
    $("ag2-live-month-calls").textContent = count(data.month.calls, "call", "calls") + " · " + data.month.key;
    var calls = 0, errors = 0, top = 1;
    data.per_minute.forEach(function (m) { calls += m.calls; errors += m.errors; top = Math.max(top, m.calls, m.errors); });
    $("ag2-live-hour-calls").textContent = number(calls);
    $("ag2-live-hour-errors").textContent = count(errors, "error", "errors");

    fill("ag2-live-running", data.running, function (tr, s) {
      tr.dataset.sessionId = s.session_id;
      cell(tr, s.enterprise_id || "—");
      cell(tr, s.workflow_name || "—");
      cell(tr, s.chat_id, null, s.url);
      cell(tr, elapsed(s.elapsed_seconds), "ag2-num");
      cell(tr, number(s.call_count), "ag2-num ag2-live-calls");
      cell(tr, number(s.error_count), "ag2-num");
      cell(tr, number(s.total_tokens), "ag2-num ag2-live-tokens");
      var cost = cell(tr, s.total_cost_text, "ag2-num ag2-live-cost");
      cost.dataset.cost = s.total_cost === null ? "" : s.total_cost;
    });
    $("ag2-live-running-empty").hidden = data.running.length > 0;

    fill("ag2-live-budgets", data.budgets, function (tr, b) {
      tr.dataset.budgetId = b.id;
      cell(tr, b.label, null, b.url);
      cell(tr, b.scope);
      cell(tr, b.period);
      cell(tr, b.spent_text, "ag2-num ag2-live-spent");
      cell(tr, b.limit_text, "ag2-num");
      var used = cell(tr, "");
      var meter = document.createElement("span");
      meter.className = "ag2-live-meter";
      var bar = document.createElement("span");
      var pct = b.percent === null ? 0 : b.percent;
      bar.style.width = Math.min(100, pct) + "%";
      if (pct >= 100) { bar.className = "ag2-over"; }
      meter.appendChild(bar);
      used.appendChild(meter);
      used.appendChild(document.createTextNode(b.percent === null ? " —" : " " + b.percent + "%"));
      cell(tr, b.today_text, "ag2-num");
      cell(tr, b.month_text, "ag2-num");
    });
    $("ag2-live-budgets-empty").hidden = data.budgets.length > 0;

    var chart = $("ag2-live-minutes");
    var bars = document.createDocumentFragment();
    data.per_minute.forEach(function (m) {
      var bar = document.createElement("div");
      bar.className = "ag2-bar";
      bar.style.height = (100 * m.calls / top) + "%";
      bar.title = m.minute + " UTC: " + m.calls + " calls, " + m.errors + " errors";
      if (m.errors) {
        var err = document.createElement("div");
        err.className = "ag2-err";
        err.style.height = (100 * m.errors / Math.max(m.calls, m.errors)) + "%";
        bar.appendChild(err);
      }
      bars.appendChild(bar);
    });
    chart.replaceChildren(bars);

    fill("ag2-live-calls", data.latest_calls, function (tr, c) {
      cell(tr, c.started_at ? c.started_at.replace("T", " ").slice(0, 19) : "—", null, c.url);
      cell(tr, c.enterprise_id || "—");
      cell(tr, c.workflow_name || "—");
      cell(tr, c.agent_name);
      cell(tr, c.model);
      cell(tr, number(c.total_tokens), "ag2-num");
      cell(tr, c.cost_text, "ag2-num");
      cell(tr, c.latency_ms === null ? "—" : number(Math.round(c.latency_ms)) + " ms", "ag2-num");
      cell(tr, c.status);
    });
    $("ag2-live-calls-empty").hidden = data.latest_calls.length > 0;

    var state = $("ag2-live-state");
    state.dataset.state = "live";
    state.textContent = "live";
    $("ag2-live-at").textContent = "updated " + data.at.replace("T", " ").slice(0, 19) + " UTC";
    document.body.dataset.ag2LiveUpdates = String(Number(document.body.dataset.ag2LiveUpdates || 0) + 1);
  }

  function stale(text) {
    var state = $("ag2-live-state");
    state.dataset.state = "stale";
    state.textContent = text;
  }

  function poll(config) {
    var busy = false;
    function once() {
      if (busy) { return; }
      busy = true;
      fetch(config.dataUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) {
          if (!r.ok) { throw new Error("HTTP " + r.status); }
          return r.json();
        })
        .then(render)
        .catch(function (err) { stale("not updating (" + err.message + ")"); })
        .then(function () { busy = false; });
    }
    once();
    return window.setInterval(once, Math.max(0.2, config.seconds) * 1000);
  }

  function fallBackToPolling(config, why) {
    var label = $("ag2-live-transport");
    label.dataset.transport = "polling";
    label.textContent = "Updates by polling every " + config.seconds + " s (" + why + ")";
    poll(config);
  }

  function socket(config) {
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var opened = false;
    var ws;
    try {
      ws = new WebSocket(scheme + window.location.host + config.websocketPath);
    } catch (err) {
      fallBackToPolling(config, "the WebSocket could not open");
      return;
    }
    ws.onopen = function () { opened = true; };
    ws.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "snapshot") { render(message.data); }
    };
    ws.onclose = function (event) {
      if (!opened) {
        fallBackToPolling(config, event.code === 4403 ? "the WebSocket refused this user" : "the WebSocket could not connect");
        return;
      }
      stale("disconnected; reconnecting…");
      window.setTimeout(function () { socket(config); }, 2000);
    };
  }

  function start() {
    var root = document.querySelector(".ag2-live");
    if (!root) { return; }
    var config = JSON.parse(root.dataset.config);
    if (config.transport === "websocket" && "WebSocket" in window) {
      socket(config);
    } else {
      poll(config);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
