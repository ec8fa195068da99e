/* Triage comments widget. Embed:
 *   <div data-triage-article="SLUG"></div>
 *   <script src="https://HOST/widget.js" async></script>
 * Counters: <a data-triage-count="SLUG"></a>. Single-page apps: Triage.mount(el) / unmount(el);
 * elements added later are picked up. Theme with CSS custom properties (--triage-*).
 * Every piece of user text goes in as text (textContent), never as HTML. */
(function () {
  "use strict";
  if (window.Triage && window.Triage.version) return;
  // Where this script came from is where the API is (a loader may have left currentScript unset).
  var script = document.currentScript || document.querySelector('script[src$="/widget.js"]');
  var API = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var EVENTS = "__TRIAGE_EVENTS__";
  if (EVENTS.indexOf("__") === 0 || !EVENTS) EVENTS = API;
  var PAGE = 20, DEPTH = 3;
  var widgets = new Map();
  var streams = new Set();

  var CSS = [
    ":host{all:initial!important;display:block!important;",
    "font:var(--triage-font-size,16px)/1.5 var(--triage-font,system-ui,-apple-system,'Segoe UI',sans-serif)!important;",
    "color:var(--triage-color,#1f2328)!important;text-align:start!important;visibility:visible!important}",
    ":host([hidden]){display:none!important}",
    "*{box-sizing:border-box}",
    ".t{background:var(--triage-bg,transparent);max-width:var(--triage-max-width,48rem)}",
    "h2{font-size:1.25em;margin:0 0 .5em}",
    "ol{list-style:none;margin:0;padding:0}",
    ".c{margin:0 0 1em;padding:.75em;border:1px solid var(--triage-border,#d0d7de);border-radius:var(--triage-radius,6px);background:var(--triage-card,#fff)}",
    ".c .c{margin:.75em 0 0;border-width:0 0 0 3px;border-radius:0;padding:.25em 0 .25em .75em}",
    ".who{font-weight:600}.when{color:var(--triage-muted,#57606a);font-size:.85em;margin-inline-start:.5em}",
    ".body{margin:.25em 0;white-space:pre-wrap;overflow-wrap:anywhere;unicode-bidi:isolate}",
    "button{font:inherit;cursor:pointer;border:1px solid var(--triage-border,#d0d7de);border-radius:var(--triage-radius,6px);background:var(--triage-button-bg,#f6f8fa);color:inherit;padding:.3em .8em}",
    "button.primary{background:var(--triage-accent,#1f6feb);border-color:var(--triage-accent,#1f6feb);color:var(--triage-accent-text,#fff)}",
    "button.link{border:0;background:none;padding:0;color:var(--triage-accent,#1f6feb);text-decoration:underline}",
    "button:focus-visible,input:focus-visible,textarea:focus-visible,select:focus-visible,a:focus-visible{outline:2px solid var(--triage-accent,#1f6feb);outline-offset:2px}",
    "form{display:grid;gap:.6em;margin:1.5em 0 0}",
    "label{display:grid;gap:.2em;font-weight:600}",
    "select{width:auto}.hint{font-weight:400;color:var(--triage-muted,#57606a);font-size:.85em}",
    "input,textarea,select{font:inherit;color:inherit;background:var(--triage-input-bg,#fff);border:1px solid var(--triage-border,#d0d7de);border-radius:var(--triage-radius,6px);padding:.4em;width:100%}",
    "textarea{min-height:6em;resize:vertical}",
    ".err{color:var(--triage-error,#cf222e);font-weight:400;margin:0}",
    ".note,.mine{background:var(--triage-note-bg,#f6f8fa);border-radius:var(--triage-radius,6px);padding:.75em;margin:1em 0}",
    ".support{background:var(--triage-support-bg,#fff8e6);border:1px solid var(--triage-support-border,#e3b341)}",
    ".support a{color:inherit}",
    ".bar{display:flex;gap:1em;align-items:center;margin:0 0 1em}",
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}"
  ].join("");
  var sheet = null;

  function el(tag, attrs, kids) {
    var n = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] != null) n.setAttribute(k, attrs[k]);
    (kids || []).forEach(function (c) {
      if (c != null) n.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return n;
  }

  function plural(n) { return n + (n === 1 ? " comment" : " comments"); }

  // The widget's own count also goes to the page's counters for the same article.
  function showCount(slug, n) {
    document.querySelectorAll("[data-triage-count]").forEach(function (c) {
      if (c.getAttribute("data-triage-count") === slug) { c.textContent = plural(n); c.setAttribute("data-triage-counted", slug); }
    });
  }

  function styles(root) {
    try {
      if (!sheet) { sheet = new CSSStyleSheet(); sheet.replaceSync(CSS); }
      root.adoptedStyleSheets = [sheet];
    } catch (e) {
      root.appendChild(el("style", null, [CSS]));
    }
  }

  function store(slug) {
    var key = "triage:mine:" + slug;
    return {
      all: function () {
        try { return JSON.parse(localStorage.getItem(key) || "[]"); } catch (e) { return []; }
      },
      save: function (list) {
        try { localStorage.setItem(key, JSON.stringify(list)); } catch (e) { /* private mode */ }
      }
    };
  }

  function Widget(host) {
    this.host = host;
    this.slug = host.getAttribute("data-triage-article");
    this.order = host.getAttribute("data-triage-order") === "newest" ? "newest" : "oldest";
    this.cursor = null;
    this.shown = new Map();
    this.timers = new Set();
    this.aborter = new AbortController();
    this.mine = store(this.slug);
    this.replyTo = null;
    this.count = 0;
    this.render();
    this.load(true);
    this.listen();
    this.mine.all().forEach(this.watch.bind(this));
  }

  Widget.prototype.render = function () {
    var root = this.host.shadowRoot || this.host.attachShadow({ mode: "open" });
    root.replaceChildren();
    styles(root);
    var self = this, uid = "t" + Math.random().toString(36).slice(2, 8);
    this.root = root;
    this.heading = el("h2", { id: uid + "-h" }, ["Comments"]);
    this.live = el("div", { "class": "sr", role: "status", "aria-live": "polite" });
    this.list = el("ol", { "class": "list", "aria-labelledby": uid + "-h" });
    this.more = el("button", { type: "button", "class": "more", hidden: "" }, ["Load more comments"]);
    this.more.addEventListener("click", function () { self.load(false); });
    var order = el("select", { id: uid + "-o" }, [
      el("option", { value: "oldest" }, ["Oldest first"]), el("option", { value: "newest" }, ["Newest first"])]);
    order.value = this.order;
    order.addEventListener("change", function () { self.order = order.value; self.load(true); });
    this.pending = el("div", { "aria-live": "polite" });
    this.form = this.buildForm(uid);
    root.appendChild(el("section", { "class": "t", "aria-labelledby": uid + "-h" }, [
      this.heading,
      el("div", { "class": "bar" }, [el("label", { "for": uid + "-o", "class": "sr" }, ["Order"]), order]),
      this.live, this.list, this.more, this.pending, this.form]));
  };

  Widget.prototype.buildForm = function (uid) {
    var self = this, fields = {};
    function field(name, label, control, hint) {
      var err = el("p", { "class": "err", id: uid + "-" + name + "-err", "aria-live": "polite" });
      control.setAttribute("id", uid + "-" + name);
      control.setAttribute("name", name);
      control.setAttribute("aria-describedby", err.id);
      fields[name] = { control: control, err: err };
      return el("div", null, [el("label", { "for": control.id }, [label, hint ? el("span", { "class": "hint" }, [" (" + hint + ")"]) : null]), control, err]);
    }
    this.fields = fields;
    this.replyNote = el("p", { "class": "note", hidden: "" });
    this.status = el("p", { role: "status", "aria-live": "polite", "class": "err" });
    var submit = el("button", { type: "submit", "class": "primary" }, ["Post comment"]);
    var form = el("form", { novalidate: "", "aria-label": "Add a comment" }, [
      el("h2", null, ["Add a comment"]), this.replyNote,
      field("author", "Name", el("input", { autocomplete: "name", maxlength: "80", required: "" })),
      field("email", "Email", el("input", { type: "email", autocomplete: "email", maxlength: "320" }), "optional, never shown"),
      field("body", "Comment", el("textarea", { maxlength: "5000", required: "", rows: "5" })),
      submit, this.status]);
    form.addEventListener("submit", function (ev) { ev.preventDefault(); self.post(submit); });
    return form;
  };

  Widget.prototype.fetch = function (path, opts) {
    opts = opts || {};
    opts.signal = this.aborter.signal;
    return fetch(API + path, opts);
  };

  Widget.prototype.base = function () { return "/v1/articles/" + encodeURIComponent(this.slug); };

  Widget.prototype.load = function (fresh) {
    var self = this;
    var q = "?view=thread&limit=" + PAGE + "&order=" + this.order + (fresh || !this.cursor ? "" : "&cursor=" + encodeURIComponent(this.cursor));
    if (fresh) this.countNow();
    return this.fetch(this.base() + "/comments" + q, fresh ? { cache: "no-cache" } : {})
      .then(function (r) {
        if (!r.ok) throw Object.assign(new Error(r.status === 404 ? "No comments here yet." : "Comments could not be loaded."), { ours: true });
        return r.json();
      })
      .then(function (page) {
        if (fresh) { self.list.replaceChildren(); self.shown.clear(); }
        page.items.forEach(function (c) { self.place(c, null, 0, false); });
        self.cursor = page.next_cursor;
        self.more.hidden = !page.next_cursor;
      })
      .catch(function (e) {
        if (e.name !== "AbortError") self.list.replaceChildren(el("li", { "class": "note" }, [e.ours ? e.message : "Comments could not be loaded."]));
      });
  };

  Widget.prototype.countNow = function () {
    var self = this;
    this.fetch(this.base() + "/comments/count", { cache: "no-cache" }).then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) { if (d) { self.count = d.count; self.heading.textContent = plural(d.count); showCount(self.slug, d.count); } })
      .catch(function () { });
  };

  Widget.prototype.node = function (c) {
    var self = this, replies = el("ol", { "class": "replies" });
    var reply = el("button", { type: "button", "class": "link" }, ["Reply"]);
    reply.addEventListener("click", function () { self.reply(c); });
    var when = new Date(c.created_at);
    var li = el("li", { "class": "c", id: "comment-" + c.id, "data-id": c.id }, [
      el("article", null, [
        el("header", null, [el("bdi", { "class": "who" }, [c.author]),
          el("time", { "class": "when", datetime: c.created_at }, [isNaN(when) ? "" : when.toLocaleString()])]),
        el("p", { "class": "body", dir: "auto" }, [c.body]), reply]),
      replies]);
    li._replies = replies;
    return li;
  };

  // Where a comment goes: under its parent (if shown, and not too deep), else at the top level.
  Widget.prototype.place = function (c, parentEl, depth, live) {
    if (this.shown.has(c.id)) return;
    var li = this.node(c);
    li._depth = depth;
    this.shown.set(c.id, li);
    if (parentEl) parentEl.appendChild(li);
    else if (live && this.order === "newest") this.list.insertBefore(li, this.list.firstChild);
    else this.list.appendChild(li);
    var self = this;
    (c.replies || []).forEach(function (r) {
      self.place(r, depth + 1 < DEPTH ? li._replies : parentEl, Math.min(depth + 1, DEPTH - 1), false);
    });
    return li;
  };

  Widget.prototype.published = function (c) {
    if (this.shown.has(c.id)) return;
    var parent = c.parent_id && this.shown.get(c.parent_id);
    var where = null, depth = 0;
    if (parent) {
      depth = Math.min(parent._depth + 1, DEPTH - 1);
      where = parent._depth + 1 < DEPTH ? parent._replies : parent.parentNode;
    }
    this.place(c, where, depth, true);
    this.count += 1;
    this.heading.textContent = plural(this.count); showCount(this.slug, this.count);
    this.live.textContent = "New comment from " + c.author;
    this.forget(c.id);
  };

  Widget.prototype.unpublished = function (id) {
    var li = this.shown.get(id);
    if (!li) return;
    var kids = Array.prototype.slice.call(li._replies.children);
    kids.forEach(function (k) { li.parentNode.insertBefore(k, li); });
    li.remove();
    this.shown.delete(id);
    this.count = Math.max(0, this.count - 1);
    this.heading.textContent = plural(this.count); showCount(this.slug, this.count);
  };

  Widget.prototype.listen = function () {
    var self = this;
    if (typeof EventSource === "undefined") return;
    var url = EVENTS + this.base() + "/events" + (this.lastId ? "?last_event_id=" + encodeURIComponent(this.lastId) : "");
    var es = new EventSource(url);
    this.es = es;
    streams.add(es);
    function seen(ev) { if (ev.lastEventId) self.lastId = ev.lastEventId; }
    es.addEventListener("published", function (ev) { seen(ev); try { self.published(JSON.parse(ev.data)); } catch (e) { } });
    es.addEventListener("unpublished", function (ev) { seen(ev); try { self.unpublished(JSON.parse(ev.data).id); } catch (e) { } });
    es.addEventListener("reset", function (ev) { seen(ev); self.load(true); });
    es.onerror = function () {
      // The browser reconnects by itself (with Last-Event-ID) unless the stream was refused.
      if (es.readyState === 2 && self.es === es) {
        self.closeStream();
        self.later(function () { self.listen(); }, 5000);
      }
    };
  };

  Widget.prototype.closeStream = function () {
    if (this.es) { this.es.close(); streams.delete(this.es); this.es = null; }
  };

  Widget.prototype.later = function (fn, ms) {
    var self = this, t = setTimeout(function () { self.timers.delete(t); fn(); }, ms);
    this.timers.add(t);
  };

  Widget.prototype.reply = function (c) {
    var self = this;
    this.replyTo = c;
    var cancel = el("button", { type: "button", "class": "link" }, ["cancel"]);
    cancel.addEventListener("click", function () { self.clearReply(); });
    this.replyNote.replaceChildren("Replying to ", el("bdi", null, [c.author]), " (", cancel, ")");
    this.replyNote.hidden = false;
    this.fields.body.control.focus();
  };

  Widget.prototype.clearReply = function () {
    this.replyTo = null;
    this.replyNote.hidden = true;
  };

  Widget.prototype.post = function (button) {
    var self = this, f = this.fields, data = {
      author: f.author.control.value.trim(), body: f.body.control.value.trim(),
      email: f.email.control.value.trim() || null, parent_id: this.replyTo ? this.replyTo.id : null
    };
    Object.keys(f).forEach(function (k) { f[k].err.textContent = ""; f[k].control.removeAttribute("aria-invalid"); });
    this.status.textContent = "";
    var missing = false;
    if (!data.author) { this.fieldError("author", "Please give a name."); missing = true; }
    if (!data.body) { this.fieldError("body", "Please write a comment."); missing = true; }
    if (missing) return;
    var key = JSON.stringify(data);
    if (this.lastKey !== key) { this.lastKey = key; this.idem = Math.random().toString(36).slice(2) + Date.now().toString(36); }
    button.disabled = true;
    this.fetch(this.base() + "/comments", {
      method: "POST", headers: { "Content-Type": "application/json", "Idempotency-Key": this.idem },
      body: JSON.stringify(data)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) { return { r: r, body: body }; });
    }).then(function (res) {
      var r = res.r, body = res.body;
      if (r.status === 202) {
        var mine = { id: body.id, author: data.author, body: data.body, parent_id: data.parent_id, at: new Date().toISOString() };
        var list = self.mine.all(); list.push(mine); self.mine.save(list);
        f.body.control.value = ""; self.lastKey = null; self.clearReply();
        self.watch(mine);
      } else if (r.status === 429) {
        var wait = parseInt(r.headers.get("Retry-After") || "", 10);
        self.status.textContent = "You are commenting too fast. Please wait " + (wait > 0 ? wait + " second" + (wait === 1 ? "" : "s") : "a moment") + " and try again.";
      } else if (r.status === 422 && body.errors) {
        body.errors.forEach(function (e) {
          var name = String(e.field || "").split(".").pop();
          if (f[name]) self.fieldError(name, e.message);
          else self.status.textContent = body.detail || "Please check your comment.";
        });
      } else {
        self.status.textContent = (body && body.detail) || "Your comment could not be sent. Please try again.";
      }
    }).catch(function (e) {
      if (e.name !== "AbortError") self.status.textContent = "Your comment could not be sent. Please check your connection and try again.";
    }).then(function () { button.disabled = false; });
  };

  Widget.prototype.fieldError = function (name, message) {
    var f = this.fields[name];
    f.err.textContent = message;
    f.control.setAttribute("aria-invalid", "true");
    f.control.focus();
  };

  // The commenter's own comment, shown only to them (this browser) until it is decided.
  Widget.prototype.watch = function (mine) {
    var self = this, box = el("div", { "class": "mine", "data-mine": mine.id }, [
      el("p", null, [el("strong", null, ["Awaiting moderation: "]), "only you can see this comment until a moderator has read it."]),
      el("p", { "class": "body", dir: "auto" }, [mine.body])]);
    this.pending.appendChild(box);
    var delay = 1500;
    function check() {
      self.fetch("/v1/comments/" + encodeURIComponent(mine.id), { cache: "no-store" }).then(function (r) {
        if (r.status === 404) { self.forget(mine.id); return null; }
        return r.ok ? r.json() : null;
      }).then(function (s) {
        if (s && s.status === "approved") {
          box.remove(); self.forget(mine.id);
          self.live.textContent = "Your comment was published.";
          if (!self.shown.has(mine.id)) self.load(true);
          return;
        }
        if (s && s.status === "rejected") {
          box.replaceChildren(el("p", null, ["Your comment was not published."]));
          self.forget(mine.id);
          return;
        }
        if (s && s.support) { self.support(box, mine, s.support); self.forget(mine.id); return; }
        if (box.isConnected) { delay = Math.min(delay * 1.5, 15000); self.later(check, delay); }
      }).catch(function () { if (box.isConnected) self.later(check, 15000); });
    }
    this.later(check, 1000);
  };

  Widget.prototype.support = function (box, mine, support) {
    var links = el("ul");
    (support.resources || []).forEach(function (res) {
      var url = String(res.url || ""), item;
      if (/^(https?:|tel:|sms:)/i.test(url)) item = el("a", { href: url, rel: "noopener noreferrer", target: "_blank" }, [res.label]);
      else item = document.createTextNode(res.label + (url ? " (" + url + ")" : ""));
      links.appendChild(el("li", null, [item]));
    });
    box.className = "mine support";
    box.setAttribute("role", "status");
    box.replaceChildren(el("p", null, [support.message]), links,
      el("p", null, ["Your comment is with our moderators and is not shown publicly."]));
  };

  Widget.prototype.forget = function (id) {
    this.mine.save(this.mine.all().filter(function (m) { return m.id !== id; }));
    var box = this.pending.querySelector('[data-mine="' + String(id).replace(/[^a-z0-9]/gi, "") + '"]');
    if (box && !box.classList.contains("support") && box.firstChild && box.firstChild.textContent.indexOf("Awaiting") === 0) box.remove();
  };

  Widget.prototype.destroy = function () {
    this.closeStream();
    this.aborter.abort();
    this.timers.forEach(clearTimeout);
    this.timers.clear();
    if (this.root) this.root.replaceChildren();
  };

  function mount(host) {
    if (!host || !host.getAttribute || !host.getAttribute("data-triage-article") || widgets.has(host)) return;
    widgets.set(host, new Widget(host));
  }

  function unmount(host) {
    var w = widgets.get(host);
    if (w) { w.destroy(); widgets.delete(host); }
  }

  var counting = null;
  function counts() {
    if (counting) return;
    counting = setTimeout(function () {
      counting = null;
      var els = Array.prototype.slice.call(document.querySelectorAll("[data-triage-count]"))
        .filter(function (n) { return n.getAttribute("data-triage-counted") !== n.getAttribute("data-triage-count"); });
      for (var i = 0; i < els.length; i += 100) countBatch(els.slice(i, i + 100));
    }, 0);
  }

  function countBatch(els) {
    var slugs = els.map(function (n) { return n.getAttribute("data-triage-count"); });
    fetch(API + "/v1/counts?articles=" + slugs.map(encodeURIComponent).join(","))
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d) return;
        els.forEach(function (n) {
          var slug = n.getAttribute("data-triage-count");
          n.textContent = plural(d.counts[slug] || 0);
          n.setAttribute("data-triage-counted", slug);
        });
      }).catch(function () { });
  }

  function scan(node) {
    if (node.nodeType !== 1) return;
    if (node.hasAttribute("data-triage-article")) mount(node);
    node.querySelectorAll("[data-triage-article]").forEach(mount);
    if (node.hasAttribute("data-triage-count") || node.querySelector("[data-triage-count]")) counts();
  }

  function sweep(node) {
    if (node.nodeType !== 1) return;
    widgets.forEach(function (w, host) { if ((host === node || node.contains(host)) && !host.isConnected) unmount(host); });
  }

  window.Triage = {
    version: "1",
    mount: mount,
    unmount: unmount,
    counts: counts,
    openStreams: function () { return streams.size; }
  };

  function start() {
    scan(document.documentElement);
    new MutationObserver(function (records) {
      records.forEach(function (r) {
        r.addedNodes.forEach(scan);
        r.removedNodes.forEach(sweep);
        if (r.type === "attributes") scan(r.target);
      });
    }).observe(document.documentElement, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-triage-count"] });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
