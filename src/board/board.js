// Keeps the board live: on each change the server reports (server-sent
// events off the store's change feed), fetch this page's <main> again and
// swap it in, keeping the scroll position and what has focus.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var busy = false, again = false;
  function say(text, off) {
    if (!live) return;
    live.textContent = text;
    live.className = off ? "live off" : "live";
  }
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    var url = location.pathname + (location.search ? location.search + "&" : "?") + "part=main";
    fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(r.status);
      return r.text();
    }).then(function (html) {
      var main = document.getElementById("main");
      var focused = document.activeElement && document.activeElement.id;
      var x = window.scrollX, y = window.scrollY;
      main.innerHTML = html;
      window.scrollTo(x, y);
      if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
      document.body.setAttribute("data-updated", String(Date.now()));
      say("live, updated " + new Date().toLocaleTimeString());
    }).catch(function () { say("live (update failed)", true); }).then(function () {
      busy = false;
      if (again) { again = false; refresh(); }
    });
  }
  if (!window.EventSource) { say("not live: reload to update", true); return; }
  var cursor = document.body.getAttribute("data-cursor") || "";
  var events = new EventSource("/events?cursor=" + encodeURIComponent(cursor));
  events.addEventListener("change", function (e) {
    document.body.setAttribute("data-cursor", e.data);
    refresh();
  });
  events.onopen = function () { say("live"); };
  events.onerror = function () { say("reconnecting…", true); };
})();
