// docsign pages: small behaviours, no third-party hosts.
(function () {
  "use strict";

  // CSRF: every same-origin write carries the session's token (the docsign_csrf cookie), so forms,
  // htmx requests and fetch calls written without knowing about it still pass the server's check.
  function csrfToken() {
    var m = document.cookie.match(/(?:^|;\s*)(?:__Host-)?docsign_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
  function sameOrigin(url) {
    try { return new URL(url, window.location.href).origin === window.location.origin; } catch (e) { return false; }
  }
  function addToken(form) {
    // attributes, not form.method / form.action: an input named "method" or "action" shadows those
    var token = csrfToken();
    if (!token || !form.getAttribute) return;
    var method = (form.getAttribute("method") || "get").toLowerCase();
    if (method !== "post" || !sameOrigin(form.getAttribute("action") || window.location.href)) return;
    var field = form.querySelector("input[name=csrf_token]");
    if (!field) {
      field = document.createElement("input");
      field.type = "hidden";
      field.name = "csrf_token";
      form.appendChild(field);
    }
    field.value = token;
  }
  document.addEventListener("submit", function (event) { addToken(event.target); }, true);
  document.addEventListener("formdata", function (event) {
    // a GET form (a filter, an export) is a read: its token would only end up in the address
    var form = event.target;
    var method = ((form && form.getAttribute && form.getAttribute("method")) || "get").toLowerCase();
    if (method !== "post") return;
    var token = csrfToken();
    if (token && !event.formData.has("csrf_token")) event.formData.set("csrf_token", token);
  }, true);
  document.addEventListener("htmx:configRequest", function (event) {
    var token = csrfToken();
    if (token && sameOrigin(event.detail.path)) event.detail.headers["X-CSRF-Token"] = token;
  });
  if (window.fetch) {
    var plainFetch = window.fetch.bind(window);
    window.fetch = function (input, init) {
      var url = typeof input === "string" ? input : (input && input.url) || "";
      var method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
      var token = csrfToken();
      if (token && method !== "GET" && method !== "HEAD" && sameOrigin(url)) {
        init = Object.assign({}, init || {});
        var headers = new Headers(init.headers || (input && input.headers) || {});
        if (!headers.has("X-CSRF-Token")) headers.set("X-CSRF-Token", token);
        init.headers = headers;
      }
      return plainFetch(input, init);
    };
  }

  // A refused form comes back at the address it was sent to (/cases/7/attempts): the server names
  // the form's own page, and the address bar shows it, so a reload opens the page instead of
  // sending the form again.
  var pageUrl = document.querySelector("meta[name=docsign-page-url]");
  if (pageUrl && window.history && history.replaceState) {
    var target = pageUrl.getAttribute("content");
    if (target && target.charAt(0) === "/" && target.charAt(1) !== "/" && target !== location.pathname + location.search)
      history.replaceState(null, "", target + location.hash);
  }

  // A form marked data-once submits once: a double click does not send it twice.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.hasAttribute || !form.hasAttribute("data-once")) return;
    if (form.dataset.sent === "1") { event.preventDefault(); return; }
    if (event.defaultPrevented) return;
    form.dataset.sent = "1";
    form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
  }, false);
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.target;
    if (form && form.dataset) delete form.dataset.sent;
  });

  // A verification page that a person actually sees tells the school the notice was opened (a link
  // previewer fetches the page but runs no script, so it is not counted).
  var opened = document.querySelector("[data-opened]");
  if (opened && navigator.sendBeacon) navigator.sendBeacon(opened.getAttribute("data-opened"));

  // Deadline countdowns.
  function tick() {
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.dataset.deadline) - Date.now();
      if (isNaN(left)) return;
      if (left <= 0) { el.textContent = "已截止"; return; }
      var d = Math.floor(left / 86400000), h = Math.floor(left / 3600000) % 24,
          m = Math.floor(left / 60000) % 60, s = Math.floor(left / 1000) % 60;
      el.textContent = "剩余 " + (d ? d + " 天 " : "") + h + " 小时 " + m + " 分 " + s + " 秒";
    });
  }
  tick();
  setInterval(tick, 1000);

  // The signature pad on the signing page.
  function setupPad() {
    var canvas = document.getElementById("pad");
    if (!canvas || !window.SignaturePad) return;
    var pad = new window.SignaturePad(canvas, { minWidth: 1.2, maxWidth: 3.2, penColor: "#111" });
    function resize() {
      var ratio = Math.max(window.devicePixelRatio || 1, 1);
      var data = pad.toData();
      canvas.width = canvas.offsetWidth * ratio;
      canvas.height = canvas.offsetHeight * ratio;
      canvas.getContext("2d").scale(ratio, ratio);
      pad.clear();
      pad.fromData(data);
    }
    window.addEventListener("resize", resize);
    var strokes = document.getElementById("signature_strokes");
    // the page came back with an error (the box was not ticked): the drawing comes back with it
    if (strokes && strokes.value) {
      try { pad.fromData(JSON.parse(strokes.value)); } catch (e) { pad.clear(); }
    }
    resize();
    var field = canvas.closest(".field");
    var confirmBox = document.getElementById("confirm");
    var confirmField = confirmBox && confirmBox.closest(".field");
    function fieldError(field, text) {
      var p = field.querySelector(".error");
      if (!text) {
        if (p) p.remove();
        field.classList.remove("invalid");
        return;
      }
      if (!p) {
        p = document.createElement("p");
        p.className = "error";
        p.setAttribute("role", "alert");
        field.appendChild(p);
      }
      p.textContent = text;
      field.classList.add("invalid");
      field.scrollIntoView({ block: "center" });
    }
    function padError(text) { fieldError(field, text); }
    document.getElementById("pad-clear").addEventListener("click", function () { pad.clear(); padError(""); });
    pad.addEventListener("beginStroke", function () { if (field.classList.contains("invalid")) padError(""); });
    if (confirmBox) confirmBox.addEventListener("change", function () { if (confirmBox.checked) fieldError(confirmField, ""); });
    document.getElementById("sign-form").addEventListener("submit", function (event) {
      var input = document.getElementById("signature_png");
      if (strokes) strokes.value = pad.isEmpty() ? "" : JSON.stringify(pad.toData());
      if (pad.isEmpty()) { input.value = ""; return; }
      var m = ink(pad.toData());
      if (m.length < MIN_STROKE || m.span < MIN_SPAN) {
        event.preventDefault();
        input.value = "";
        padError("签名太短，像是只点了一下。请在签名框中写下完整的签名。");
        return;
      }
      input.value = pad.toDataURL("image/png");
      // a signature without the box ticked: asked here, the drawing stays on the pad
      if (confirmBox && !confirmBox.checked) {
        event.preventDefault();
        fieldError(confirmField, "请勾选确认后再签署。");
      }
    }, true);
  }
  window.addEventListener("load", setupPad);

  // A signature needs real ink: this much stroke and this span, in CSS pixels of the pad (the
  // server checks the image again, with a little less: service/documents/seal.py).
  var MIN_STROKE = 100, MIN_SPAN = 40;
  function ink(groups) {
    var length = 0, x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
    groups.forEach(function (g) {
      g.points.forEach(function (p, i) {
        if (i) length += Math.hypot(p.x - g.points[i - 1].x, p.y - g.points[i - 1].y);
        x0 = Math.min(x0, p.x); y0 = Math.min(y0, p.y); x1 = Math.max(x1, p.x); y1 = Math.max(y1, p.y);
      });
    });
    return { length: length, span: length ? Math.max(x1 - x0, y1 - y0) : 0 };
  }

  // After a submit, what it led to (the first error, or a confirmation) is brought into view and
  // focused, so that on a phone the answer is not left below the fold.
  function showOutcome() {
    var el = document.querySelector("[data-show], .field.invalid, p.error[role=alert]");
    if (!el) return;
    var box = el.getBoundingClientRect();
    if (box.top >= 0 && box.bottom <= window.innerHeight) return;
    el.scrollIntoView({ block: "center" });
    if (!el.hasAttribute("tabindex")) el.setAttribute("tabindex", "-1");
    el.focus({ preventScroll: true });
  }
  showOutcome();
  window.addEventListener("load", showOutcome);
})();
