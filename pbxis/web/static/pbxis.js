/*
 * pbxis.js: one agent's live call-center stream in the browser.
 *
 * The plan: a transport (WebSocket, Server-Sent Events or long-poll) only moves event
 * JSON; the Client numbers nothing itself but remembers the last event id it delivered,
 * drops anything at or below it (a replay after reconnecting may overlap) and reconnects
 * with it, so callbacks see every event exactly once. A pure reducer turns the events
 * into the agent's current state, so a page only renders `client.state`.
 *
 * Usable as a plain <script> (global `Pbxis`) and, through pbxis.mjs, as an ES module.
 * No dependencies, no build step. Documented in docs/pbxis-js.rst.
 */
(function (root) {
  "use strict";

  var VERSION = "1.0";
  var TRANSPORTS = ["websocket", "sse", "long-poll"];
  var EVENT_TYPES = [
    "queueMemberStatus", "queueCount", "extensionStatus", "phoneNumber", "agentComplete",
    "originateFailed", "transferFailed", "recordingStatus", "pbxStatus", "closed", "reset",
    "queueStats", "queueMember", "queueCallers",
  ];
  var MAX_COMPLETED = 20;
  var MAX_FAILURES = 10;
  var MAX_PARTIES = 50;

  // ---------------------------------------------------------------- the reducer

  /** The state before any event: nothing known yet. */
  function initialState() {
    return {
      lastId: 0,
      lastTime: null,
      pbxConnected: null, // null until the first pbxStatus: no news is a working link
      extension: { status: "unknown", since: null },
      queues: {},
      call: null,
      completed: [],
      failures: [],
      parties: {}, // uniqueId -> the remote party, to name completed calls
      closed: null,
    };
  }

  function copy(obj, changes) {
    var out = {};
    var k;
    for (k in obj) if (Object.prototype.hasOwnProperty.call(obj, k)) out[k] = obj[k];
    for (k in changes) if (Object.prototype.hasOwnProperty.call(changes, k)) out[k] = changes[k];
    return out;
  }

  function queueEntry(queues, name) {
    return queues[name] || {
      name: name, loggedIn: false, status: "unknown", paused: false, pausedReason: "", count: 0,
    };
  }

  function withQueue(state, name, changes) {
    var queues = copy(state.queues, {});
    queues[name] = copy(queueEntry(state.queues, name), changes);
    return queues;
  }

  function rememberParty(parties, ev) {
    var keys = Object.keys(parties);
    var out = {};
    // Insertion order is age: keep the newest MAX_PARTIES - 1 and add this one.
    keys.slice(Math.max(0, keys.length - MAX_PARTIES + 1)).forEach(function (k) { out[k] = parties[k]; });
    out[ev.uniqueId] = { number: ev.number, name: ev.name || "", direction: ev.direction, queue: ev.queue };
    return out;
  }

  var TALKING = { inuse: true, busy: true, onhold: true, ringinuse: true };

  /**
   * The state after one event; never mutates `state`. Unknown event types only move
   * `lastId`, so a newer server can add types without breaking older pages.
   */
  function reduce(state, ev) {
    var s = copy(state, { lastId: ev.id || state.lastId, lastTime: ev.time || state.lastTime });
    switch (ev.type) {
      case "extensionStatus": {
        s.extension = { status: ev.status, since: ev.time };
        if (s.call && !s.call.answered && TALKING[ev.status] && ev.status !== "ringinuse") {
          s.call = copy(s.call, { answered: ev.time });
        }
        break;
      }
      case "queueMemberStatus":
        s.queues = withQueue(s, ev.queue, {
          loggedIn: !!ev.loggedIn, status: ev.status, paused: !!ev.paused,
          pausedReason: ev.pausedReason || "", since: ev.time,
        });
        break;
      case "queueCount":
        s.queues = withQueue(s, ev.queue, { count: ev.count });
        break;
      case "phoneNumber":
        if (ev.number === null || ev.number === undefined) {
          s.call = null;
        } else {
          var same = s.call && s.call.uniqueId === ev.uniqueId;
          s.call = {
            number: ev.number, name: ev.name || "", direction: ev.direction, uniqueId: ev.uniqueId,
            queue: ev.queue || null, start: same ? s.call.start : ev.time,
            answered: same ? s.call.answered : (TALKING[s.extension.status] && s.extension.status !== "ringinuse"
              ? ev.time : null),
            recordingPaused: same ? !!s.call.recordingPaused : false,
          };
          s.parties = rememberParty(s.parties, ev);
        }
        break;
      case "agentComplete": {
        var party = s.parties[ev.uniqueId] || (s.call && s.call.queue === ev.queue ? s.call : null) || {};
        var done = {
          id: ev.id, time: ev.time, uniqueId: ev.uniqueId, queue: ev.queue, talkTime: ev.talkTime,
          holdTime: ev.holdTime, recording: ev.recording || null, reason: ev.reason,
          number: party.number || null, name: party.name || "", direction: party.direction || "in",
        };
        s.completed = [done].concat(s.completed).slice(0, MAX_COMPLETED);
        break;
      }
      case "originateFailed":
        s.failures = [{ id: ev.id, time: ev.time, actionId: ev.actionId, number: ev.number, reason: ev.reason }]
          .concat(s.failures).slice(0, MAX_FAILURES);
        break;
      case "transferFailed":
        s.failures = [{ id: ev.id, time: ev.time, actionId: ev.actionId, number: ev.to, reason: ev.reason,
          transfer: true }].concat(s.failures).slice(0, MAX_FAILURES);
        break;
      case "recordingStatus":
        if (s.call && s.call.uniqueId === ev.uniqueId) {
          s.call = copy(s.call, { recordingPaused: !!ev.paused, recording: ev.recording || null });
        }
        break;
      case "pbxStatus":
        s.pbxConnected = !!ev.connected;
        break;
      case "closed":
        s.closed = ev.reason || "closed";
        break;
      case "reset": {
        // A snapshot follows: forget the live state, keep the history the snapshot cannot repeat.
        var fresh = initialState();
        fresh.lastId = s.lastId;
        fresh.lastTime = s.lastTime;
        fresh.completed = s.completed;
        fresh.failures = s.failures;
        fresh.parties = s.parties;
        fresh.pbxConnected = s.pbxConnected;
        s = fresh;
        break;
      }
      default:
        break;
    }
    return s;
  }

  // ---------------------------------------------------------------- the supervisor reducer
  //
  // A supervisor's stream carries whole queues (queueStats, queueMember, queueCallers),
  // always as absolute state: the reducer only files each event under its queue.

  /** A supervisor's state before any event. */
  function initialBoard() {
    return { lastId: 0, lastTime: null, pbxConnected: null, queues: {}, closed: null };
  }

  function boardQueue(queues, name) {
    return queues[name] || { name: name, stats: null, callers: [], members: {} };
  }

  function withBoardQueue(state, name, changes) {
    var queues = copy(state.queues, {});
    queues[name] = copy(boardQueue(state.queues, name), changes);
    return queues;
  }

  /** The supervisor state after one event; never mutates `state`. */
  function reduceBoard(state, ev) {
    var s = copy(state, { lastId: ev.id || state.lastId, lastTime: ev.time || state.lastTime });
    switch (ev.type) {
      case "queueStats":
        s.queues = withBoardQueue(s, ev.queue, { stats: ev });
        break;
      case "queueCallers":
        s.queues = withBoardQueue(s, ev.queue, { callers: ev.callers || [] });
        break;
      case "queueMember": {
        var members = copy(boardQueue(s.queues, ev.queue).members, {});
        var key = ev.interface || ev.agent;
        if (ev.loggedIn) members[key] = ev; else delete members[key];
        s.queues = withBoardQueue(s, ev.queue, { members: members });
        break;
      }
      case "pbxStatus":
        s.pbxConnected = !!ev.connected;
        break;
      case "closed":
        s.closed = ev.reason || "closed";
        break;
      case "reset": {
        var fresh = initialBoard();
        fresh.lastId = s.lastId;
        fresh.lastTime = s.lastTime;
        fresh.pbxConnected = s.pbxConnected;
        s = fresh;
        break;
      }
      default:
        break;
    }
    return s;
  }

  // ---------------------------------------------------------------- URLs

  function absolute(url) {
    var base = root.location ? root.location.href : undefined;
    return new URL(url, base);
  }

  /**
   * The three stream URLs of one token, from the `streams` object of `PUT /agents/{agent}`
   * or from any one of them (`.../stream/{token}/sse`, `/poll` or `/ws`).
   */
  function streamUrls(source) {
    if (source && typeof source === "object" && !(source instanceof URL)) {
      var known = source.sse || source.longPoll || source.websocket;
      if (!known) throw new TypeError("streams must have sse, longPoll or websocket");
      var derived = streamUrls(known);
      return {
        sse: source.sse ? String(absolute(source.sse)) : derived.sse,
        longPoll: source.longPoll ? String(absolute(source.longPoll)) : derived.longPoll,
        websocket: source.websocket ? String(absolute(source.websocket)) : derived.websocket,
      };
    }
    var url = absolute(String(source));
    url.search = "";
    url.hash = "";
    var m = /^(.*\/)(sse|poll|ws)\/?$/.exec(url.pathname);
    if (!m) throw new TypeError("not a pbxis stream URL (…/stream/{token}/sse, /poll or /ws): " + url.pathname);
    var http = url.protocol === "ws:" ? "http:" : url.protocol === "wss:" ? "https:" : url.protocol;
    var ws = http === "https:" ? "wss:" : "ws:";
    function at(proto, leaf) {
      var u = new URL(url.href);
      u.protocol = proto;
      u.pathname = m[1] + leaf;
      return String(u);
    }
    return { sse: at(http, "sse"), longPoll: at(http, "poll"), websocket: at(ws, "ws") };
  }

  function withQuery(url, params) {
    var u = new URL(url);
    Object.keys(params).forEach(function (k) {
      if (params[k] !== null && params[k] !== undefined) u.searchParams.set(k, String(params[k]));
    });
    return String(u);
  }

  // ---------------------------------------------------------------- transports
  //
  // open(urls, since, sink) -> { close() }. The sink has open(), event(obj) and
  // end({fatal, reason}) — end is called at most once, and never after close().

  function parseEvent(text) {
    var ev = JSON.parse(text);
    if (!ev || typeof ev !== "object" || typeof ev.type !== "string") throw new Error("not an event");
    return ev;
  }

  function openWebSocket(urls, since, sink) {
    var ws = new WebSocket(withQuery(urls.websocket, { since: since || null }));
    var done = false;
    function end(info) { if (!done) { done = true; sink.end(info); } }
    ws.onopen = function () { sink.open(); };
    ws.onmessage = function (msg) {
      var ev;
      try { ev = parseEvent(msg.data); } catch (e) { return; }
      sink.event(ev);
    };
    ws.onclose = function (e) {
      if (e.code === 4404) end({ fatal: true, reason: "unknown_token", message: e.reason || "unknown stream token" });
      else if (e.code === 4410) end({ fatal: true, reason: "ended", message: e.reason || "the registration ended" });
      else if (e.code === 4403) end({ fatal: true, reason: "origin", message: e.reason || "this page's origin is not allowed" });
      else if (e.code === 4400) end({ fatal: true, reason: "bad_since", message: e.reason || "bad since" });
      else end({ fatal: false, reason: "closed", code: e.code });
    };
    return { close: function () { done = true; ws.onclose = null; ws.close(1000); } };
  }

  function openSSE(urls, since, sink) {
    var es = new EventSource(withQuery(urls.sse, { since: since || null }));
    var done = false;
    function onMessage(msg) {
      var ev;
      try { ev = parseEvent(msg.data); } catch (e) { return; }
      sink.event(ev);
    }
    EVENT_TYPES.forEach(function (t) { es.addEventListener(t, onMessage); });
    es.onmessage = onMessage;
    es.onopen = function () { sink.open(); };
    es.onerror = function () {
      if (done) return;
      if (es.readyState === EventSource.CLOSED) {
        // An HTTP error: EventSource gives up; the client finds out why and decides.
        done = true;
        sink.end({ fatal: false, reason: "refused" });
      } else {
        // A dropped connection: EventSource reconnects by itself with Last-Event-ID.
        sink.interrupted();
      }
    };
    return { close: function () { done = true; es.close(); } };
  }

  function openLongPoll(urls, since, sink, options) {
    var controller = new AbortController();
    var done = false;
    var opened = false;
    var next = since || 0;
    function end(info) { if (!done) { done = true; sink.end(info); } }
    function poll() {
      if (done) return;
      var url = withQuery(urls.longPoll, { since: next || null, timeout: options.pollTimeout });
      fetch(url, { signal: controller.signal, cache: "no-store", headers: { Accept: "application/json" } })
        .then(function (resp) {
          if (resp.status === 404) return end({ fatal: true, reason: "unknown_token", message: "unknown stream token" });
          if (resp.status === 410) return end({ fatal: true, reason: "ended", message: "the registration ended" });
          if (!resp.ok) return end({ fatal: false, reason: "http_" + resp.status });
          return resp.json().then(function (body) {
            if (done) return;
            if (!opened) { opened = true; sink.open(); }
            (body.events || []).forEach(function (ev) { if (!done) sink.event(ev); });
            if (typeof body.next === "number") next = body.next;
            poll();
          });
        })
        .catch(function () { end({ fatal: false, reason: "network" }); });
    }
    poll();
    return { close: function () { done = true; controller.abort(); } };
  }

  var OPENERS = { websocket: openWebSocket, sse: openSSE, "long-poll": openLongPoll };

  // ---------------------------------------------------------------- the client

  /**
   * A live connection to one agent's stream. Use `Pbxis.connect(...)`.
   *
   * `connection` is "connecting", "connected", "reconnecting", "closed" (the registration
   * ended) or "failed" (the token is unknown); `transport` is the transport in use.
   */
  function Client(source, options) {
    options = options || {};
    this.urls = streamUrls(source);
    var preferred = options.transport || "websocket";
    if (TRANSPORTS.indexOf(preferred) < 0) throw new TypeError("transport must be one of " + TRANSPORTS.join(", "));
    this.order = options.fallback === false
      ? [preferred]
      : [preferred].concat(TRANSPORTS.filter(function (t) { return t !== preferred; }));
    this.options = {
      pollTimeout: options.pollTimeout || 25,
      minDelay: options.minDelay || 0.5,
      maxDelay: options.maxDelay || 15,
      attemptsPerTransport: options.attemptsPerTransport || 2,
    };
    // A supervisor's stream (wallboard) is reduced into whole queues instead.
    this._reduce = options.supervisor ? reduceBoard : reduce;
    this.state = options.supervisor ? initialBoard() : initialState();
    this.lastId = options.since || 0;
    this.state.lastId = this.lastId;
    this.transport = preferred;
    this.connection = "connecting";
    this.error = null;
    this._index = 0;
    this._failures = 0; // consecutive attempts that never opened
    this._attempt = 0; // consecutive reconnects, for the back-off
    this._worked = false; // once a transport worked, we stay with it
    this._current = null;
    this._timer = null;
    this._handlers = {};
    this._closed = false;
    var self = this;
    this._online = function () { if (self.connection === "reconnecting") self._reconnectNow(); };
    if (root.addEventListener) root.addEventListener("online", this._online);
    this._open();
  }

  /** Call `fn` for "event" (every event), an event type, "state" or "status"; returns an unsubscribe function. */
  Client.prototype.on = function (name, fn) {
    var list = this._handlers[name] || (this._handlers[name] = []);
    list.push(fn);
    return function () {
      var i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  };

  Client.prototype._emit = function (name, a, b) {
    (this._handlers[name] || []).slice().forEach(function (fn) {
      try { fn(a, b); } catch (e) { if (root.console) root.console.error("pbxis: a " + name + " handler failed", e); }
    });
  };

  Client.prototype._status = function (connection, error) {
    this.connection = connection;
    this.error = error || null;
    this._emit("status", { connection: connection, transport: this.transport, lastId: this.lastId, error: this.error });
  };

  Client.prototype._open = function () {
    var self = this;
    var attempt = {};
    this.transport = this.order[this._index];
    var opened = false;
    var sink = {
      open: function () {
        if (self._current !== attempt) return;
        opened = true;
        self._worked = true;
        self._failures = 0;
        self._attempt = 0;
        self._status("connected");
      },
      interrupted: function () {
        if (self._current === attempt && self.connection === "connected") self._status("reconnecting");
      },
      event: function (ev) { if (self._current === attempt) self._deliver(ev); },
      end: function (info) { if (self._current === attempt) self._ended(info, opened); },
    };
    this._current = attempt;
    try {
      attempt.handle = OPENERS[this.transport](this.urls, this.lastId, sink, this.options);
    } catch (e) {
      // e.g. no WebSocket in this browser, or a CSP that refuses it.
      setTimeout(function () { sink.end({ fatal: false, reason: "unsupported" }); }, 0);
    }
  };

  Client.prototype._deliver = function (ev) {
    if (ev.type === "reset") {
      this.lastId = ev.id || this.lastId;
    } else if (typeof ev.id === "number") {
      if (ev.id <= this.lastId) return; // seen already: an overlapping replay
      this.lastId = ev.id;
    }
    this.state = this._reduce(this.state, ev);
    this._emit("event", ev);
    this._emit(ev.type, ev);
    this._emit("state", this.state, ev);
    if (ev.type === "closed") this._finish("closed", "the registration ended (" + (ev.reason || "closed") + ")");
  };

  Client.prototype._ended = function (info, opened) {
    var self = this;
    if (this._closed) return;
    if (info.fatal) {
      this._finish(info.reason === "ended" ? "closed" : "failed", info.message);
      return;
    }
    if (!opened) this._failures += 1;
    if (!opened && !this._worked && this._failures >= this.options.attemptsPerTransport && this.order.length > 1) {
      // This transport never got through (a proxy, a browser without it): try the next one.
      this._index = (this._index + 1) % this.order.length;
      this._failures = 0;
    }
    this._status("reconnecting", info.reason);
    if (!opened && this.transport !== "long-poll") {
      // WebSocket and EventSource hide HTTP errors; one quick poll tells a dead token from an outage.
      this._probe().then(function (fatal) {
        if (fatal) self._finish(fatal.reason === "ended" ? "closed" : "failed", fatal.message);
        else self._schedule();
      });
    } else {
      this._schedule();
    }
  };

  Client.prototype._probe = function () {
    var url = withQuery(this.urls.longPoll, { since: this.lastId || null, timeout: 0 });
    return fetch(url, { cache: "no-store" }).then(function (resp) {
      if (resp.status === 404) return { reason: "unknown_token", message: "unknown stream token" };
      if (resp.status === 410) return { reason: "ended", message: "the registration ended" };
      return null;
    }, function () { return null; });
  };

  Client.prototype._schedule = function () {
    var self = this;
    if (this._closed) return;
    var o = this.options;
    var delay = Math.min(o.maxDelay, o.minDelay * Math.pow(2, this._attempt));
    this._attempt += 1;
    delay = delay * (0.5 + Math.random() / 2);
    this._timer = setTimeout(function () { self._timer = null; self._open(); }, delay * 1000);
  };

  Client.prototype._reconnectNow = function () {
    if (this._closed || this._timer === null) return;
    clearTimeout(this._timer);
    this._timer = null;
    this._open();
  };

  Client.prototype._finish = function (connection, message) {
    this._stop();
    this._status(connection, message);
  };

  Client.prototype._stop = function () {
    this._closed = true;
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    var current = this._current;
    this._current = null;
    if (current && current.handle) current.handle.close();
    if (root.removeEventListener) root.removeEventListener("online", this._online);
  };

  /** Stop for good (the page is leaving, or the agent logged out of the CRM). */
  Client.prototype.close = function () {
    if (this._closed) return;
    this._finish("closed", null);
  };

  /**
   * Connect to an agent's stream. `source` is the `streams` object from
   * `PUT /agents/{agent}` or one stream URL. Options: `transport` (preferred:
   * "websocket", "sse" or "long-poll"), `fallback` (default true), `since` (resume
   * after this event id), `pollTimeout`, `minDelay`/`maxDelay` (reconnect back-off, s).
   */
  function connect(source, options) {
    return new Client(source, options);
  }

  // ---------------------------------------------------------------- commands

  /** A refused command: `status`, `code` and `message` from the API's error document. */
  function ApiError(status, code, message) {
    var e = new Error(message);
    e.name = "PbxisApiError";
    e.status = status;
    e.code = code;
    return e;
  }

  /**
   * The agent's own commands, authorized by its stream token. `base` is pbxis's URL
   * (e.g. "https://pbxis.example.com/"). Every method returns a Promise of the JSON
   * answer and rejects with an error carrying `status`, `code` and `message`.
   */
  function Api(base, agent, token) {
    this.base = String(absolute(base || "/"));
    if (this.base.charAt(this.base.length - 1) !== "/") this.base += "/";
    this.agent = agent;
    this.token = token;
  }

  Api.prototype.request = function (method, path, body) {
    var headers = { Accept: "application/json" };
    if (this.token) headers.Authorization = "Bearer " + this.token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(new URL(path.replace(/^\//, ""), this.base), {
      method: method, headers: headers, cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var doc = null;
        try { doc = text ? JSON.parse(text) : null; } catch (e) { doc = null; }
        if (resp.ok) return doc;
        var err = (doc && doc.error) || {};
        throw ApiError(resp.status, err.code || "http_" + resp.status, err.message || resp.statusText || "request failed");
      });
    });
  };

  Api.prototype._agentPath = function (tail) {
    return "agents/" + encodeURIComponent(this.agent) + tail;
  };

  Api.prototype._queuePath = function (queue, verb) {
    return this._agentPath("/queues/" + encodeURIComponent(queue) + "/" + verb);
  };

  /** Ring the agent's phone, then dial `number`; resolves to `{actionId}`. */
  Api.prototype.originate = function (number, extra) {
    return this.request("POST", this._agentPath("/originate"), copy(extra || {}, { number: number }));
  };
  Api.prototype.login = function (queue, extra) { return this.request("POST", this._queuePath(queue, "login"), extra || {}); };
  Api.prototype.logoff = function (queue) { return this.request("POST", this._queuePath(queue, "logoff"), {}); };
  Api.prototype.pause = function (queue, reason) {
    return this.request("POST", this._queuePath(queue, "pause"), reason ? { reason: reason } : {});
  };
  Api.prototype.unpause = function (queue) { return this.request("POST", this._queuePath(queue, "unpause"), {}); };
  /** Call control: the agent's current call (409 `no_call` when there is none). */
  Api.prototype.hangup = function () { return this.request("POST", this._agentPath("/hangup"), {}); };
  /** Transfer the caller to `to`; `mode` "blind" (default) or "attended"; resolves to `{actionId}`. */
  Api.prototype.transfer = function (to, mode) {
    return this.request("POST", this._agentPath("/transfer"), { to: to, mode: mode || "blind" });
  };
  Api.prototype.cancelTransfer = function () { return this.request("POST", this._agentPath("/transfer/cancel"), {}); };
  Api.prototype.pauseRecording = function () { return this.request("POST", this._agentPath("/recording/pause"), {}); };
  Api.prototype.resumeRecording = function () { return this.request("POST", this._agentPath("/recording/resume"), {}); };

  root.Pbxis = {
    VERSION: VERSION,
    TRANSPORTS: TRANSPORTS,
    EVENT_TYPES: EVENT_TYPES,
    initialState: initialState,
    reduce: reduce,
    initialBoard: initialBoard,
    reduceBoard: reduceBoard,
    streamUrls: streamUrls,
    connect: connect,
    Client: Client,
    Api: Api,
  };
})(typeof globalThis !== "undefined" ? globalThis : this);
