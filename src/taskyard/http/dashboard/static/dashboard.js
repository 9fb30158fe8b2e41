// Keeps a dashboard page fresh: re-fetches it every few seconds while it is visible and the
// user is not busy with a form, and swaps in the new <main>. No inline script (CSP).
(function () {
  "use strict";
  var seconds = Math.max(1, parseInt(document.body.dataset.refresh || "5", 10) || 5);
  var busy = false;

  // `?done=` carries a confirmation ("Sent back to pending.") to be shown once: drop it from
  // the address, so neither the refresh below nor a reload shows it again.
  var here = new URL(window.location.href);
  if (here.searchParams.has("done")) {
    here.searchParams.delete("done");
    window.history.replaceState(window.history.state, "", here.pathname + here.search + here.hash);
  }

  function userIsBusy() {
    var el = document.activeElement;
    if (el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName)) return true;
    return false;
  }

  function refresh() {
    if (busy || document.visibilityState !== "visible" || userIsBusy()) return;
    var main = document.getElementById("content");
    if (!main || document.querySelector("form[action='/login']")) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Taskyard-Refresh": "1" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { window.location.reload(); return null; }
        return response.text();
      })
      .then(function (html) {
        if (html === null || html === undefined) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("content");
        if (!fresh) return;
        // Keep open <details> open across refreshes.
        var open = Array.prototype.map.call(main.querySelectorAll("details[open] summary"), function (s) { return s.textContent; });
        main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.importNode(n, true); }));
        Array.prototype.forEach.call(main.querySelectorAll("details summary"), function (s) {
          if (open.indexOf(s.textContent) >= 0) s.parentNode.setAttribute("open", "");
        });
        document.body.dataset.refreshedAt = String(Date.now());
      })
      .catch(function () { /* the server may be restarting: try again next time */ })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, seconds * 1000);
})();
