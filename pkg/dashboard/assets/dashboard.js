// cvmanager dashboard: filters, sorting, keyboard navigation and refresh
// without a reload. The page works without this script (the server renders
// the filtered, sorted table from the query string); with it, the same
// query string is kept in the URL and the rows come from the JSON view.
// Every value is set with textContent or setAttribute, never parsed as HTML.
"use strict";
(function () {
  var table = document.getElementById("workloads");
  if (!table) { return; }
  var STATES = ["Progressing", "Failed", "Held", "Drifted", "Success", "Pending"];
  var form = document.getElementById("filters");
  var body = table.tBodies[0];
  var rows = null; // every row of the namespace, from the JSON view
  var view = readURL();
  var fresh = true; // the rows in the page are the server's, just rendered

  function readURL() {
    var q = new URLSearchParams(location.search);
    return { namespace: q.get("namespace") || "", q: q.get("q") || "", state: q.get("state") || "",
      sort: q.get("sort") || "", desc: q.get("order") === "desc" };
  }

  function query(v) {
    var q = new URLSearchParams();
    q.set("format", "html");
    if (v.namespace) { q.set("namespace", v.namespace); }
    if (v.q) { q.set("q", v.q); }
    if (v.state) { q.set("state", v.state); }
    if (v.sort) { q.set("sort", v.sort); if (v.desc) { q.set("order", "desc"); } }
    return "?" + q.toString();
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }

  function ago(iso) {
    if (!iso) { return "never"; }
    var s = (Date.now() - Date.parse(iso)) / 1000;
    if (s < 60) { return "just now"; }
    var n = s < 3600 ? [Math.floor(s / 60), "minute"] : s < 172800 ? [Math.floor(s / 3600), "hour"] : [Math.floor(s / 86400), "day"];
    return n[0] + " " + n[1] + (n[0] === 1 ? "" : "s") + " ago";
  }

  function running(iso) {
    if (!iso) { return "-"; }
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    return (h ? h + "h" : "") + (h || m ? m + "m" : "") + (s % 60) + "s";
  }

  function link(cls, href, text) {
    var a = el("a", cls, text);
    a.setAttribute("href", href);
    return a;
  }

  function details(td, r) {
    if (r.State === "Progressing") {
      var step = el("div", "step");
      step.append(r.Step ? "step " : "starting", r.Step ? el("b", "", r.Step) : "", " · running " + running(r.RolloutStart));
      td.append(step);
    }
    if (r.LastError) {
      var err = el("div", "error");
      if (r.Reason) { err.append(el("b", "", r.Reason), ": "); }
      err.append(r.LastError);
      td.append(err);
    }
    if (r.ReleaseCommand) {
      var held = el("div", "held");
      held.append("holds ", el("code", "", r.AvailableVersion || ""));
      if (r.HeldUntil) {
        var until = el("time", "", r.HeldUntil);
        until.setAttribute("datetime", r.HeldUntil);
        held.append(" until ", until);
      }
      held.append(" · release with ", el("code", "cmd", r.ReleaseCommand));
      td.append(held);
    }
    if (r.Drifted) {
      var drift = el("div", "drift");
      drift.append("runs ", el("code", "", r.Image), ", not the CV's version");
      td.append(drift);
    }
    if (r.Signer) { td.append(el("div", "meta", "signed by " + r.Signer)); }
    var p = r.Provenance;
    if (p) {
      var web = function (u) { return /^https?:\/\//i.test(u || ""); };
      var prov = el("div", "meta provenance", "built from ");
      if (p.Revision) {
        var rev = el("code", "", /^[0-9a-f]{12,}$/i.test(p.Revision) ? p.Revision.slice(0, 7) : p.Revision);
        rev.title = p.Revision;
        prov.append(rev);
      } else { prov.append("an unnamed revision"); }
      if (web(p.Source)) { prov.append(" · ", link("", p.Source, "source")); } else if (p.Source) { prov.append(" · ", el("code", "", p.Source)); }
      if (web(p.CILink)) { prov.append(" · ", link("", p.CILink, "CI")); }
      td.append(prov);
    }
  }

  function rowFor(r) {
    var tr = el("tr");
    tr.tabIndex = -1;
    tr.setAttribute("role", "row");
    tr.dataset.state = r.State; tr.dataset.namespace = r.Namespace; tr.dataset.name = r.Name;
    var ns = "?namespace=" + encodeURIComponent(r.Namespace) + "&format=html";
    var cells = [];
    for (var i = 0; i < 8; i++) { cells.push(el("td")); cells[i].setAttribute("role", "cell"); tr.append(cells[i]); }
    cells[0].append(el("span", "status status-" + String(r.State).toLowerCase(), r.State));
    cells[1].textContent = r.Namespace;
    cells[2].append(r.Type + "/", link("history", "/v1/cv/workloads/" + encodeURIComponent(r.Name) + ns, r.Name), el("br"), el("code", "", r.Container));
    cells[3].append(link("cv-history", "/v1/cv/containerversions/" + encodeURIComponent(r.CV) + "/history" + ns, r.CV));
    cells[4].append(el("code", "", r.Tag));
    var digest = el("code", "", (r.Digest || "").replace(/^sha256:/, "").slice(0, 12));
    digest.title = r.Digest || "";
    cells[5].append(el("code", "", r.Version), " ", digest);
    details(cells[5], r);
    cells[6].textContent = r.AvailablePods + "/" + r.DesiredPods;
    cells[7].textContent = ago(r.LastUpdate);
    cells[7].title = r.LastUpdate || "";
    return tr;
  }

  var keys = {
    state: function (r) { return STATES.indexOf(r.State); }, namespace: function (r) { return r.Namespace; },
    name: function (r) { return r.Name; }, cv: function (r) { return r.CV; }, tag: function (r) { return r.Tag; },
    version: function (r) { return r.Version; }, pods: function (r) { return r.AvailablePods; },
    updated: function (r) { return r.LastUpdate ? Date.parse(r.LastUpdate) : 0; }
  };

  function matches(r, text) {
    if (!text) { return true; }
    return [r.Namespace, r.Name, r.CV, r.Tag, r.Version, r.Image, r.Reason, r.LastError, r.State]
      .some(function (s) { return String(s || "").toLowerCase().indexOf(text) >= 0; });
  }

  // render shows rows through the current view: text filter, counts,
  // state filter, sort; the URL follows so the view can be bookmarked.
  function render() {
    var text = view.q.toLowerCase(), counts = {}, kept = [];
    rows.forEach(function (r) {
      if (!matches(r, text)) { return; }
      counts[r.State] = (counts[r.State] || 0) + 1;
      if (!view.state || r.State === view.state) { kept.push(r); }
    });
    var key = keys[view.sort];
    if (key) {
      kept.sort(function (a, b) {
        var x = key(a), y = key(b), c = x < y ? -1 : x > y ? 1 : 0;
        return view.desc ? -c : c;
      });
    }
    if (!sameRows(kept)) {
      var frag = document.createDocumentFragment();
      kept.forEach(function (r) { frag.append(rowFor(r)); });
      body.replaceChildren(frag);
    }
    fresh = false;
    renderChrome(counts, kept.length);
    history.replaceState(null, "", query(view));
    performance.mark("cv-rows-rendered");
  }

  // sameRows: on the first load the server has just rendered this very
  // view; rebuilding a thousand identical rows would only cost time.
  function sameRows(kept) {
    if (!fresh || kept.length !== body.rows.length) { return false; }
    return kept.every(function (r, i) {
      var d = body.rows[i].dataset;
      return d.namespace === r.Namespace && d.name === r.Name && d.state === r.State;
    });
  }

  function renderChrome(counts, shown) {
    document.querySelectorAll("#counts a").forEach(function (a) {
      var s = a.dataset.state, v = Object.assign({}, view, { state: view.state === s ? "" : s });
      a.firstChild.textContent = counts[s] || 0;
      a.setAttribute("href", query(v));
      if (view.state === s) { a.setAttribute("aria-current", "true"); } else { a.removeAttribute("aria-current"); }
    });
    document.querySelectorAll("#workloads th").forEach(function (th) {
      var k = th.dataset.key;
      if (view.sort === k) { th.setAttribute("aria-sort", view.desc ? "descending" : "ascending"); } else { th.removeAttribute("aria-sort"); }
      th.firstChild.setAttribute("href", query(Object.assign({}, view, { sort: k, desc: view.sort === k && !view.desc })));
    });
    document.getElementById("shown").textContent = shown;
    document.getElementById("total").textContent = rows.length;
    document.getElementById("empty").hidden = shown > 0;
  }

  // refresh fetches the JSON rows of the namespace and re-renders in place:
  // filters, focus and the scroll position stay.
  function refresh() {
    var url = "/v1/cv/workloads?format=json" + (view.namespace ? "&namespace=" + encodeURIComponent(view.namespace) : "");
    // No extra headers: the first call must match the page's preload to use it.
    return fetch(url, { credentials: "same-origin" })
      .then(function (resp) { if (!resp.ok) { throw new Error(resp.status + " " + resp.statusText); } return resp.json(); })
      .then(function (data) {
        var x = window.scrollX, y = window.scrollY, focused = document.activeElement && document.activeElement.dataset;
        var focusKey = focused && focused.name ? focused.namespace + "/" + focused.name : "";
        rows = data;
        render();
        window.scrollTo(x, y);
        if (focusKey) { focusRow(focusKey); }
        document.getElementById("refreshed").textContent = "updated " + new Date().toLocaleTimeString();
        document.body.dataset.refreshed = String((Number(document.body.dataset.refreshed) || 0) + 1);
      })
      .catch(function (e) { document.getElementById("refreshed").textContent = "refresh failed: " + e.message; });
  }

  function focusRow(key) {
    Array.prototype.some.call(body.rows, function (tr) {
      if (tr.dataset.namespace + "/" + tr.dataset.name === key) { tr.focus({ preventScroll: true }); return true; }
      return false;
    });
  }

  function wire() {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var ns = form.elements.namespace.value.trim();
      if (ns !== view.namespace) { view.namespace = ns; refresh(); return; }
      render();
    });
    form.elements.q.addEventListener("input", function () { view.q = this.value.trim(); if (rows) { render(); } });
    form.elements.state.addEventListener("change", function () { view.state = this.value; if (rows) { render(); } });
    document.getElementById("counts").addEventListener("click", function (e) {
      var a = e.target.closest("a");
      if (!a || !rows) { return; }
      e.preventDefault();
      view.state = view.state === a.dataset.state ? "" : a.dataset.state;
      form.elements.state.value = view.state;
      render();
    });
    table.tHead.addEventListener("click", function (e) {
      var th = e.target.closest("th");
      if (!th || !rows) { return; }
      e.preventDefault();
      view.desc = view.sort === th.dataset.key && !view.desc;
      view.sort = th.dataset.key;
      render();
    });
    document.addEventListener("keydown", keyboard);
  }

  // keyboard: "/" focuses the search box; arrows or j/k move between rows;
  // Enter opens the focused row's history.
  function keyboard(e) {
    var t = e.target;
    if (t.tagName === "INPUT" || t.tagName === "SELECT" || e.ctrlKey || e.metaKey || e.altKey) { return; }
    if (e.key === "/") { e.preventDefault(); form.elements.q.focus(); return; }
    var list = body.rows, i = Array.prototype.indexOf.call(list, t);
    if (e.key === "ArrowDown" || e.key === "j") { i = Math.min(list.length - 1, i + 1); }
    else if (e.key === "ArrowUp" || e.key === "k") { i = Math.max(0, i - 1); }
    else if (e.key === "Enter" && i >= 0) { list[i].querySelector("a.history").click(); return; }
    else { return; }
    e.preventDefault();
    if (list[i]) { list[i].focus(); }
  }

  wire();
  refresh();
  setInterval(refresh, 10000);
}());
