// The dashboard's one script (no inline script: CSP). Three jobs (and confirmations):
// - charts: a readout of the bin under the pointer, or under the arrow keys when a chart has focus;
// - live: a server-sent event stream (<body data-live-url>: `/live` under the prefix the
//   dashboard is served at) updates counts, job states and progress in place,
//   and the page's <main> is re-fetched only when the counts move (and slowly otherwise, for
//   times like "12s ago"), keeping scroll (the page's and that of boxes marked data-keep-scroll),
//   focus, ticked boxes, open <details> and a text selection;
// - without EventSource (or when the stream keeps failing) the page's <main> is re-fetched every
//   few seconds instead.
(function () {
  "use strict";
  var seconds = Math.max(1, parseInt(document.body.dataset.refresh || "5", 10) || 5);
  var busy = false;
  // Every URL comes from the page (the server writes them under its ASGI root_path), never a
  // hard-coded absolute path: the dashboard may be mounted under a prefix of another app.
  var liveUrl = document.body.dataset.liveUrl || "live";
  function onLoginPage() { return document.getElementById("login-form") !== null; }

  // `?done=` carries a confirmation ("Sent back to pending.") to be shown once: drop it from
  // the address, so neither a refresh nor a reload shows it again.
  var here = new URL(window.location.href);
  if (here.searchParams.has("done")) {
    here.searchParams.delete("done");
    window.history.replaceState(window.history.state, "", here.pathname + here.search + here.hash);
  }

  // -- charts ------------------------------------------------------------------------------
  function readoutOf(svg) {
    var fig = svg.closest("figure.chart");
    return fig ? fig.querySelector(".readout") : null;
  }

  function show(svg, hit) {
    var out = readoutOf(svg);
    if (!out) return;
    Array.prototype.forEach.call(svg.querySelectorAll(".hits rect.on"), function (r) { r.classList.remove("on"); });
    if (!hit) { out.textContent = out.dataset.unit || out.textContent; return; }
    if (!out.dataset.unit) out.dataset.unit = out.textContent;
    hit.classList.add("on");
    out.textContent = hit.getAttribute("data-readout");
    svg.dataset.bin = String(Array.prototype.indexOf.call(hit.parentNode.children, hit));
  }

  document.addEventListener("mouseover", function (e) {
    var hit = e.target.closest && e.target.closest(".chart .hits rect");
    if (hit) show(hit.ownerSVGElement, hit);
  });
  document.addEventListener("mouseout", function (e) {
    var svg = e.target.closest && e.target.closest(".chart svg");
    if (svg && !(e.relatedTarget && svg.contains(e.relatedTarget)) && document.activeElement !== svg) show(svg, null);
  });
  document.addEventListener("focusin", function (e) {
    var svg = e.target.closest && e.target.closest(".chart svg");
    if (!svg) return;
    var hits = svg.querySelectorAll(".hits rect");
    if (hits.length) show(svg, hits[hits.length - 1]);
  });
  document.addEventListener("focusout", function (e) {
    var svg = e.target.closest && e.target.closest(".chart svg");
    if (svg) show(svg, null);
  });
  document.addEventListener("keydown", function (e) {
    var svg = e.target.closest && e.target.closest(".chart svg");
    if (!svg) return;
    var hits = svg.querySelectorAll(".hits rect");
    if (!hits.length) return;
    var i = parseInt(svg.dataset.bin || String(hits.length - 1), 10);
    var moves = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: hits.length - 1 };
    if (!(e.key in moves)) return;
    e.preventDefault();
    show(svg, hits[Math.max(0, Math.min(hits.length - 1, moves[e.key]))]);
  });

  // -- re-fetching <main> ----------------------------------------------------------------------
  function userIsBusy() {
    var el = document.activeElement;
    if (el && /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName) && el.type !== "checkbox") return true;
    var sel = window.getSelection && window.getSelection();
    var main = document.getElementById("content");
    if (sel && !sel.isCollapsed && main && main.contains(sel.anchorNode)) return true;  // keep a selection
    return document.querySelector(".chart .hits rect.on") !== null;  // someone is reading a chart
  }

  function keyOf(el) {
    if (el.id) return "#" + el.id;
    if (el.name) return el.tagName + "[name=" + el.name + "][value=" + el.value + "]";
    var a = el.getAttribute && (el.getAttribute("href") || el.getAttribute("data-action"));
    return a ? el.tagName + ":" + a + ":" + el.textContent : null;
  }

  function refresh() {
    if (busy || document.visibilityState !== "visible" || userIsBusy()) return;
    var main = document.getElementById("content");
    if (!main || onLoginPage()) return;
    busy = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Taskyard-Refresh": "1" } })
      .then(function (response) {
        if (response.redirected || !response.ok) { window.location.reload(); return null; }
        return response.text();
      })
      .then(function (html) {
        if (html === null || html === undefined || userIsBusy()) return;
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("content");
        if (!fresh) return;
        var x = window.scrollX, y = window.scrollY;
        var inner = Array.prototype.map.call(main.querySelectorAll("[data-keep-scroll][id]"), function (el) {
          return [el.id, el.scrollLeft, el.scrollTop];
        });
        var open = Array.prototype.map.call(main.querySelectorAll("details[open] summary"), function (s) { return s.textContent; });
        var ticked = Array.prototype.map.call(main.querySelectorAll("input[type=checkbox]"), function (c) { return [keyOf(c), c.checked]; });
        var focused = document.activeElement && main.contains(document.activeElement) ? keyOf(document.activeElement) : null;
        main.replaceChildren.apply(main, Array.prototype.slice.call(fresh.childNodes).map(function (n) { return document.importNode(n, true); }));
        Array.prototype.forEach.call(main.querySelectorAll("details summary"), function (s) {
          if (open.indexOf(s.textContent) >= 0) s.parentNode.setAttribute("open", "");
        });
        var boxes = {};
        Array.prototype.forEach.call(main.querySelectorAll("input[type=checkbox]"), function (c) { boxes[keyOf(c)] = c; });
        ticked.forEach(function (t) { if (boxes[t[0]]) boxes[t[0]].checked = t[1]; });
        if (focused) {
          var again = Array.prototype.find.call(main.querySelectorAll("a, button, input, select, svg[tabindex], [tabindex]"),
            function (el) { return keyOf(el) === focused; });
          if (again) again.focus({ preventScroll: true });
        }
        inner.forEach(function (k) {
          var el = document.getElementById(k[0]);
          if (el) { el.scrollLeft = k[1]; el.scrollTop = k[2]; }
        });
        window.scrollTo(x, y);
        document.body.dataset.refreshedAt = String(Date.now());
        follow();
      })
      .catch(function () { /* the server may be restarting: try again next time */ })
      .then(function () { busy = false; });
  }

  // -- live updates ------------------------------------------------------------------------------
  var source = null, following = "", lastTotals = null, failures = 0, polling = null;

  function jobIds() {
    var ids = Array.prototype.map.call(document.querySelectorAll("[data-job-id]"), function (el) { return el.getAttribute("data-job-id"); });
    return ids.filter(function (id, i) { return ids.indexOf(id) === i; }).slice(0, 100).sort().join(",");
  }

  function apply(snap) {
    Object.keys(snap.totals || {}).forEach(function (status) {
      Array.prototype.forEach.call(document.querySelectorAll("[data-live-count='" + status + "']"), function (el) {
        el.textContent = String(snap.totals[status]);
      });
    });
    Object.keys(snap.jobs || {}).forEach(function (id) {
      var job = snap.jobs[id];
      Array.prototype.forEach.call(document.querySelectorAll("[data-job-id='" + id + "']"), function (row) {
        if (!job) return;
        row.setAttribute("data-status", job.status);
        Array.prototype.forEach.call(row.querySelectorAll("[data-live='status']"), function (el) {
          el.textContent = job.status;
          el.className = el.className.replace(/\bst-\S+/, "st-" + job.status);
        });
        Array.prototype.forEach.call(row.querySelectorAll("[data-live='status-text']"), function (el) { el.textContent = job.status; });
        Array.prototype.forEach.call(row.querySelectorAll("[data-live='attempt']"), function (el) { el.textContent = String(job.attempt); });
        var p = job.progress;
        Array.prototype.forEach.call(row.querySelectorAll("progress[data-live='progress']"), function (el) {
          el.hidden = !p;
          if (p) el.value = p.percent;
        });
        Array.prototype.forEach.call(row.querySelectorAll("[data-live='progress-text']"), function (el) {
          el.textContent = p ? (Math.round(p.percent * 10) / 10) + "%" + (p.message ? " — " + p.message : "") : "";
        });
      });
    });
    var totals = JSON.stringify(snap.totals);
    if (lastTotals !== null && totals !== lastTotals) refresh();
    lastTotals = totals;
    document.body.dataset.liveAt = String(Date.now());
  }

  function poll() {
    if (polling === null) polling = window.setInterval(refresh, seconds * 1000);
  }

  function follow() {
    if (!window.EventSource || failures > 5 || onLoginPage()) { poll(); return; }
    var ids = jobIds();
    if (source && ids === following) return;
    if (source) source.close();
    following = ids;
    source = new EventSource(liveUrl + (ids ? "?jobs=" + encodeURIComponent(ids) : ""));
    source.addEventListener("open", function () { document.body.dataset.live = "on"; failures = 0; });
    source.addEventListener("snapshot", function (e) { apply(JSON.parse(e.data)); });
    source.addEventListener("error", function () {
      document.body.dataset.live = "off";
      failures += 1;
      if (failures > 5) { source.close(); source = null; poll(); }
    });
  }

  // An action form with `data-confirm` (cancelling a whole workflow) asks first.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.dataset && form.dataset.confirm && !window.confirm(form.dataset.confirm)) e.preventDefault();
  });

  follow();
  // Relative times ("12s ago") and states the counts do not show still move: a slow refresh.
  window.setInterval(refresh, seconds * 6000);
})();
