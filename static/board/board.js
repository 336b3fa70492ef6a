// Connection indicator for the board's WebSocket (htmx ws extension events).
(function () {
  "use strict";
  var labels = {
    live: document.documentElement.lang === "de" ? "Live" : "Live",
    reconnecting: document.documentElement.lang === "de" ? "Verbindung unterbrochen – verbinde neu…" : "Connection lost – reconnecting…",
    denied: document.documentElement.lang === "de" ? "Kein Zugriff mehr – bitte neu laden" : "Access ended – please reload",
  };

  function setState(state) {
    var el = document.getElementById("socket-status");
    if (!el) return;
    el.dataset.state = state;
    el.textContent = labels[state];
    // Tiles shown while the socket is down may be stale; say so rather than pretend.
    var tiles = document.getElementById("tiles");
    if (tiles) tiles.classList.toggle("stale", state !== "live");
  }

  document.addEventListener("htmx:wsOpen", function () { setState("live"); });
  document.addEventListener("htmx:wsClose", function (evt) {
    var code = evt.detail && evt.detail.event ? evt.detail.event.code : 0;
    setState(code === 4403 ? "denied" : "reconnecting");
  });
  document.addEventListener("htmx:wsError", function () { setState("reconnecting"); });
  // After a swap the grid element is new: keep the stale marker consistent.
  document.addEventListener("htmx:wsAfterMessage", function () {
    var el = document.getElementById("socket-status");
    if (el) setState(el.dataset.state === "connecting" ? "live" : el.dataset.state);
  });
})();
