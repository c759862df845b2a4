/*
 * The agent page: gets a stream token, connects with pbxis.js and renders client.state.
 *
 * Everything shown comes from the reducer's state, so the page looks the same whichever
 * transport brought the events. All text is set with textContent: nothing from the
 * stream or the URL is ever parsed as HTML.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("pbxis-config").textContent);
  var agent = config.agent;
  var tech = config.tech;
  // The page lives at {base}client/{tech}/{agent}: everything else is relative to {base},
  // which keeps the page working behind a reverse proxy that adds a path prefix.
  var base = new URL("../../", window.location.href);
  var storageKey = "pbxis.token." + agent;

  var EXTENSION_LABELS = {
    unknown: "Unknown", not_inuse: "Available", inuse: "On a call", busy: "Busy", unavailable: "Offline",
    ringing: "Ringing", ringinuse: "Ringing (on a call)", onhold: "On hold", invalid: "Invalid",
  };
  var MEMBER_LABELS = {
    unknown: "Unknown", not_inuse: "Available", inuse: "On a call", busy: "Busy", invalid: "Invalid",
    unavailable: "Unavailable", ringing: "Ringing", ringinuse: "Ringing", onhold: "On hold",
  };
  var REASON_LABELS = { caller: "caller", agent: "agent", transfer: "transfer" };
  var FAILURE_LABELS = {
    busy: "busy", no_answer: "no answer", congestion: "congestion", failed: "failed", cancelled: "cancelled",
  };
  var TRANSPORT_LABELS = { websocket: "WebSocket", sse: "Server-Sent Events", "long-poll": "long-poll" };

  var $ = function (id) { return document.getElementById(id); };
  var client = null;
  var api = null;
  var selfRegistered = false;
  var seen = []; // every delivered event id, for tests and for the curious
  var skew = 0; // local clock minus pbxis's clock, so call timers do not depend on the PC's clock
  var recent = []; // the latest events, newest first

  // ------------------------------------------------------------------ DOM helpers

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") node.textContent = attrs[k];
      else if (k === "className") node.className = attrs[k];
      else if (k.indexOf("on") === 0) node.addEventListener(k.slice(2), attrs[k]);
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c) node.appendChild(c); });
    return node;
  }

  function replaceChildren(parent, nodes) {
    while (parent.firstChild) parent.removeChild(parent.firstChild);
    nodes.forEach(function (n) { parent.appendChild(n); });
  }

  function statusBadge(status, label) {
    return el("span", { className: "status", "data-status": status }, [
      el("span", { className: "icon", "aria-hidden": "true" }), el("span", { className: "label", text: label }),
    ]);
  }

  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds || 0));
    var m = Math.floor(seconds / 60);
    var s = seconds % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function clock(ms) {
    return ms ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "";
  }

  var toastTimer = null;
  function toast(text, kind) {
    var t = $("toast");
    t.textContent = text;
    t.setAttribute("data-kind", kind || "info");
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { t.hidden = true; }, kind === "error" ? 6000 : 2500);
  }

  function notice(text, kind) {
    var n = $("notice");
    n.textContent = text || "";
    n.setAttribute("data-kind", kind || "info");
    n.hidden = !text;
  }

  // ------------------------------------------------------------------ rendering

  function renderLink() {
    var state = client ? client.state : null;
    var connection = client ? client.connection : "connecting";
    var pill = $("link");
    var key = connection;
    var text = {
      connecting: "Connecting…", connected: "Connected", reconnecting: "Reconnecting…",
      closed: "Stream ended", failed: "Not connected",
    }[connection] || connection;
    if (connection === "connected" && state && state.pbxConnected === false) {
      key = "pbx-down";
      text = "PBX link down";
    }
    pill.setAttribute("data-state", key);
    $("link-text").textContent = text;
    $("transport").textContent = client ? TRANSPORT_LABELS[client.transport] || client.transport : "";
    $("last-id").textContent = client && client.lastId ? String(client.lastId) : "–";
  }

  function renderExtension(state) {
    var ext = $("extension");
    ext.setAttribute("data-status", state.extension.status);
    ext.querySelector(".label").textContent = EXTENSION_LABELS[state.extension.status] || state.extension.status;
  }

  function callPhase(state) {
    if (!state.call) return "none";
    return state.call.answered ? "talking" : "ringing";
  }

  function renderCall(state) {
    var call = state.call;
    var phase = callPhase(state);
    $("call").setAttribute("data-phase", phase);
    $("no-call").hidden = !!call;
    $("call-info").hidden = !call;
    if (!call) return;
    $("call-direction").textContent = call.direction === "out" ? "↗ Outgoing" : "↙ Incoming";
    $("call-phase").textContent = phase === "talking" ? "In progress" : "Ringing";
    $("call-number").textContent = call.number;
    $("call-name").textContent = call.name || "";
    $("call-queue").textContent = call.queue ? "Queue " + call.queue : "";
    var toggle = $("recording-toggle");
    toggle.textContent = call.recordingPaused ? "Resume recording" : "Pause recording";
    toggle.setAttribute("aria-pressed", call.recordingPaused ? "true" : "false");
    $("recording-state").textContent = call.recordingPaused ? "Recording paused" : "";
    renderTimer();
  }

  function renderTimer() {
    var call = client && client.state.call;
    if (!call) { $("call-timer").textContent = ""; return; }
    var from = call.answered || call.start;
    $("call-timer").textContent = from ? duration((Date.now() - skew - from) / 1000) : "";
  }

  function queueRow(q) {
    var member;
    if (!q.loggedIn) member = statusBadge("loggedout", "Logged out");
    else if (q.paused) member = statusBadge("paused", "Paused");
    else member = statusBadge("not_inuse", "Logged in");
    if (q.loggedIn && q.paused && q.pausedReason) {
      member.appendChild(el("span", { className: "reason", text: " (" + q.pausedReason + ")" }));
    }
    var actions = [];
    if (q.loggedIn) {
      if (q.paused) actions.push(button("Unpause", function () { return api.unpause(q.name); }));
      else actions.push(button("Pause", function () { return api.pause(q.name, $("pause-reason").value.trim()); }));
      actions.push(button("Log off", function () { return api.logoff(q.name); }));
    } else {
      actions.push(button("Log in", function () { return api.login(q.name); }));
    }
    var count = q.count || 0;
    return el("tr", { "data-queue": q.name }, [
      el("td", { text: q.name }),
      el("td", { className: "member" }, [member]),
      el("td", {}, [q.loggedIn ? statusBadge(q.status, MEMBER_LABELS[q.status] || q.status)
        : el("span", { className: "muted", text: "–" })]),
      el("td", {}, [el("span", { className: "count" + (count > 0 ? " waiting" : ""), text: String(count),
        title: count + " caller(s) waiting" })]),
      el("td", { className: "actions" }, actions),
    ]);
  }

  function renderQueues(state) {
    var names = Object.keys(state.queues).sort();
    if (!names.length) return;
    replaceChildren($("queues"), names.map(function (n) { return queueRow(state.queues[n]); }));
  }

  function renderCompleted(state) {
    if (!state.completed.length) return;
    replaceChildren($("completed"), state.completed.map(function (c) {
      var who = c.number ? c.number + (c.name ? " · " + c.name : "") : "–";
      return el("tr", { "data-unique-id": c.uniqueId || "" }, [
        el("td", { text: clock(c.time) }),
        el("td", { className: "caller", text: who }),
        el("td", { text: c.queue || "–" }),
        el("td", { className: "talk", text: duration(c.talkTime) }),
        el("td", { className: "hold", text: duration(c.holdTime) }),
        el("td", { text: REASON_LABELS[c.reason] || c.reason || "" }),
        el("td", { className: "recording", text: c.recording || "–", title: c.recording || "no recording" }),
      ]);
    }));
  }

  function renderFailures(state) {
    if (!state.failures.length) return;
    replaceChildren($("failures"), state.failures.map(function (f) {
      return el("li", {}, [
        el("span", { text: clock(f.time) + " " + (f.transfer ? "transfer to " : "") }),
        el("strong", { text: f.number + " " }),
        el("span", { className: "why", text: FAILURE_LABELS[f.reason] || f.reason }),
      ]);
    }));
  }

  function summary(ev) {
    switch (ev.type) {
      case "extensionStatus": return ev.status;
      case "queueMemberStatus":
        return ev.queue + ": " + (ev.loggedIn ? ev.status : "logged out") + (ev.paused ? ", paused " + (ev.pausedReason || "") : "");
      case "queueCount": return ev.queue + ": " + ev.count + " waiting";
      case "phoneNumber": return ev.number === null ? "call ended" : ev.direction + " " + ev.number + (ev.name ? " " + ev.name : "");
      case "agentComplete": return ev.queue + " talk " + ev.talkTime + "s hold " + ev.holdTime + "s";
      case "originateFailed": return ev.number + " " + ev.reason;
      case "transferFailed": return "transfer to " + ev.to + " " + ev.reason;
      case "recordingStatus": return ev.paused ? "recording paused" : "recording";
      case "pbxStatus": return ev.connected ? "PBX connected" : "PBX link down";
      case "closed": return ev.reason || "";
      default: return "";
    }
  }

  function renderEvents() {
    replaceChildren($("events"), recent.map(function (ev) {
      return el("li", {}, [
        el("span", { className: "id", text: String(ev.id) }),
        el("span", { className: "type", text: ev.type }),
        el("span", { text: summary(ev) }),
      ]);
    }));
  }

  function render() {
    renderLink();
    if (!client) return;
    var state = client.state;
    renderExtension(state);
    renderCall(state);
    renderQueues(state);
    renderCompleted(state);
    renderFailures(state);
    renderEvents();
  }

  // ------------------------------------------------------------------ commands

  function button(label, action) {
    var b = el("button", { type: "button", text: label });
    b.addEventListener("click", function () {
      b.disabled = true;
      Promise.resolve().then(action).then(
        function () { b.disabled = false; toast(label + ": done"); },
        function (e) { b.disabled = false; toast(label + " failed: " + e.message, "error"); }
      );
    });
    return b;
  }

  $("dial-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var input = $("dial-number");
    var number = input.value.replace(/[\s\-()./]/g, "");
    if (!api) return;
    api.originate(number).then(
      function () { toast("Calling " + number + ": your phone rings first"); input.value = ""; },
      function (err) { toast("Call failed: " + err.message, "error"); }
    );
  });

  // Call control: each acts on the call pbxis knows the agent is on (409 no_call otherwise).
  function command(label, action, done) {
    if (!api) return;
    action().then(
      function (result) { toast(label + ": done"); if (done) done(result); },
      function (err) { toast(label + " failed: " + err.message, "error"); }
    );
  }

  $("hangup").addEventListener("click", function () {
    command("Hang up", function () { return api.hangup(); });
  });
  $("recording-toggle").addEventListener("click", function () {
    var paused = client && client.state.call && client.state.call.recordingPaused;
    command(paused ? "Resume recording" : "Pause recording", function () {
      return paused ? api.resumeRecording() : api.pauseRecording();
    });
  });
  $("transfer-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var to = $("transfer-to").value.replace(/[\s\-()./]/g, "");
    var mode = $("transfer-mode").value;
    command("Transfer to " + to, function () { return api.transfer(to, mode); }, function () {
      $("transfer-to").value = "";
      $("transfer-cancel").hidden = mode !== "attended";
    });
  });
  $("transfer-cancel").addEventListener("click", function () {
    command("Cancel transfer", function () { return api.cancelTransfer(); }, function () {
      $("transfer-cancel").hidden = true;
    });
  });

  // ------------------------------------------------------------------ token and stream

  function takeTokenFromUrl() {
    var url = new URL(window.location.href);
    var token = url.searchParams.get("token");
    if (!token) return null;
    remember(token, false);
    // Keep the token out of the address bar, bookmarks and screenshots; the tab keeps it.
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
    return token;
  }

  function remember(token, self) {
    try {
      if (token) sessionStorage.setItem(storageKey, JSON.stringify({ token: token, self: self }));
      else sessionStorage.removeItem(storageKey);
    } catch (e) { /* private mode: the token lives in memory only */ }
  }

  function storedToken() {
    try {
      var saved = JSON.parse(sessionStorage.getItem(storageKey) || "null");
      if (!saved || typeof saved.token !== "string") return null;
      selfRegistered = !!saved.self;
      return saved.token;
    } catch (e) { return null; }
  }

  function queueNames(doc) {
    // GET /queues: accept a list of names or objects, or an object keyed by queue name.
    if (doc && !Array.isArray(doc) && doc.queues) doc = doc.queues;
    if (Array.isArray(doc)) {
      return doc.map(function (q) { return typeof q === "string" ? q : q && (q.name || q.queue); })
        .filter(function (n) { return typeof n === "string"; });
    }
    return doc && typeof doc === "object" ? Object.keys(doc) : [];
  }

  function wantedQueues(open) {
    var param = new URL(window.location.href).searchParams.get("queues");
    if (param) return Promise.resolve(param.split(",").map(function (q) { return q.trim(); }).filter(Boolean));
    return open.request("GET", "queues").then(queueNames, function () { return []; }).then(function (names) {
      return names.length ? names : ["sales", "support"];
    });
  }

  function register() {
    var open = new Pbxis.Api(base, agent, null);
    return wantedQueues(open).then(function (queues) {
      return open.request("PUT", "agents/" + encodeURIComponent(agent), { queues: queues });
    }).then(function (reg) {
      selfRegistered = true;
      remember(reg.token, true);
      return reg.token;
    }, function (err) {
      if (err.status === 401 || err.status === 403) {
        throw new Error("This page needs a stream token: open it from your CRM (…?token=…). " +
          "pbxis requires an API key to register agents, so the page cannot register itself.");
      }
      throw new Error("Could not register agent " + agent + ": " + err.message);
    });
  }

  function start(token) {
    api = new Pbxis.Api(base, agent, token);
    var tokenPath = "stream/" + encodeURIComponent(token) + "/";
    var streams = {
      sse: String(new URL(tokenPath + "sse", base)),
      longPoll: String(new URL(tokenPath + "poll", base)),
      websocket: String(new URL(tokenPath + "ws", base)),
    };
    client = Pbxis.connect(streams, { transport: tech });
    window.pbxisPage.client = client;
    client.on("event", function (ev) {
      seen.push(ev.id);
      if (typeof ev.time === "number") skew = Date.now() - ev.time;
      recent.unshift(ev);
      if (recent.length > 12) recent.pop();
    });
    client.on("state", render);
    client.on("status", function (status) {
      render();
      if (status.connection === "connected") notice("");
      else if (status.connection === "closed" && status.error) notice("The stream ended: " + status.error + ".", "info");
      else if (status.connection === "failed") recover(status.error);
    });
    render();
  }

  function recover(error) {
    remember(null);
    if (selfRegistered) {
      // Our registration expired while the page was away: register again, once.
      selfRegistered = false;
      notice("Registering again…");
      register().then(start, fail);
    } else {
      fail(new Error("The stream token was refused (" + (error || "unknown token") +
        "). Reopen this page from your CRM to get a fresh one."));
    }
  }

  function fail(err) {
    notice(err.message, "error");
    $("link").setAttribute("data-state", "failed");
    $("link-text").textContent = "Not connected";
  }

  $("agent").textContent = agent;
  document.title = "pbxis · agent " + agent;
  window.pbxisPage = { agent: agent, tech: tech, seen: seen, client: null };
  setInterval(renderTimer, 1000);

  var token = takeTokenFromUrl() || storedToken();
  (token ? Promise.resolve(token) : register()).then(start, fail);
  window.addEventListener("pagehide", function () { if (client) client.close(); });
  // Back from the back-forward cache with a closed stream: start over (resuming is the server's job).
  window.addEventListener("pageshow", function (e) { if (e.persisted) window.location.reload(); });
})();
