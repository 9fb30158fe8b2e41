// The jobs views' selection and bulk actions: checkboxes, "this page", "every job matching
// this view", and a confirmation naming the count before a bulk retry, cancel or delete.
// The selection survives the page's periodic refresh (dashboard.js swaps #content). No
// inline script (CSP); the form posts with its CSRF token like every other dashboard form.
(function () {
  "use strict";
  var selected = new Set();
  var matching = false;

  function form() { return document.getElementById("bulk"); }
  function boxes() {
    var f = form();
    return f ? Array.prototype.slice.call(f.querySelectorAll("input[name=ids]")) : [];
  }

  function show() {
    var f = form();
    if (!f) return;
    var all = boxes();
    all.forEach(function (b) { b.checked = matching || selected.has(b.value); b.disabled = matching; });
    var page = document.getElementById("select-page");
    if (page) { page.checked = all.length > 0 && all.every(function (b) { return b.checked; }); page.disabled = matching; }
    var every = document.getElementById("select-matching");
    if (every) every.checked = matching;
    f.elements.scope.value = matching ? "filter" : "ids";
    var label = document.getElementById("selected-count");
    var text = matching ? "every matching job" : (selected.size ? selected.size + " selected" : "none selected");
    if (label && label.textContent !== text) label.textContent = text;  // no change, no mutation
  }

  document.addEventListener("change", function (event) {
    var el = event.target;
    if (!form() || !form().contains(el)) return;
    if (el.id === "select-matching") {
      matching = el.checked;
    } else if (el.id === "select-page") {
      boxes().forEach(function (b) { if (el.checked) selected.add(b.value); else selected.delete(b.value); });
    } else if (el.name === "ids") {
      if (el.checked) selected.add(el.value); else selected.delete(el.value);
    } else {
      return;
    }
    show();
  });

  function send(f, action) {
    var hidden = document.createElement("input");
    hidden.type = "hidden"; hidden.name = "action"; hidden.value = action;
    f.appendChild(hidden);
    if (!matching) {
      // Ids selected on other pages (or before a refresh) go along too.
      var shown = new Set(boxes().map(function (b) { return b.value; }));
      selected.forEach(function (id) {
        if (shown.has(id)) return;
        var extra = document.createElement("input");
        extra.type = "hidden"; extra.name = "ids"; extra.value = id;
        f.appendChild(extra);
      });
    }
    f.submit();
  }

  document.addEventListener("submit", function (event) {
    var f = event.target;
    if (f.id !== "bulk") return;
    event.preventDefault();
    var action = event.submitter ? event.submitter.value : "";
    if (!action) return;
    if (!matching) {
      if (!selected.size) { window.alert("Select jobs first, or every job matching this view."); return; }
      if (window.confirm(action + " " + selected.size + " selected job" + (selected.size === 1 ? "" : "s") + "?")) send(f, action);
      return;
    }
    fetch(f.dataset.countUrl, { credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (body) {
        var n = body.count + (body.more ? "+" : "");
        var more = body.more ? " (this many per submit; submit again for the rest)" : "";
        if (window.confirm(action + " " + n + " jobs matching this view?" + more)) send(f, action);
      });
  });

  // The periodic refresh replaces the table: check the same boxes again.
  new MutationObserver(function () { if (form()) show(); })
    .observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", show);
})();
