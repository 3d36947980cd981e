// The AMS server-side API of one application instance, in JavaScript over four native
// functions: __trace(text), __load(name), and the host's two entries below. The host
// calls __dispatch(json) with one event and gets back JSON: what the event returned, an
// exception if one escaped, and the operations the script asked for meanwhile (accept,
// reject, calls, timers...), which the host carries out after the script has returned.
// Everything crosses as JSON, so the engine's objects never leave this context.
(function (global, appName, instanceName) {
  "use strict";
  var trace_ = global.__trace;
  var ops = [];
  var clients = {};        // id -> Client (pending or accepted)
  var states = {};         // id -> "pending" | "accepted"
  var calls = {};          // our call id -> the result object
  var callSeq = 0;
  var timers = {};         // timer id -> { fn, args, ms, repeat }
  var timerSeq = 0;
  var slice = Array.prototype.slice;

  global.trace = function () {
    trace_(slice.call(arguments).map(String).join(" "));
  };

  function Client() {}
  Client.prototype.call = function (method, resultObj) {
    var id = 0;
    if (resultObj) {
      id = ++callSeq;
      calls[id] = resultObj;
    }
    ops.push({ op: "call", client: this.id, method: String(method), call: id,
               args: slice.call(arguments, 2) });
    return true;
  };
  // Bandwidth limits, in bytes per second. Client to server (direction 0): what the
  // client is told it may send (Set Peer Bandwidth, hard); Flash Player honours it, the
  // server enforces nothing. Server to client (direction 1): kept as set, not enforced
  // (0 until set: no limit). setBandwidthLimit(serverToClient, clientToServer); 0 or
  // less leaves a direction as it is.
  Client.prototype.getBandwidthLimit = function (direction) {
    return Number(direction) === 1 ? (this._toClient || 0) : (this._toServer || 0);
  };
  Client.prototype.setBandwidthLimit = function (toClient, toServer) {
    toClient = Math.floor(Number(toClient));
    toServer = Math.floor(Number(toServer));
    if (toClient > 0) this._toClient = toClient;
    if (toServer > 0) {
      this._toServer = Math.min(toServer, 4294967295);
      ops.push({ op: "bandwidth", client: this.id, bytes: this._toServer });
    }
  };
  // Methods a client may not call on itself: the API's own.
  var reserved = { call: 1, getBandwidthLimit: 1, setBandwidthLimit: 1 };
  global.Client = Client;

  var application = {
    name: instanceName === "_definst_" ? appName : appName + "/" + instanceName,
    hostname: "localhost",
    server: "Strata",
    clients: [],
  };
  function removeClient(c) {
    // Not splice: this QuickJS's splice deletes the vacated last slot, which turns a fast
    // array into a plain object, and from then on every push, indexOf and splice goes
    // property by property (thousands of disconnects took seconds). copyWithin and pop
    // keep it a fast array, in the same order.
    var list = application.clients;
    var i = list.indexOf(c);
    if (i < 0) return;
    list.copyWithin(i, i + 1);
    list.pop();
  }
  function settle(c, accept, error) {
    if (!c || states[c.id] !== "pending") return false;
    if (accept) {
      states[c.id] = "accepted";
      application.clients.push(c);
      ops.push({ op: "accept", client: c.id, read: String(c.readAccess),
                 write: String(c.writeAccess) });
      if (typeof application.onConnectAccept === "function") application.onConnectAccept(c);
    } else {
      delete states[c.id];
      delete clients[c.id];
      ops.push({ op: "reject", client: c.id, error: error === undefined ? null : error });
      if (typeof application.onConnectReject === "function") application.onConnectReject(c, error);
    }
    return true;
  }
  application.acceptConnection = function (c) { return settle(c, true); };
  application.rejectConnection = function (c, error) { return settle(c, false, error); };
  application.disconnect = function (c) {
    if (!c || !states[c.id]) return false;
    ops.push({ op: "disconnect", client: c.id });
    return true;
  };
  // A call to the manager's on_call webhook (an HTTP service of the operator's): what
  // scripts have instead of LoadVars, since stratad itself makes no HTTP requests.
  application.callManager = function (method, resultObj) {
    var id = 0;
    if (resultObj) {
      id = ++callSeq;
      calls[id] = resultObj;
    }
    ops.push({ op: "manager", method: String(method), call: id, args: slice.call(arguments, 2) });
    return true;
  };
  application.broadcastMsg = function (method) {
    ops.push({ op: "broadcast", method: String(method), args: slice.call(arguments, 1) });
  };
  global.application = application;

  // SharedObject: a mirror of the object's slots, kept by the owner's updates; the
  // script's own changes apply to the mirror at once and reach every client as the
  // server's. Each setProperty's echo comes back once and is not reported to onSync.
  var sharedObjects = {};
  function SharedObject(name, persistent) {
    this.name = name;
    this.persistent = persistent;
    this.version = 0;
    this._data = {};
    this._echo = {};
  }
  function soOp(so, action, extra) {
    var op = { op: "so", name: so.name, persistent: so.persistent, action: action };
    for (var k in extra) op[k] = extra[k];
    ops.push(op);
  }
  SharedObject.get = function (name, persistent) {
    name = String(name);
    var so = sharedObjects[name];
    if (!so) {
      so = sharedObjects[name] = new SharedObject(name, !!persistent);
      soOp(so, "use", {});
    }
    return so;
  };
  SharedObject.prototype.getProperty = function (key) {
    var v = this._data[key];
    return v === undefined ? null : v;
  };
  SharedObject.prototype.setProperty = function (key, value) {
    key = String(key);
    if (value === null || value === undefined) delete this._data[key];
    else this._data[key] = value;
    this._echo[key] = (this._echo[key] || 0) + 1;
    soOp(this, "set", { key: key, value: value === undefined ? null : value });
  };
  SharedObject.prototype.getPropertyNames = function () { return Object.keys(this._data); };
  SharedObject.prototype.size = function () { return Object.keys(this._data).length; };
  SharedObject.prototype.clear = function () {
    this._data = {};
    soOp(this, "clear", {});
    return true;
  };
  SharedObject.prototype.send = function (handler) {
    soOp(this, "send", { handler: String(handler), args: slice.call(arguments, 1) });
    return true;
  };
  // The owner applies every change in order, one at a time: there is nothing to lock.
  SharedObject.prototype.lock = function () { return 1; };
  SharedObject.prototype.unlock = function () { return 0; };
  SharedObject.prototype.flush = function () { return true; };
  SharedObject.prototype.close = function () {
    soOp(this, "release", {});
    delete sharedObjects[this.name];
  };
  global.SharedObject = SharedObject;
  // Stream: a server-side stream, published under its name in this instance; play()
  // queues files and live streams (seconds, as AMS: start -2 a file if there is one,
  // else the live stream, -1 the live stream, 0+ the file from there; len -1 to the end),
  // the owner worker plays them in real time and reports to onStatus.
  var streams = {};
  function Stream(name) { this.name = name; }
  function streamOp(s, action, extra) {
    var op = { op: "stream", name: s.name, action: action };
    for (var k in extra) op[k] = extra[k];
    ops.push(op);
  }
  Stream.get = function (name) {
    name = String(name);
    return streams[name] || (streams[name] = new Stream(name));
  };
  // Stream.length(name): seconds of the recorded stream (a file under [vod] root), 0 if none.
  // (A function's own `length` is read-only: it is redefined, as it is configurable.)
  Object.defineProperty(Stream, "length", {
    value: function (name) { return global.__stream_length(String(name)); }
  });
  Stream.prototype.play = function (source, start, len, reset) {
    if (source === false) { streamOp(this, "stop", {}); return true; }
    start = start === undefined ? -2 : Number(start);
    len = len === undefined ? -1 : Number(len);
    streamOp(this, "play", {
      source: String(source),
      start: start >= 0 ? start * 1000 : (start === -1 ? -1 : -2),
      len: len >= 0 ? len * 1000 : -1,
      reset: reset === undefined ? true : !!reset
    });
    return true;
  };
  // record("record" | "append") records what the stream plays to <name>.flv where VOD
  // plays it from; record(false) stops. Statuses: NetStream.Record.Start, .Stop, .Failed,
  // .NoAccess.
  Stream.prototype.record = function (mode) {
    mode = mode === undefined ? "record" : mode;
    if (mode !== false && mode !== "record" && mode !== "append") return false;
    streamOp(this, "record", { mode: String(mode) });
    return true;
  };
  Stream.prototype.send = function (handler) {
    streamOp(this, "send", { handler: String(handler), args: slice.call(arguments, 1) });
    return true;
  };
  global.Stream = Stream;
  // NetConnection: a connection of this instance to another application, here or on
  // another server (AMS's server-side NetConnection, as FCRemoteConnection.asc uses it).
  // The owner worker holds the connection; connect's outcome and the connection's end
  // come to onStatus, calls' answers to their result objects, and the far application's
  // calls to methods defined on the object.
  var ncs = {};            // id -> NetConnection
  var ncSeq = 0;
  var ncReserved = { connect: 1, call: 1, close: 1, onStatus: 1, addHeader: 1 };
  function NetConnection() {
    this._nc = ++ncSeq;
    this.isConnected = false;
    this.uri = undefined;
    this.objectEncoding = 0;
    ncs[this._nc] = this;
  }
  NetConnection.prototype.connect = function (uri) {
    uri = String(uri);
    if (!/^rtmp:/i.test(uri)) return false;
    this.uri = uri;
    this.isConnected = false;
    ops.push({ op: "nc", nc: this._nc, action: "connect", uri: uri,
               args: slice.call(arguments, 1) });
    return true;
  };
  NetConnection.prototype.call = function (method, resultObj) {
    if (!this.isConnected) return false;
    var id = 0;
    if (resultObj) {
      id = ++callSeq;
      calls[id] = resultObj;
    }
    ops.push({ op: "nc", nc: this._nc, action: "call", method: String(method), call: id,
               args: slice.call(arguments, 2) });
    return true;
  };
  NetConnection.prototype.close = function () {
    this.isConnected = false;
    ops.push({ op: "nc", nc: this._nc, action: "close" });
  };
  NetConnection.prototype.addHeader = function () {};
  global.NetConnection = NetConnection;
  function soUpdate(e) {
    var so = sharedObjects[e.name];
    if (!so) return;
    so.version = e.version;
    var list = [];
    e.events.forEach(function (ev) {
      if (ev.t === "change") {
        for (var k in ev.slots) {
          so._data[k] = ev.slots[k];
          if (so._echo[k] > 0) { so._echo[k] -= 1; continue; }
          list.push({ code: "change", name: k });
        }
      } else if (ev.t === "remove") {
        delete so._data[ev.key];
        if (so._echo[ev.key] > 0) { so._echo[ev.key] -= 1; return; }
        list.push({ code: "delete", name: ev.key });
      } else if (ev.t === "clear") {
        so._data = {};
        list.push({ code: "clear" });
      } else if (ev.t === "send" && typeof so[ev.handler] === "function") {
        so[ev.handler].apply(so, ev.args);
      }
    });
    if (list.length && typeof so.onSync === "function") so.onSync(list);
  }

  function addTimer(fn, ms, args, repeat) {
    var id = ++timerSeq;
    ms = Math.max(0, Number(ms) || 0);
    timers[id] = { fn: fn, args: args, ms: ms, repeat: repeat };
    ops.push({ op: "timer", id: id, ms: ms });
    return id;
  }
  // setInterval(fn, ms, ...args) or AMS's setInterval(object, "method", ms, ...args).
  function timerArgs(a, repeat) {
    if (typeof a[0] === "function") return addTimer(a[0], a[1], slice.call(a, 2), repeat);
    var obj = a[0], name = a[1];
    return addTimer(function () { return obj[name].apply(obj, arguments); },
                    a[2], slice.call(a, 3), repeat);
  }
  global.setInterval = function () { return timerArgs(arguments, true); };
  global.setTimeout = function () { return timerArgs(arguments, false); };
  global.clearInterval = global.clearTimeout = function (id) { delete timers[id]; };
  global.load = function (name) { return global.__load(String(name)); };

  // File: AMS's File class over the __file_* natives, inside the application's folder
  // only (a path that leaves it throws). Text only; an open file is read whole at open and
  // written whole at flush/close (scripts' files are small: configuration, logs, lists).
  function File(name) {
    name = String(name === undefined ? "/" : name);
    this.name = name.charAt(0) === "/" ? name : "/" + name;
    this.isOpen = false;
    this.position = 0;
    this.mode = null;
    __file_stat(this.name);  // throws now for a path outside the folder
  }
  function stat(f) { return JSON.parse(__file_stat(f.name)); }
  ["exists", "isFile", "isDirectory", "length", "lastModified"].forEach(function (p) {
    Object.defineProperty(File.prototype, p, {
      get: function () {
        if (p === "length" && this.isOpen) return this._text.length;
        var v = stat(this)[p];
        return p === "lastModified" && v !== null ? new Date(v) : v;
      }
    });
  });
  File.prototype.toString = function () { return this.name; };
  File.prototype.open = function (type, mode) {
    if (this.isOpen || (type !== undefined && type !== "text")) return false;
    var modes = String(mode === undefined ? "read" : mode).split(/\s+/);
    var has = function (m) { return modes.indexOf(m) >= 0; };
    var existing = __file_read(this.name);
    if (existing === null && !has("create") && !has("write") && !has("append")) return false;
    this._text = has("write") && !has("read") ? "" : (existing || "");
    this._write = has("write") || has("append") || has("readWrite") || has("create");
    this.position = has("append") ? this._text.length : 0;
    this.mode = modes.join(" ");
    this.isOpen = true;
    this._dirty = this._write && existing === null;
    return true;
  };
  File.prototype.eof = function () { return !this.isOpen || this.position >= this._text.length; };
  File.prototype.read = function (n) {
    if (!this.isOpen) return null;
    var s = this._text.substr(this.position, n === undefined ? undefined : Number(n));
    this.position += s.length;
    return s;
  };
  File.prototype.readChar = function () { return this.read(1); };
  File.prototype.readln = function () {
    if (this.eof()) return null;
    var end = this._text.indexOf("\n", this.position);
    var line = this._text.substring(this.position, end < 0 ? this._text.length : end);
    this.position = end < 0 ? this._text.length : end + 1;
    return line.replace(/\r$/, "");
  };
  File.prototype.readAll = function () {
    var lines = [];
    while (!this.eof()) lines.push(this.readln());
    return lines;
  };
  File.prototype.write = function () {
    if (!this.isOpen || !this._write) return false;
    var s = slice.call(arguments).map(String).join("");
    this._text = this._text.substring(0, this.position) + s +
                 this._text.substring(this.position + s.length);
    this.position += s.length;
    this._dirty = true;
    return true;
  };
  File.prototype.writeln = function () {
    return this.write(slice.call(arguments).map(String).join("") + "\n");
  };
  File.prototype.writeAll = function (lines) {
    for (var i = 0; i < lines.length; i++) if (!this.writeln(lines[i])) return false;
    return true;
  };
  File.prototype.flush = function () {
    if (!this.isOpen) return false;
    if (!this._dirty) return true;
    this._dirty = false;
    return __file_write(this.name, this._text, false);
  };
  File.prototype.close = function () {
    if (!this.isOpen) return false;
    var ok = this.flush();
    this.isOpen = false;
    this._text = undefined;
    return ok;
  };
  File.prototype.list = function (filter) {
    var names = __file_list(this.name);
    if (names === null) return [];
    var base = this.name === "/" ? "" : this.name;
    var files = JSON.parse(names).map(function (n) { return new File(base + "/" + n); });
    return typeof filter === "function" ? files.filter(filter) : files;
  };
  File.prototype.remove = function () { return !this.isOpen && __file_remove(this.name); };
  File.prototype.mkdir = function (name) {
    var base = this.name === "/" ? "" : this.name;
    return __file_mkdir(base + "/" + String(name));
  };
  File.prototype.renameTo = function (to) {
    var target = String(to);
    if (target.charAt(0) !== "/") target = "/" + target;
    if (this.isOpen || !__file_rename(this.name, target)) return false;
    this.name = target;
    return true;
  };
  File.prototype.copyTo = function (to) {
    var text = __file_read(this.name);
    var target = String(to);
    if (target.charAt(0) !== "/") target = "/" + target;
    return text !== null && __file_write(target, text, false);
  };
  global.File = File;

  // A Stream's or NetConnection's status with no onStatus of its own goes to
  // application.onStatus, as in AMS.
  function unhandledStatus(info) {
    if (typeof application.onStatus === "function") application.onStatus(info);
  }

  function onEvent(e) {
    switch (e.type) {
      case "start":
        if (typeof application.onAppStart === "function") application.onAppStart();
        return undefined;
      case "stop":
        if (typeof application.onAppStop === "function") application.onAppStop({});
        return undefined;
      case "connect": {
        var c = new Client();
        c.readAccess = c.writeAccess = "/";
        for (var k in e.client) c[k] = e.client[k];
        c._toServer = e.client.peerBandwidth || 0;
        delete c.peerBandwidth;
        clients[c.id] = c;
        states[c.id] = "pending";
        if (typeof application.onConnect !== "function") { settle(c, true); return undefined; }
        var r;
        try {
          r = application.onConnect.apply(application, [c].concat(e.args));
        } catch (err) {
          settle(c, false);
          throw err;
        }
        if (r === true) settle(c, true);
        else if (r === false) settle(c, false);
        // Anything else: pending, until acceptConnection or rejectConnection.
        return undefined;
      }
      case "disconnect": {
        var d = clients[e.client];
        var was = states[e.client];
        delete clients[e.client];
        delete states[e.client];
        if (!d || was !== "accepted") return undefined;
        removeClient(d);
        if (typeof application.onDisconnect === "function") application.onDisconnect(d);
        return undefined;
      }
      case "call": {
        var cl = clients[e.client];
        var f = cl && states[e.client] === "accepted" ? cl[e.method] : undefined;
        if (typeof f !== "function" || reserved[e.method] ||
            Object.prototype.hasOwnProperty.call(Object.prototype, e.method)) {
          throw new Error("Method not found (" + e.method + ").");
        }
        return f.apply(cl, e.args);
      }
      case "result": {
        var o = calls[e.call];
        delete calls[e.call];
        if (!o) return undefined;
        if (e.ok && typeof o.onResult === "function") o.onResult(e.value);
        if (!e.ok && typeof o.onStatus === "function") o.onStatus(e.value);
        return undefined;
      }
      case "publish":
      case "unpublish": {
        var p = clients[e.client];
        if (!p || states[e.client] !== "accepted") return undefined;
        p._published = p._published || {};
        var handler = e.type === "publish" ? application.onPublish : application.onUnpublish;
        if (e.type === "publish") p._published[e.name] = true;
        else if (p._published[e.name]) delete p._published[e.name];
        else return undefined;
        if (typeof handler === "function") handler.call(application, p, { name: e.name });
        return undefined;
      }
      case "so":
        soUpdate(e);
        return undefined;
      case "streamstatus": {
        var st = streams[e.name];
        var level = /NotFound|Failed|BadName|NoAccess/.test(e.code) ? "error" : "status";
        var info = { code: e.code, level: level, details: e.details };
        if (st && typeof st.onStatus === "function") st.onStatus(info);
        else unhandledStatus(info);
        return undefined;
      }
      case "ncstatus": {
        var n = ncs[e.nc];
        if (!n) return undefined;
        n.isConnected = e.info.code === "NetConnection.Connect.Success";
        if (typeof n.onStatus === "function") n.onStatus(e.info);
        else unhandledStatus(e.info);
        return undefined;
      }
      case "nccall": {
        var target = ncs[e.nc];
        var m = target && !ncReserved[e.method] &&
          !Object.prototype.hasOwnProperty.call(Object.prototype, e.method)
          ? target[e.method] : undefined;
        if (typeof m !== "function") throw new Error("Method not found (" + e.method + ").");
        return m.apply(target, e.args);
      }
      case "timer": {
        var t = timers[e.id];
        if (!t) return undefined;
        if (t.repeat) ops.push({ op: "timer", id: e.id, ms: t.ms });
        else delete timers[e.id];
        t.fn.apply(null, t.args);
        return undefined;
      }
    }
    return undefined;
  }

  global.__dispatch = function (json) {
    var out = {};
    try {
      out.result = onEvent(JSON.parse(json));
    } catch (err) {
      out.error = { message: String(err && err.message !== undefined ? err.message : err),
                    stack: String((err && err.stack) || "") };
    }
    out.ops = ops;
    ops = [];
    return JSON.stringify(out);
  };
  // Operations of the top-level code (a setInterval in main.asc), taken after loading.
  global.__drain = function () {
    var o = JSON.stringify(ops);
    ops = [];
    return o;
  };
})
