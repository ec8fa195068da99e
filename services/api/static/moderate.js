// The moderator screen. Every piece of comment data reaches the page through textContent or
// attributes of elements built here; nothing is ever parsed as HTML.
(function () {
  "use strict";

  var KEY_STORE = "triage.moderatorKey";
  var POLL_MS = 4000;
  var LIMIT = 100;
  var STATUS_LABEL = { held: "Held", reported: "Reported", rejected: "Rejected", approved: "Approved",
                       pending: "Pending" };
  var DONE_LABEL = { approve: "Approved", reject: "Rejected", hold: "Held" };

  var state = {
    status: "held",
    category: "",
    items: [],
    signature: null,
    loaded: false,
    selectedId: null,
    detail: null,
    busy: false,
    timer: null,
    offline: false,
  };

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (name) {
        var value = attrs[name];
        if (value === null || value === undefined || value === false) return;
        if (name === "text") node.textContent = String(value);
        else if (name === "className") node.className = value;
        else node.setAttribute(name, value === true ? "" : String(value));
      });
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  // -- messages (one aria-live region) ---------------------------------------------------------
  function say(text, kind) {
    var box = $("messages");
    box.className = "messages" + (kind ? " " + kind : "");
    box.replaceChildren();
    if (!text) return;
    if (kind === "error") box.appendChild(el("strong", { text: "Problem: " }));
    box.appendChild(document.createTextNode(text));
  }

  // -- the key and the API ---------------------------------------------------------------------
  function getKey() { return window.sessionStorage.getItem(KEY_STORE); }

  function AuthLost() { this.name = "AuthLost"; }

  function api(method, path, body, headers) {
    var key = getKey();
    if (!key) return Promise.reject(new AuthLost());
    var h = { "Authorization": "Bearer " + key, "Accept": "application/json" };
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    var init = { method: method, headers: h, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      h["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(path, init).then(function (resp) {
      return resp.text().then(function (raw) {
        var data = null;
        try { data = raw ? JSON.parse(raw) : null; } catch (e) { data = null; }
        if (resp.status === 401) {
          signOut("Your key was not accepted (unknown, revoked or missing). Sign in again.");
          throw new AuthLost();
        }
        return { status: resp.status, ok: resp.ok, data: data };
      });
    });
  }

  function problemText(res) {
    var d = res.data || {};
    return (d.detail || d.title || "The server answered " + res.status) + "";
  }

  // -- sign in / out ---------------------------------------------------------------------------
  function showSignedIn(yes) {
    $("signin").hidden = yes;
    $("workspace").hidden = !yes;
    $("who").hidden = !yes;
    $("who-text").textContent = yes ? "Signed in" : "";
  }

  function signIn(event) {
    event.preventDefault();
    var input = $("key");
    var key = input.value.trim();
    input.value = "";
    if (!key) { say("Type your moderator key.", "error"); input.focus(); return; }
    window.sessionStorage.setItem(KEY_STORE, key);
    api("GET", queuePath()).then(function (res) {
      if (res.status === 403) { signOut("That key may not moderate."); return; }
      if (!res.ok) { signOut(problemText(res)); return; }
      showSignedIn(true);
      say("Signed in.");
      applyQueue(res.data, false);
      startPolling();
      var first = document.querySelector(".queue-item");
      (first || $("detail")).focus();
    }).catch(handleError);
  }

  function signOut(message) {
    window.sessionStorage.removeItem(KEY_STORE);
    stopPolling();
    state.items = []; state.signature = null; state.loaded = false;
    state.selectedId = null; state.detail = null;
    $("queue-list").replaceChildren();
    renderDetail();
    showSignedIn(false);
    say(message || "Signed out.", message ? "error" : "");
    $("key").focus();
  }

  function handleError(err) {
    if (err instanceof AuthLost) return;
    say("Could not reach the server (" + (err && err.message ? err.message : err) + ").", "error");
  }

  // -- the queue -------------------------------------------------------------------------------
  function queuePath() {
    var q = new URLSearchParams({ status: state.status, limit: String(LIMIT) });
    if (state.category) q.set("category", state.category);
    return "/v1/moderation/queue?" + q.toString();
  }

  function refreshQueue(quiet) {
    return api("GET", queuePath()).then(function (res) {
      if (!res.ok) { say(problemText(res), "error"); return; }
      if (state.offline) { state.offline = false; say("Connected again."); }
      applyQueue(res.data, quiet);
    }).catch(function (err) {
      if (err instanceof AuthLost) return;
      if (quiet) {
        if (!state.offline) say("Lost contact with the server; still trying.", "error");
        state.offline = true;
        return;
      }
      handleError(err);
    });
  }

  function applyQueue(data, announceNew) {
    var items = (data && data.items) || [];
    var before = {};
    state.items.forEach(function (it) { before[it.id] = it; });
    var fresh = state.loaded ? items.filter(function (it) { return !before[it.id]; }) : [];
    var oldSelected = state.selectedId ? before[state.selectedId] : null;
    state.items = items;
    state.loaded = true;
    $("queue-more").hidden = !(data && data.next_cursor);
    var signature = items.map(function (it) { return it.id + ":" + it.version; }).join(",");
    if (signature !== state.signature) {
      state.signature = signature;
      renderQueue();
    }
    if (announceNew && fresh.length) {
      var urgent = fresh.filter(function (it) { return it.priority === "urgent"; }).length;
      say(fresh.length + " new comment" + (fresh.length === 1 ? "" : "s") + " in the queue" +
          (urgent ? ", " + urgent + " urgent." : "."));
    }
    var current = findItem(state.selectedId);
    if (state.selectedId && !current && oldSelected && announceNew) {
      say("The selected comment left this queue (decided elsewhere). It stays shown here.");
    } else if (current && state.detail && current.version !== state.detail.version) {
      loadDetail(current.id);
    }
    if (!state.selectedId && items.length && !state.busy) select(items[0].id, false);
  }

  function findItem(id) {
    for (var i = 0; i < state.items.length; i++) if (state.items[i].id === id) return state.items[i];
    return null;
  }

  function indexOf(id) {
    for (var i = 0; i < state.items.length; i++) if (state.items[i].id === id) return i;
    return -1;
  }

  function when(iso) {
    if (!iso) return el("span", { text: "—" });
    var d = new Date(iso);
    return el("time", { datetime: iso, text: isNaN(d) ? iso : d.toLocaleString() });
  }

  // Readers' reports are told apart from the engine's own findings (a crisis the engine saw).
  var RAISED_BY = { reports: "Readers' reports (comment still public unless several reported it)",
                    engine: "The engine's filters", moderator: "A moderator" };

  function label(cat) { return String(cat).replace(/_/g, " "); }

  function safeClass(cat) { return String(cat).toLowerCase().replace(/[^a-z_]/g, ""); }

  function excerpt(text, n) {
    var cps = Array.from(text || "");
    return cps.length > n ? cps.slice(0, n).join("") + "…" : cps.join("");
  }

  function renderQueue() {
    var list = $("queue-list");
    var focused = document.activeElement;
    var focusedId = focused && focused.classList && focused.classList.contains("queue-item")
      ? focused.getAttribute("data-id") : null;
    var urgentCount = 0;
    var rows = state.items.map(function (it) {
      var urgent = it.priority === "urgent";
      if (urgent) urgentCount++;
      var head = el("span", { className: "item-head" }, [
        urgent ? el("span", { className: "badge urgent" }, [
          el("span", { "aria-hidden": "true", text: "! " }), "Urgent"]) : null,
        it.raised_by === "reports" ? el("span", { className: "badge raised-reports",
          text: "Readers' report" }) : null,
        el("span", { className: "author", text: it.author || "Anonymous" }),
        el("span", { className: "article", text: "on " + it.article }),
      ]);
      var cats = el("span", { className: "chips" }, (it.categories || []).map(function (c) {
        return el("span", { className: "chip cat-" + safeClass(c), text: label(c) });
      }));
      if (it.report_count) {
        cats.appendChild(el("span", { className: "chip reports",
          text: it.report_count + " report" + (it.report_count === 1 ? "" : "s") }));
      }
      var button = el("button", {
        type: "button",
        className: "queue-item" + (urgent ? " is-urgent" : ""),
        "data-id": it.id,
        "aria-current": it.id === state.selectedId ? "true" : null,
      }, [head, el("span", { className: "excerpt", text: excerpt(it.body, 140) }), cats,
          el("span", { className: "when" }, [when(it.created_at)])]);
      return el("li", null, [button]);
    });
    list.replaceChildren.apply(list, rows);
    var n = state.items.length;
    $("queue-count").textContent = n === 0
      ? "Nothing " + STATUS_LABEL[state.status].toLowerCase() + (state.category ? " in " + label(state.category) : "") + "."
      : n + " comment" + (n === 1 ? "" : "s") + (urgentCount ? ", " + urgentCount + " urgent (pinned first)" : "");
    if (focusedId) {
      var again = list.querySelector('[data-id="' + CSS.escape(focusedId) + '"]');
      if (again) again.focus();
    }
  }

  function markSelected() {
    Array.prototype.forEach.call(document.querySelectorAll(".queue-item"), function (b) {
      if (b.getAttribute("data-id") === state.selectedId) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    });
  }

  function select(id, focus) {
    state.selectedId = id;
    markSelected();
    var item = findItem(id);
    if (item) { state.detail = Object.assign({ history: null }, item); renderDetail(); }
    if (focus) {
      var b = document.querySelector('.queue-item[data-id="' + CSS.escape(id) + '"]');
      if (b) { b.focus(); b.scrollIntoView({ block: "nearest" }); }
    }
    return loadDetail(id);
  }

  function loadDetail(id) {
    return api("GET", "/v1/moderation/comments/" + encodeURIComponent(id)).then(function (res) {
      if (state.selectedId !== id) return;
      if (res.status === 404) { say("That comment no longer exists.", "error"); return; }
      if (!res.ok) { say(problemText(res), "error"); return; }
      state.detail = res.data;
      renderDetail();
    }).catch(handleError);
  }

  function move(delta) {
    if (!state.items.length) return;
    var i = indexOf(state.selectedId);
    var next = i < 0 ? 0 : Math.max(0, Math.min(state.items.length - 1, i + delta));
    select(state.items[next].id, true);
  }

  // -- the selected comment --------------------------------------------------------------------
  // Spans are [start, end) in code points of the original body (Python's string offsets), so
  // the body is split into code points rather than indexed as UTF-16.
  function highlighted(body, findings) {
    var cps = Array.from(body || "");
    var n = cps.length;
    var spans = [];
    (findings || []).forEach(function (f) {
      (f.spans || []).forEach(function (s) {
        var a = Math.max(0, Math.min(n, Number(s[0]) | 0));
        var b = Math.max(0, Math.min(n, Number(s[1]) | 0));
        if (b > a) spans.push({ a: a, b: b, cat: String(f.category || "flagged") });
      });
    });
    var cuts = [0, n];
    spans.forEach(function (s) { cuts.push(s.a, s.b); });
    cuts = cuts.filter(function (v, i, all) { return all.indexOf(v) === i; })
               .sort(function (x, y) { return x - y; });
    var out = [];
    for (var i = 0; i + 1 < cuts.length; i++) {
      var a = cuts[i], b = cuts[i + 1];
      var text = cps.slice(a, b).join("");
      var cats = [];
      spans.forEach(function (s) {
        if (s.a <= a && s.b >= b && cats.indexOf(s.cat) < 0) cats.push(s.cat);
      });
      if (!cats.length) { out.push(document.createTextNode(text)); continue; }
      var next = cuts[i + 2];
      var continues = next !== undefined && spans.some(function (s) {
        return s.a <= b && s.b >= next && cats.indexOf(s.cat) >= 0;
      });
      out.push(el("mark", { className: "hl cat-" + safeClass(cats[0]), title: cats.map(label).join(", "),
                            text: text }));
      if (!continues) out.push(el("span", { className: "hl-tag", text: "[" + cats.map(label).join(", ") + "]" }));
    }
    return out;
  }

  function metaRow(dl, term, value) {
    dl.appendChild(el("div", null, [
      el("dt", { text: term }),
      el("dd", null, [typeof value === "string" ? document.createTextNode(value) : value]),
    ]));
  }

  function renderDetail() {
    var d = state.detail;
    $("detail-body").hidden = !d;
    $("detail-empty").hidden = !!d;
    if (!d) { $("detail-title").textContent = "No comment selected"; return; }
    $("detail-title").textContent = "Comment by " + (d.author || "Anonymous");
    $("detail-urgent").hidden = d.priority !== "urgent";

    var meta = $("detail-meta");
    meta.replaceChildren();
    metaRow(meta, "Status", STATUS_LABEL[d.status] || String(d.status));
    metaRow(meta, "Priority", d.priority === "urgent" ? "Urgent" : "Normal");
    metaRow(meta, "Raised by", RAISED_BY[d.raised_by] || "—");
    metaRow(meta, "Article", String(d.article));
    metaRow(meta, "Email", d.email ? String(d.email) : "—");
    metaRow(meta, "Posted", when(d.created_at));
    metaRow(meta, "Reports", String(d.report_count || 0));
    metaRow(meta, "Policy", d.policy_version ? String(d.policy_version) : "—");
    if (d.masked_body && d.masked_body !== d.body) metaRow(meta, "Published as", String(d.masked_body));

    $("comment-text").replaceChildren.apply($("comment-text"), highlighted(d.body, d.findings));

    var scores = $("scores");
    scores.replaceChildren();
    var entries = Object.keys(d.scores || {}).map(function (k) { return [k, Number(d.scores[k])]; })
      .sort(function (x, y) { return y[1] - x[1]; });
    if (!entries.length) scores.appendChild(el("li", { text: "No categories: nothing flagged." }));
    entries.forEach(function (e) {
      var flagged = (d.categories || []).indexOf(e[0]) >= 0;
      scores.appendChild(el("li", { className: flagged ? "flagged" : "" }, [
        el("span", { className: "score-name", text: label(e[0]) + (flagged ? " (flagged)" : "") }),
        el("meter", { min: "0", max: "1", low: "0.5", high: "0.8", optimum: "0", value: String(e[1]),
                      "aria-label": label(e[0]) + " score" }),
        el("span", { className: "score-num", text: isFinite(e[1]) ? e[1].toFixed(2) : "?" }),
      ]));
    });

    var tbody = $("findings").tBodies[0];
    tbody.replaceChildren();
    var cps = Array.from(d.body || "");
    (d.findings || []).forEach(function (f) {
      var quoted = (f.spans || []).map(function (s) { return cps.slice(s[0], s[1]).join(""); })
        .filter(Boolean).join(" … ");
      tbody.appendChild(el("tr", null, [
        el("td", { text: label(f.category || "") }),
        el("td", { text: f.rule || "" }),
        el("td", { text: typeof f.score === "number" ? f.score.toFixed(2) : "" }),
        el("td", { text: quoted || f.detail || "" }),
      ]));
    });
    $("findings").hidden = !(d.findings && d.findings.length);

    var history = $("history");
    history.replaceChildren();
    if (d.history === null || d.history === undefined) {
      history.appendChild(el("li", { text: "Loading…" }));
    } else if (!d.history.length) {
      history.appendChild(el("li", { text: "No decisions yet." }));
    } else {
      d.history.forEach(function (h) {
        history.appendChild(el("li", null, [
          when(h.at), " ",
          el("strong", { text: h.actor || "?" }), " ",
          (STATUS_LABEL[h.from] || String(h.from)) + " → " + (STATUS_LABEL[h.to] || String(h.to)),
          h.reason ? el("span", { className: "reason", text: " — " + h.reason }) : null,
        ]));
      });
    }
  }

  // -- decisions -------------------------------------------------------------------------------
  function decide(action) {
    var d = state.detail;
    if (!d || state.busy) return;
    state.busy = true;
    var reason = $("reason").value.trim();
    var body = { action: action };
    if (reason) body.reason = reason;
    var id = d.id;
    var index = indexOf(id);
    api("POST", "/v1/moderation/comments/" + encodeURIComponent(id) + "/decision", body,
        { "If-Match": '"' + d.version + '"' }).then(function (res) {
      if (res.status === 409) {
        say("Someone changed this comment since you opened it. It has been reloaded: check it and decide again.", "error");
        refreshQueue(true);
        return loadDetail(id);
      }
      if (res.status === 404) {
        say("That comment no longer exists.", "error");
        refreshQueue(true);
        return;
      }
      if (res.status === 403) { say("Your key may not do that.", "error"); return; }
      if (!res.ok) { say(problemText(res), "error"); return; }
      $("reason").value = "";
      say(DONE_LABEL[action] + ": comment by " + (d.author || "Anonymous") + ".");
      var leaves = res.data.status !== state.status;
      if (!leaves || index < 0) {  // stays in this queue, or was not in it: keep it shown
        state.detail = Object.assign({}, res.data, { history: d.history });
        refreshQueue(true);
        return loadDetail(id);
      }
      // Move on to the comment that takes its place, keeping the moderator's rhythm.
      state.items = state.items.filter(function (it) { return it.id !== id; });
      state.signature = null;
      renderQueue();
      var next = state.items[Math.min(index, state.items.length - 1)];
      if (next) select(next.id, true);
      else { state.selectedId = null; state.detail = null; renderDetail(); $("detail").focus(); }
      // The queue refresh is not awaited: a slow poll must never block the next decision.
      refreshQueue(true);
    }).catch(handleError).then(function () { state.busy = false; });
  }

  // -- polling ---------------------------------------------------------------------------------
  function startPolling() {
    stopPolling();
    state.timer = window.setInterval(function () { refreshQueue(true); }, POLL_MS);
  }

  function stopPolling() {
    if (state.timer) window.clearInterval(state.timer);
    state.timer = null;
  }

  function switchQueue(status, category) {
    state.status = status;
    state.category = category;
    state.items = []; state.signature = null; state.loaded = false;
    state.selectedId = null; state.detail = null;
    renderDetail();
    Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (t) {
      t.setAttribute("aria-pressed", t.getAttribute("data-status") === status ? "true" : "false");
    });
    $("queue-list").replaceChildren();
    $("queue-count").textContent = "Loading…";
    refreshQueue(false);
  }

  // -- keyboard --------------------------------------------------------------------------------
  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }

  function onKey(event) {
    if ($("workspace").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "Escape" && event.target === $("reason")) {
      event.preventDefault();
      $("reason").blur();
      var b = state.selectedId && document.querySelector('.queue-item[data-id="' + CSS.escape(state.selectedId) + '"]');
      (b || $("detail")).focus();
      return;
    }
    if (typing(event.target)) return;
    var inList = event.target && event.target.classList && event.target.classList.contains("queue-item");
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "ArrowDown": if (!inList) return; move(1); break;
      case "ArrowUp": if (!inList) return; move(-1); break;
      case "a": decide("approve"); break;
      case "r": decide("reject"); break;
      case "h": decide("hold"); break;
      case "/": $("reason").focus(); break;
      default: return;
    }
    event.preventDefault();
  }

  function init() {
    $("signin-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", function () { signOut(); });
    $("decision-form").addEventListener("submit", function (e) { e.preventDefault(); });
    Array.prototype.forEach.call(document.querySelectorAll(".actions button"), function (b) {
      b.addEventListener("click", function () { decide(b.getAttribute("data-action")); });
    });
    Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (t) {
      t.addEventListener("click", function () { switchQueue(t.getAttribute("data-status"), state.category); });
    });
    $("category").addEventListener("change", function () { switchQueue(state.status, $("category").value); });
    $("queue-list").addEventListener("click", function (e) {
      var b = e.target.closest(".queue-item");
      if (b) select(b.getAttribute("data-id"), true);
    });
    document.addEventListener("keydown", onKey);
    if (getKey()) {
      showSignedIn(true);
      refreshQueue(false).then(startPolling);
    } else {
      showSignedIn(false);
      $("key").focus();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
