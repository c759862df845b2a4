/*
 * The wallboard: a supervisor's queues, live, on pbxis.js.
 *
 * The stream carries absolute state (queueStats, queueMember, queueCallers); pbxis.js's
 * supervisor reducer files it per queue and this script only renders `client.state`.
 * Wait and status timers run here, once a second, from the `since` times in the events,
 * corrected by the offset between this browser's clock and the server's.
 *
 * URL: /wallboard?token=...[&transport=sse|websocket|long-poll]
 *      /wallboard?queues=sales,support[&supervisor=name]  (open API only: registers itself)
 *      [&waitAmber=30&waitRed=60&slAmber=80&slRed=60]  (override [supervisors] thresholds)
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("pbxis-config").textContent || "{}");
  var params = new URLSearchParams(window.location.search);
  var thresholds = config.thresholds || { defaults: {}, queues: {} };
  var OVERRIDES = ["waitAmber", "waitRed", "slAmber", "slRed"];
  // Server clock minus ours, in ms: no event is stamped in the server's future, so the
  // largest (event time - our time at arrival) is the best estimate (replays are older).
  var skew = null;
  var client = null;
  var sections = {};
  var announced = {};

  function $(id) { return document.getElementById(id); }

  function limits(queue) {
    var out = {};
    var base = thresholds.defaults || {};
    var mine = (thresholds.queues || {})[queue] || {};
    OVERRIDES.forEach(function (k) {
      var given = params.get(k);
      var v = given !== null && given !== "" && isFinite(Number(given)) ? Number(given) : (k in mine ? mine[k] : base[k]);
      out[k] = v;
    });
    return out;
  }

  function clock(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var mm = (h && m < 10 ? "0" : "") + m;
    return (h ? h + ":" : "") + mm + ":" + (s < 10 ? "0" : "") + s;
  }

  function now() { return Date.now() + (skew || 0); }

  function waitLevel(seconds, lim) {
    if (seconds >= lim.waitRed) return "red";
    if (seconds >= lim.waitAmber) return "amber";
    return "ok";
  }

  function slLevel(stats, lim) {
    if (!stats || !stats.completed) return "ok";
    if (stats.serviceLevelPerf <= lim.slRed) return "red";
    if (stats.serviceLevelPerf <= lim.slAmber) return "amber";
    return "ok";
  }

  var RANK = { ok: 0, amber: 1, red: 2 };
  function worst(a, b) { return RANK[b] > RANK[a] ? b : a; }

  function memberClass(m) {
    if (m.paused) return "paused";
    if (m.status === "unavailable" || m.status === "invalid") return "unavailable";
    if (m.status === "ringing" || m.status === "ringinuse") return "ringing";
    if (m.inCall || m.status === "inuse" || m.status === "busy" || m.status === "onhold") return "in-call";
    return "available";
  }

  var LABELS = {
    paused: "Paused", unavailable: "Unavailable", ringing: "Ringing", "in-call": "On a call", available: "Available",
  };

  function section(name) {
    if (sections[name]) return sections[name];
    var node = $("queue-template").content.firstElementChild.cloneNode(true);
    var title = node.querySelector(".queue-name");
    title.textContent = name;
    title.id = "queue-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
    node.setAttribute("aria-labelledby", title.id);
    node.dataset.queue = name;
    $("queues").appendChild(node);
    sections[name] = node;
    return node;
  }

  function setStat(node, key, text) {
    node.querySelectorAll('[data-stat="' + key + '"]').forEach(function (el) {
      if (el.textContent !== text) el.textContent = text;
    });
  }

  function announce(name, q) {
    var n = q.callers.length;
    if (announced[name] !== undefined && announced[name] !== n) {
      var live = $("announce");
      if (live) live.textContent = name + ": " + n + (n === 1 ? " caller" : " callers") + " waiting";
    }
    announced[name] = n;
  }

  function renderQueue(name, q) {
    var node = section(name);
    var lim = limits(name);
    var st = q.stats;
    if (st) {
      setStat(node, "waiting", String(q.callers.length));
      setStat(node, "completed", String(st.completed));
      setStat(node, "abandoned", String(st.abandoned));
      setStat(node, "serviceLevelPerf", st.completed ? Math.round(st.serviceLevelPerf) + "%" : "–");
      setStat(node, "serviceLevel", "(" + st.serviceLevel + " s)");
      setStat(node, "holdTime", clock(st.holdTime));
      setStat(node, "talkTime", clock(st.talkTime));
      setStat(node, "available", String(st.members.available));
      setStat(node, "loggedIn", String(st.members.loggedIn));
    }
    node.querySelector('[data-tile="sl"]').dataset.level = slLevel(st, lim);
    announce(name, q);

    var list = node.querySelector(".callers");
    list.textContent = "";
    if (!q.callers.length) {
      var none = document.createElement("li");
      none.className = "empty";
      none.textContent = "No one waiting";
      list.appendChild(none);
    }
    q.callers.forEach(function (c) {
      var li = document.createElement("li");
      li.dataset.since = String(c.since);
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = c.position + ". " + (c.name ? c.name + " " : "") + (c.number || "unknown number");
      var timer = document.createElement("span");
      timer.className = "timer";
      timer.setAttribute("role", "timer");
      li.appendChild(who);
      li.appendChild(timer);
      list.appendChild(li);
    });

    var members = node.querySelector(".members");
    members.textContent = "";
    var keys = Object.keys(q.members).sort();
    if (!keys.length) {
      var nobody = document.createElement("li");
      nobody.className = "empty";
      nobody.textContent = "No member logged in";
      members.appendChild(nobody);
    }
    keys.forEach(function (k) {
      var m = q.members[k];
      var cls = memberClass(m);
      var li = document.createElement("li");
      li.dataset.status = cls;
      li.dataset.since = String(m.since);
      var dot = document.createElement("span");
      dot.className = "dot";
      dot.setAttribute("aria-hidden", "true");
      var who = document.createElement("span");
      who.className = "who";
      // "Alice 1001"; a name that already says the extension ("Agent 1001") is shown alone.
      who.textContent = m.name || m.agent;
      if (m.name && m.name.indexOf(m.agent) < 0) {
        var ext = document.createElement("span");
        ext.className = "agent";
        ext.textContent = m.agent;
        who.appendChild(ext);
      }
      var state = document.createElement("span");
      state.className = "state";
      state.textContent = LABELS[cls] + (m.paused && m.pausedReason ? " (" + m.pausedReason + ")" : "");
      var timer = document.createElement("span");
      timer.className = "timer";
      li.appendChild(dot);
      li.appendChild(who);
      li.appendChild(state);
      li.appendChild(timer);
      members.appendChild(li);
    });
    tickQueue(name, node);
  }

  /** The once-a-second part: timers, the longest wait and the colours that follow it. */
  function tickQueue(name, node) {
    var lim = limits(name);
    var t = now();
    var longest = 0;
    node.querySelectorAll(".callers li[data-since]").forEach(function (li) {
      var waited = (t - Number(li.dataset.since)) / 1000;
      longest = Math.max(longest, waited);
      li.dataset.level = waitLevel(waited, lim);
      li.querySelector(".timer").textContent = clock(waited);
    });
    node.querySelectorAll(".members li[data-since]").forEach(function (li) {
      li.querySelector(".timer").textContent = clock((t - Number(li.dataset.since)) / 1000);
    });
    setStat(node, "longestWait", clock(longest));
    var wl = waitLevel(longest, lim);
    node.querySelector('[data-tile="wait"]').dataset.level = wl;
    node.querySelector('[data-tile="waiting"]').dataset.level = node.querySelectorAll(".callers li[data-since]").length ? wl : "ok";
    node.dataset.level = worst(wl, node.querySelector('[data-tile="sl"]').dataset.level || "ok");
  }

  function render(state) {
    Object.keys(state.queues).sort().forEach(function (name) { renderQueue(name, state.queues[name]); });
  }

  function tick() {
    $("clock").textContent = new Date(now()).toLocaleTimeString();
    Object.keys(sections).forEach(function (name) { tickQueue(name, sections[name]); });
  }

  function link(stateName, text) {
    $("link").dataset.state = stateName;
    $("link-text").textContent = text;
  }

  function notice(text) {
    var n = $("notice");
    n.hidden = !text;
    n.textContent = text || "";
  }

  function start() {
    var token = params.get("token") || "";
    var live = document.createElement("div");
    live.id = "announce";
    live.className = "sr-only";
    live.setAttribute("aria-live", "polite");
    live.style.position = "absolute";
    live.style.left = "-10000px";
    document.body.appendChild(live);
    var queues = (params.get("queues") || "").split(",").filter(Boolean);
    if (token) {
      watch(token);
    } else if (queues.length) {
      register(queues).then(watch, function (err) {
        link("failed", "Not registered");
        notice(err.message);
      });
    } else {
      link("failed", "No token");
      notice("Open this page with ?token=<the supervisor's stream token> (PUT /supervisors/{name} returns it), " +
        "or, with an open API (the demo), with ?queues=sales,support.");
    }
    tick();
    setInterval(tick, 1000);
  }

  /** With an open API (the demo) the page registers its supervisor itself, as the agent page does. */
  function register(queues) {
    var name = params.get("supervisor") || "wallboard";
    return fetch("supervisors/" + encodeURIComponent(name), {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ queues: queues }),
    }).then(function (resp) {
      return resp.json().then(function (body) {
        if (resp.ok) return body.token;
        if (resp.status === 401) {
          throw new Error("pbxis requires an API key to register supervisors: open this page from the CRM with ?token=…");
        }
        throw new Error("Could not register the wallboard: " + ((body.error && body.error.message) || resp.status));
      });
    });
  }

  function watch(token) {
    var base = new URL("stream/" + encodeURIComponent(token) + "/sse", window.location.href);
    client = window.Pbxis.connect(String(base), {
      supervisor: true,
      transport: params.get("transport") || "websocket",
    });
    client.on("event", function (ev) {
      if (typeof ev.time === "number") {
        var seen = ev.time - Date.now();
        if (skew === null || seen > skew) skew = seen;
      }
      if (ev.supervisor && !$("who").textContent) $("who").textContent = ev.supervisor;
    });
    client.on("state", function (state) {
      render(state);
      if (state.pbxConnected === false) link("pbx-down", "PBX unreachable");
      else if (client.connection === "connected") link("connected", "Live");
    });
    client.on("status", function (s) {
      if (s.connection === "connected") { notice(""); link(client.state.pbxConnected === false ? "pbx-down" : "connected", client.state.pbxConnected === false ? "PBX unreachable" : "Live"); }
      else if (s.connection === "reconnecting") link("reconnecting", "Reconnecting…");
      else if (s.connection === "failed") { link("failed", "Not found"); notice("This wallboard's token is unknown or expired: ask for a new one."); }
      else if (s.connection === "closed") { link("closed", "Ended"); notice("The supervisor registration ended."); }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
