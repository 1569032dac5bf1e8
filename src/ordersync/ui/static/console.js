// The console's little JavaScript: forms sent once, confirmations, printing, and the live
// stream (server-sent events) of the orders screen and of an order's screen.
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList.contains("once")) return;
    if (form.dataset.sent) { event.preventDefault(); return; }
    form.dataset.sent = "1";
    setTimeout(function () {
      form.querySelectorAll("button").forEach(function (b) { b.disabled = true; });
    }, 0);
  });

  document.addEventListener("click", function (event) {
    var el = event.target.closest("[data-confirm]");
    if (el && !window.confirm(el.dataset.confirm)) event.preventDefault();
    if (event.target.closest("[data-print]")) window.print();
  });

  function rowFrom(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  function follow(url, handlers) {
    var source = new EventSource(url);
    source.addEventListener("ready", function () { document.body.dataset.live = "on"; });
    Object.keys(handlers).forEach(function (name) {
      source.addEventListener(name, function (e) { handlers[name](JSON.parse(e.data)); });
    });
    source.addEventListener("expired", function () {
      source.close();
      window.location.reload();
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) window.location.reload();
    };
    return source;
  }

  var table = document.getElementById("orders");
  if (table && table.dataset.live) {
    var body = table.tBodies[0];
    var size = parseInt(table.dataset.size, 10) || 50;
    follow(table.dataset.live, {
      orders: function (data) {
        data.rows.forEach(function (r) {
          var old = document.getElementById("order-" + r.id);
          if (old) {
            if (r.match) old.replaceWith(rowFrom(r.html)); else old.remove();
          } else if (r.insert) {
            var row = rowFrom(r.html);
            row.classList.add("fresh");
            body.insertBefore(row, body.firstElementChild);
            while (body.rows.length > size) body.deleteRow(body.rows.length - 1);
          }
        });
        if (data.more) document.getElementById("live-note").hidden = false;
        var empty = document.querySelector("p.empty");
        if (empty && body.rows.length) empty.hidden = true;
      }
    });
  }

  var note = document.getElementById("order-changed");
  if (note && note.dataset.live) {
    follow(note.dataset.live, {
      order: function (data) {  // a change the page already shows (its own action) is no news
        if (data.version === null || String(data.version) !== note.dataset.version) {
          note.hidden = false;
        }
      }
    });
  }
})();
