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
    resize();
    document.getElementById("pad-clear").addEventListener("click", function () { pad.clear(); });
    document.getElementById("sign-form").addEventListener("submit", function () {
      document.getElementById("signature_png").value = pad.isEmpty() ? "" : pad.toDataURL("image/png");
    }, true);
  }
  window.addEventListener("load", setupPad);
})();
