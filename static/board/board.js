// The board's behaviour in the browser. htmx swaps the HTML; this file adds what HTML cannot:
// the connection indicator, live call timers, the search and filters applied to tiles the
// socket pushes, keyboard navigation, and the own phone ringing (notification, tone, CRM).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.htmx) return;

  function label(name) {
    return live.getAttribute("data-label-" + name) || "";
  }

  // --- the socket: connect with the page's current view, reconnect soon ------------------

  // The consumer renders its grids (on connect and reconnect) for the view in the URL, so a
  // reconnect keeps the search, filters and sort the page shows now. #grid-version says what
  // the tiles show (the tenant's event number they are at least as new as, and a fingerprint
  // of the rest): if that is still current, the socket sends only the tiles changed since,
  // not the whole grid the page has just rendered.
  htmx.createWebSocket = function (url) {
    var target = new URL(url, window.location.href);
    var params = new URLSearchParams(window.location.search);
    params.delete("since");
    params.delete("grid");
    var version = document.getElementById("grid-version");
    if (version && version.dataset.seq && version.dataset.grid) {
      params.set("since", version.dataset.seq);
      params.set("grid", version.dataset.grid);
    }
    target.search = params.toString();
    var socket = new WebSocket(target.toString(), []);
    socket.binaryType = htmx.config.wsBinaryType;
    return socket;
  };
  // After a server restart the board should be back within seconds, not a minute: with the
  // truth within 5 s of the server answering, so the longest wait is 2.5 s (1.25-2.5 s).
  htmx.config.wsReconnectDelay = function (retryCount) {
    var ceiling = Math.min(500 * Math.pow(2, retryCount), 2500);
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  };

  var socket = null;
  var stateLabels = {
    connecting: "connecting",
    syncing: "syncing",
    live: "connected",
    reconnecting: "reconnecting",
    unavailable: "unavailable",
    denied: "denied",
  };
  var socketState = "connecting";
  var socketLostAt = NaN; // server time (ms) the socket went down

  function setState(state) {
    socketState = state;
    var el = document.getElementById("socket-status");
    if (el) {
      el.dataset.state = state;
      el.textContent = label(stateLabels[state]);
    }
    if (state === "live" || state === "syncing") socketLostAt = NaN;
    else if (state !== "connecting" && isNaN(socketLostAt)) socketLostAt = Date.now() + skew;
    freshness();
  }

  // --- freshness: "Live" only while every link is good and the page has caught up ---------

  // Three links bring a tile's truth: browser-server (this socket), server-worker (the
  // worker's pulse through the channel layer: #link-status) and worker-PBX (#pbx-status).
  // While one is broken the tiles are marked stale "as of" when it broke, timers stop and the
  // note says why a call may fail. The server's pills show their last known state meanwhile.
  var freshState = "waiting";
  var staleSince = NaN;

  // "Waiting" (the socket open but not caught up, or no word yet of the worker) lasts a second
  // or two: the first pulse, or its absence after 3 s, settles it. Longer, this page missed
  // something; a fresh connection brings the current state.
  var WAITING_LIMIT = 8000;
  var waitingTimer = null;
  function watchWaiting() {
    if (freshState !== "waiting" || socketState === "connecting") {
      if (waitingTimer !== null) window.clearTimeout(waitingTimer);
      waitingTimer = null;
      return;
    }
    if (waitingTimer !== null) return;
    waitingTimer = window.setTimeout(function () {
      waitingTimer = null;
      if (freshState === "waiting" && socket) {
        console.warn("ctiboard: no word of the board's state for " + WAITING_LIMIT / 1000 + " s; reconnecting");
        socket.socket.close();
      }
    }, WAITING_LIMIT);
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  }

  function freshness() {
    var link = document.getElementById("link-status");
    var pbx = document.getElementById("pbx-status");
    var connected = socketState === "live";
    var linkLive = link ? link.dataset.live || "" : "";
    var pbxStatus = pbx ? pbx.dataset.status || "" : "";
    var why = [], times = [];
    if (!connected && socketState !== "connecting" && socketState !== "syncing") {
      why.push(label("why-socket"));
      times.push(socketLostAt);
    }
    if (connected && linkLive === "0") {
      why.push(label("why-link"));
      times.push(Date.parse(link.dataset.since || ""));
    }
    if (connected && pbxStatus && pbxStatus !== "connected") {
      // "unserved": no worker streams the PBX (the readiness check says so), not the PBX.
      why.push(label(pbxStatus === "unserved" ? "why-link" : "why-pbx"));
      times.push(Date.parse(pbx.dataset.since || ""));
    }
    var known = times.filter(function (t) { return !isNaN(t); });
    freshState = why.length ? "stale" : connected && linkLive === "1" && pbxStatus === "connected" ? "live" : "waiting";
    watchWaiting();
    staleSince = known.length ? Math.min.apply(null, known) : NaN;
    document.body.dataset.freshness = freshState;
    [link, pbx].forEach(function (pill) {
      if (!pill) return;
      if (connected) pill.removeAttribute("data-note");
      else pill.dataset.note = label("last-known");
    });
    var tiles = document.getElementById("tiles");
    if (tiles) tiles.classList.toggle("stale", freshState !== "live");
    var pill = document.getElementById("live-status");
    if (pill) {
      pill.dataset.state = freshState;
      pill.textContent = freshState === "live" ? label("live")
        : freshState === "waiting" ? label("connecting")
        : isNaN(staleSince) ? label("stale-unknown") : label("stale").replace("{time}", clock(staleSince));
    }
    var note = document.getElementById("stale-note");
    if (note) {
      note.hidden = freshState !== "stale";
      if (!note.hidden) {
        note.textContent = label("stale-note")
          .replace("{time}", isNaN(staleSince) ? "?" : clock(staleSince))
          .replace("{why}", why.join("; "));
      }
    }
    tick();
  }

  // Close codes after which the ws extension reconnects by itself.
  var RETRIED = [1006, 1011, 1012, 1013];
  var retries = 0;
  var probing = false;

  // A refused handshake looks like any lost connection (1006). Once the server answers
  // again, ask it whether this browser is still logged in; if not, the reload shows the login.
  // After 4403 (signed out, or no longer allowed) the same question is asked at once.
  function probeSession() {
    if (probing) return;
    probing = true;
    fetch(window.location.pathname, { method: "HEAD", redirect: "manual", credentials: "same-origin" })
      .then(function (response) {
        if (response.type === "opaqueredirect") window.location.reload();
      })
      .catch(function () { /* still down: the next close probes again */ })
      .then(function () { probing = false; });
  }

  document.addEventListener("htmx:wsOpen", function (evt) {
    socket = evt.detail.socketWrapper;
    retries = 0;
    // Open is not live yet: the first message brings the page up to date.
    setState("syncing");
  });
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    if (code === 4403) {
      // Not allowed, or the login ended (logout, new password, deactivated, expired): if the
      // server now sends this page to the login, go there; else say that access ended.
      setState("denied");
      probeSession();
      return;
    }
    setState(code === 4503 ? "unavailable" : "reconnecting");
    if (code === 1006) probeSession();
    var wrapper = evt.detail && evt.detail.socketWrapper;
    if (RETRIED.indexOf(code) < 0 && wrapper && live.isConnected) {
      // A clean close (1000, 1001) is not retried by htmx; a board must come back anyway.
      window.setTimeout(wrapper.reconnect, htmx.config.wsReconnectDelay(retries++));
    }
  });
  document.addEventListener("htmx:wsError", function () {
    setState("reconnecting");
  });
  // A new view (search, filter, sort) is in the URL now: the socket's next grid follows it.
  document.addEventListener("htmx:pushedIntoHistory", function () {
    if (socket) socket.send(JSON.stringify({ view: window.location.search }), live);
  });

  // --- filters on pushed tiles ------------------------------------------------------------

  function currentView() {
    var form = document.getElementById("view");
    var data = form ? new FormData(form) : new FormData();
    return {
      q: String(data.get("q") || "").trim().replace(/\s+/g, " ").toLowerCase(),
      lines: data.getAll("line"),
      presences: data.getAll("presence"),
      sort: String(data.get("sort") || "number"),
    };
  }

  // The same rules as BoardView.matches (board/grid.py), which renders the page and every
  // grid. A pushed tile is rendered once per audience and its frames shared by every socket
  // of that audience, whatever view each page shows (board/pushes.py; the cost of one render
  // per socket is in bench/README.md, "Fan-out"), so the page hides it here if its own
  // search or filters leave it out. A change to one copy is a change to both.
  function matches(tile, view) {
    if (view.lines.length && view.lines.indexOf(tile.dataset.line) < 0) return false;
    if (view.presences.length && view.presences.indexOf(tile.dataset.presence) < 0) return false;
    if (view.q) {
      var number = tile.dataset.number || "";
      var name = tile.dataset.name || "";
      if (number.indexOf(view.q) < 0 && name.indexOf(view.q) < 0) return false;
    }
    return true;
  }

  function numberKey(tile) {
    var number = tile.dataset.number || "";
    return [number.length, number];
  }

  function before(a, b) {
    var ra = Number(a.dataset.rank), rb = Number(b.dataset.rank);
    if (ra !== rb) return ra < rb;
    var ka = numberKey(a), kb = numberKey(b);
    return ka[0] !== kb[0] ? ka[0] < kb[0] : ka[1] < kb[1];
  }

  // Sorted by status, a tile whose line changed moves to its new place in its section.
  function reposition(tile) {
    var grid = tile.parentElement;
    if (!grid) return;
    grid.removeChild(tile);
    var next = null;
    for (var i = 0; i < grid.children.length; i++) {
      if (before(tile, grid.children[i])) {
        next = grid.children[i];
        break;
      }
    }
    grid.insertBefore(tile, next);
  }

  function updateCounts() {
    var tiles = document.getElementById("tiles");
    if (!tiles) return;
    var sections = tiles.querySelectorAll("section.section");
    var shownTotal = 0;
    sections.forEach(function (section) {
      var shown = section.querySelectorAll("article.tile:not([hidden])").length;
      shownTotal += shown;
      section.hidden = shown === 0;
      var count = section.querySelector("h2 .count");
      if (count) count.textContent = String(shown);
    });
    var noMatch = tiles.querySelector(".no-match");
    if (noMatch) noMatch.hidden = sections.length === 0 || shownTotal > 0;
  }

  // Tiles that replaced their older selves in the last message, and whether the old one was
  // hidden. Tiles appended to their section (a large grid sent in parts) come filtered,
  // sorted and counted by the server already.
  var pushed = [];
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    var elt = evt.target;
    var replaced = evt.detail && evt.detail.target;
    if (elt && elt.matches && elt.matches("article.tile") &&
        replaced && replaced.matches && replaced.matches("article.tile")) {
      pushed.push({ tile: elt, wasHidden: replaced.hidden });
    }
  });

  // Runs for every socket message, up to hundreds a second on a large board: it touches the
  // pushed tiles only, and the counts only when a tile went into or out of the filter.
  function applyToPushed() {
    if (!pushed.length) return;
    var view = currentView();
    var countsChanged = false;
    var now = Date.now() + skew;
    pushed.forEach(function (entry) {
      var tile = entry.tile;
      if (!tile.isConnected) return;
      tile.hidden = !matches(tile, view);
      if (tile.hidden !== entry.wasHidden) countsChanged = true;
      if (view.sort === "status") reposition(tile);
      tickWithin(tile, now);
    });
    pushed = [];
    if (countsChanged) updateCounts();
  }

  // --- keep the keyboard focus when htmx replaces the focused element ---------------------

  function rememberFocus() {
    var active = document.activeElement;
    if (!active || active === document.body) return null;
    var tile = active.closest ? active.closest("article.tile") : null;
    if (!tile) return active.id ? { id: active.id } : null;
    var part = null;
    if (active.classList.contains("star")) part = "button.star";
    else if (active.classList.contains("call")) part = "button.call";
    return { id: tile.id, part: part };
  }

  // Whether the memory is used up: put back, not needed, or its element will not come.
  function restoreFocus(memory) {
    if (!memory) return true;
    var active = document.activeElement;
    if (active && active !== document.body && active.isConnected) return true;
    var el = document.getElementById(memory.id);
    // Not there yet: a large grid arrives in several messages, its tiles after the sections.
    if (!el) return false;
    if (memory.part) el = el.querySelector(memory.part) || el;
    if (!el.closest("[hidden]")) el.focus({ preventScroll: true });
    return true;
  }

  // A request's swap and a socket message can interleave: keep what was focused until one
  // of them has put the focus back.
  var focusMemory = null;
  function remember() {
    focusMemory = rememberFocus() || focusMemory;
  }
  function restore() {
    if (restoreFocus(focusMemory)) focusMemory = null;
  }
  // The user moved on: a tile arriving later must not take the focus back.
  document.addEventListener("focusin", function () {
    focusMemory = null;
  });
  document.addEventListener("htmx:wsBeforeMessage", remember);
  document.addEventListener("htmx:beforeSwap", remember);
  // Fired for every element a swap settled (each tile of a socket message): its own timers.
  document.addEventListener("htmx:afterSettle", function (evt) {
    restore();
    tickWithin(evt.target instanceof Element ? evt.target : document, Date.now() + skew);
  });

  function afterMessage() {
    if (socketState !== "live") setState("live");
    else freshness(); // the message may have brought a link's or the PBX's new status
    applyToPushed();
    restore();
    incoming();
  }
  document.addEventListener("htmx:wsAfterMessage", afterMessage);

  // A busy board gets a message of a few changed tiles up to 50 times a second. htmx would
  // clean up, process and settle every element of every tile, with events for each (the cost:
  // bench/README.md, section "Tiles in the browser"). Tiles hold nothing for htmx to act on
  // (their buttons are plain, see the tile partial), so a message of only tiles already on
  // the page is applied here; anything else (a grid, a status, a tile that is new) goes to
  // htmx as before.
  var parser = document.createElement("template");
  document.addEventListener("htmx:wsBeforeMessage", function (evt) {
    var message = evt.detail && evt.detail.message;
    if (typeof message !== "string" || !/^\s*<article id="ext-/.test(message)) return;
    parser.innerHTML = message;
    var fresh = Array.prototype.slice.call(parser.content.children);
    var updates = [];
    for (var i = 0; i < fresh.length; i++) {
      var tile = fresh[i];
      if (tile.tagName !== "ARTICLE" || !tile.classList.contains("tile")) return;
      var old = document.getElementById(tile.id);
      if (!old || !old.matches("article.tile")) return;
      updates.push([tile, old]);
    }
    evt.preventDefault();
    updates.forEach(function (update) {
      pushed.push({ tile: update[1], wasHidden: update[1].hidden });
      renew(update[1], update[0]);
    });
    afterMessage();
  });

  // The tile on the page takes the new one's attributes and content but stays the same
  // element: a replaced grid item costs the browser the grid's placement again (see
  // bench/README.md, "Tiles in the browser"), and the tile keeps the size content-visibility
  // remembered.
  function renew(tile, fresh) {
    fresh.removeAttribute("hx-swap-oob");
    for (var i = tile.attributes.length - 1; i >= 0; i--) {
      var name = tile.attributes[i].name;
      if (!fresh.hasAttribute(name)) tile.removeAttribute(name);
    }
    for (var j = 0; j < fresh.attributes.length; j++) {
      var attribute = fresh.attributes[j];
      if (tile.getAttribute(attribute.name) !== attribute.value) {
        tile.setAttribute(attribute.name, attribute.value);
      }
    }
    tile.replaceChildren.apply(tile, Array.prototype.slice.call(fresh.childNodes));
  }

  // --- live timers --------------------------------------------------------------------------

  // Server and browser clocks differ; timers count in server time.
  var skew = 0;
  var serverNow = Date.parse(live.dataset.serverNow || "");
  if (!isNaN(serverNow)) skew = serverNow - Date.now();

  function duration(ms) {
    var total = Math.max(0, Math.floor(ms / 1000));
    var h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60), s = total % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  // Text is only written where it changes: a rewritten timer costs the browser a layout.
  // Not live, a timer stops where the page's truth ends and says "at least".
  function tickWithin(root, now) {
    var frozen = freshState !== "live" && freshState !== "waiting";
    var until = frozen && !isNaN(staleSince) ? Math.min(now, staleSince) : now;
    root.querySelectorAll("time[data-since]").forEach(function (el) {
      var since = Date.parse(el.dataset.since);
      if (isNaN(since)) return;
      var text = (frozen ? "≥ " : "") + duration(until - since);
      if (el.textContent !== text) el.textContent = text;
    });
  }
  function tick() {
    tickWithin(document, Date.now() + skew);
  }
  window.setInterval(tick, 1000);
  freshness();

  // --- errors without a message of their own ---------------------------------------------

  // A tile's buttons are plain buttons (see the tile partial): they submit the page's shared
  // form named in data-form with the tile's extension. htmx marks that form as busy while it
  // posts; the button that was pressed is marked here.
  function submitFromTile(button) {
    var form = document.getElementById(button.dataset.form || "");
    if (!form || !form.elements.extension) return;
    form.elements.extension.value = button.value;
    button.classList.add("htmx-request");
    form.addEventListener("htmx:afterRequest", function () {
      button.classList.remove("htmx-request");
    }, { once: true });
    form.requestSubmit();
  }
  document.addEventListener("click", function (evt) {
    var button = evt.target instanceof Element ? evt.target.closest("article.tile button[data-form]") : null;
    if (button) submitFromTile(button);
  });

  function showError(text) {
    var status = document.getElementById("call-status");
    if (!status) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-message";
    toast.setAttribute("role", "alert");
    toast.dataset.final = "";
    var p = document.createElement("p");
    p.className = "message error";
    p.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.dataset.dismiss = "";
    close.setAttribute("aria-label", label("dismiss"));
    close.title = label("dismiss");
    close.textContent = "\u00d7";
    toast.append(p, close);
    status.replaceChildren(toast);
    watchToasts();
  }

  // --- call toasts: a finished call's result and messages fade, and can be closed ---------

  // A finished call says when it expires (data-expires, server time: RESULT_SHOWN after its
  // end); a message without one goes as long after it appeared. The server no longer shows
  // either after a reload past that time.
  var TOAST_LIFETIME = 60000;
  var FADE = 400;
  var toastTimer = null;

  function dismiss(toast) {
    if (!toast || toast.classList.contains("leaving")) return;
    var hadFocus = toast.contains(document.activeElement);
    toast.classList.add("leaving");
    window.setTimeout(function () { toast.remove(); }, FADE);
    if (hadFocus) {
      // Back to where the call came from, not to the top of the page.
      var number = toast.dataset.callee || "";
      var tile = number && document.querySelector('#tiles article.tile[data-number="' + CSS.escape(number) + '"]');
      (tile || document.getElementById("dial-number") || document.body).focus({ preventScroll: !!tile });
    }
  }

  function watchToasts() {
    if (toastTimer !== null) window.clearTimeout(toastTimer);
    toastTimer = null;
    var now = Date.now() + skew;
    var next = Infinity;
    document.querySelectorAll("#call-status .toast[data-final]").forEach(function (toast) {
      if (!toast.dataset.expires) toast.dataset.expires = new Date(now + TOAST_LIFETIME).toISOString();
      var expires = Date.parse(toast.dataset.expires);
      // A toast the user is reading (pointer or focus in it) stays until he leaves it.
      if (toast.matches(":hover, :focus-within")) expires = Math.max(expires, now + 1000);
      if (isNaN(expires) || expires <= now) dismiss(toast);
      else next = Math.min(next, expires);
    });
    if (next !== Infinity) toastTimer = window.setTimeout(watchToasts, Math.min(next - now, 2147483647));
  }
  document.addEventListener("click", function (evt) {
    var button = evt.target instanceof Element ? evt.target.closest("#call-status [data-dismiss]") : null;
    if (button) dismiss(button.closest(".toast"));
  });
  // A new call or step swaps the toasts: look at the new ones.
  document.addEventListener("htmx:afterSettle", function (evt) {
    if (evt.target instanceof Element && evt.target.closest("#call-status, .toasts")) watchToasts();
  });
  document.addEventListener("htmx:oobAfterSwap", function (evt) {
    if (evt.target instanceof Element && evt.target.id === "call-status") watchToasts();
  });
  watchToasts();
  document.addEventListener("htmx:responseError", function (evt) {
    var code = evt.detail.xhr ? evt.detail.xhr.status : 0;
    showError(label("failed").replace("{status}", String(code)));
  });
  document.addEventListener("htmx:sendError", function () {
    showError(label("offline"));
  });

  // --- keyboard -----------------------------------------------------------------------------

  function visibleTiles() {
    return Array.prototype.filter.call(
      document.querySelectorAll("#tiles article.tile"),
      function (tile) { return !tile.closest("[hidden]"); }
    );
  }

  function columns(tile) {
    var grid = tile.parentElement;
    var template = grid ? window.getComputedStyle(grid).gridTemplateColumns : "";
    return template ? template.split(" ").length : 1;
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var target = evt.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (evt.key === "/" && !typing) {
      var search = document.getElementById("q");
      if (search) {
        evt.preventDefault();
        search.focus();
        search.select();
      }
      return;
    }
    if (evt.key === "Escape") {
      var cancel = document.querySelector("#call-status button.cancel");
      if (cancel) {
        evt.preventDefault();
        cancel.click();
      } else if (target && target.closest && target.closest("#call-status .toast")) {
        // Escape in a finished call's toast closes it.
        evt.preventDefault();
        dismiss(target.closest(".toast"));
      }
      return;
    }
    if (!target || !target.matches || !target.matches("article.tile")) return;
    if (evt.key === "Enter") {
      // A wallboard shows, it does not call (no progress or cancel to see there).
      if (document.body.classList.contains("mode-wallboard")) return;
      var call = target.querySelector("button.call");
      if (call) {
        evt.preventDefault();
        call.click();
      }
      return;
    }
    var step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(target), ArrowUp: -columns(target) }[evt.key];
    if (step) {
      var tiles = visibleTiles();
      var next = tiles[tiles.indexOf(target) + step];
      if (next) {
        evt.preventDefault();
        next.focus();
      }
    }
  });

  // --- the own phone rings: notification, ring tone, CRM ---------------------------------

  function prefs() {
    var form = document.getElementById("prefs");
    var crm = form ? form.querySelector("[name=crm_open]") : null;
    return {
      notify: !!(form && form.querySelector("[data-notify]:checked")),
      sound: !!(form && form.querySelector("[data-sound]:checked")),
      crm: crm ? crm.value : "click",
    };
  }

  var audio = null;
  function audioContext() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) return null;
    if (!audio) audio = new Context();
    if (audio.state === "suspended") audio.resume();
    return audio;
  }
  // Browsers allow sound only after the user interacted with the page.
  function unlock() {
    if (prefs().sound) audioContext();
  }
  document.addEventListener("pointerdown", unlock, { once: true });
  document.addEventListener("keydown", unlock, { once: true });

  // [frequency Hz, start s, length s]: one ring; VIPs get a rising triple, externals a double.
  var TONES = {
    internal: [[440, 0, 0.35], [440, 0.45, 0.35]],
    external: [[523, 0, 0.25], [659, 0.3, 0.25], [523, 0.6, 0.25]],
    vip: [[659, 0, 0.18], [784, 0.2, 0.18], [988, 0.4, 0.18], [1319, 0.6, 0.35]],
    unknown: [[494, 0, 0.4]],
  };
  function ring(kind) {
    var ctx = audioContext();
    if (!ctx) return;
    var start = ctx.currentTime + 0.02;
    (TONES[kind] || TONES.unknown).forEach(function (tone) {
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.type = "sine";
      osc.frequency.value = tone[0];
      gain.gain.setValueAtTime(0.0001, start + tone[1]);
      gain.gain.exponentialRampToValueAtTime(0.25, start + tone[1] + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, start + tone[1] + tone[2]);
      osc.connect(gain).connect(ctx.destination);
      osc.start(start + tone[1]);
      osc.stop(start + tone[1] + tone[2] + 0.05);
    });
  }
  var ringing = null;
  function startRinging(kind) {
    stopRinging();
    var rings = 0;
    ring(kind);
    ringing = window.setInterval(function () {
      // At most half a minute: a missed call must not ring on in an open tab.
      if (++rings >= 15) stopRinging();
      else ring(kind);
    }, 2000);
  }
  function stopRinging() {
    if (ringing !== null) window.clearInterval(ringing);
    ringing = null;
  }

  function openCrm(url) {
    if (url) window.open(url, "_blank", "noopener");
  }

  function notify(el) {
    if (!("Notification" in window) || Notification.permission !== "granted") return;
    var caller = [el.dataset.name, el.dataset.number].filter(Boolean).join(" · ");
    var note = new Notification(label("ringing"), {
      body: caller || label("unknown-caller"),
      tag: "ctiboard-ring",
    });
    note.onclick = function () {
      window.focus();
      openCrm(el.dataset.crm);
      note.close();
    };
  }

  function ringState() {
    var el = document.getElementById("incoming");
    return { el: el, state: el ? el.dataset.state || "" : "", key: el ? el.dataset.key || "" : "" };
  }
  // What the page showed when it loaded counts as known: a reload does not ring again.
  var last = ringState();

  function incoming() {
    var now = ringState();
    if (!now.el) return;
    var p = prefs();
    if (now.state === "ringing" && (last.state !== "ringing" || last.key !== now.key)) {
      if (p.notify) notify(now.el);
      if (p.sound) startRinging(now.el.dataset.kind);
      if (p.crm === "ring") openCrm(now.el.dataset.crm);
    }
    if (now.state === "answered" && last.state === "ringing" && p.crm === "answer") {
      openCrm(now.el.dataset.crm);
    }
    if (now.state !== "ringing") stopRinging();
    last = now;
  }

  document.addEventListener("change", function (evt) {
    var target = evt.target;
    if (target && target.matches && target.matches("[data-notify]") && target.checked &&
        "Notification" in window && Notification.permission === "default") {
      Notification.requestPermission();
    }
    if (target && target.matches && target.matches("[data-sound]") && target.checked) audioContext();
  });
  document.addEventListener("click", function (evt) {
    var button = evt.target && evt.target.closest ? evt.target.closest("[data-tone]") : null;
    if (button) ring(button.getAttribute("data-tone"));
  });
})();
