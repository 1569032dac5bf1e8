// The phone call: products as one types, with what each store has now; lines; which pickup
// stores have every line.
(function () {
  "use strict";
  var form = document.getElementById("new-order");
  if (!form) return;
  var search = document.getElementById("product-search");
  var results = document.getElementById("results");
  var lines = document.getElementById("lines").tBodies[0];
  var noLines = document.getElementById("no-lines");
  var pickup = document.getElementById("pickup-store");
  var stock = {};  // product id -> {store code: available}
  var timer = null;
  var asked = 0;

  function text(tag, value, cls) {
    var el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function show(products) {
    var body = results.tBodies[0];
    body.textContent = "";
    results.hidden = false;
    if (!products.length) {
      var tr = body.insertRow();
      var td = tr.insertCell();
      td.colSpan = 4;
      td.textContent = form.dataset.none;
      return;
    }
    products.forEach(function (p) {
      stock[p.id] = {};
      var tr = body.insertRow();
      tr.dataset.product = p.id;
      var name = tr.insertCell();
      name.appendChild(document.createTextNode(p.name));
      name.appendChild(text("small", p.sku));
      tr.insertCell().appendChild(text("span", p.price)).parentNode.className = "money";
      var where = tr.insertCell();
      where.className = "availability";
      p.stores.forEach(function (s) {
        stock[p.id][s.code] = parseFloat(s.available);
        var chip = text("span", s.code + " " + s.shown, "chip" + (parseFloat(s.available) > 0 ? "" : " none"));
        chip.dataset.store = s.code;
        where.appendChild(chip);
      });
      var add = text("button", form.dataset.add, "add");
      add.type = "button";
      add.addEventListener("click", function () { addLine(p); });
      tr.insertCell().appendChild(add);
    });
  }

  function addLine(p) {
    var existing = lines.querySelector('tr[data-product="' + p.id + '"] input[name=quantity]');
    if (existing) {
      existing.value = String((parseFloat(existing.value.replace(",", ".")) || 0) + 1);
    } else {
      var tr = lines.insertRow();
      tr.dataset.product = p.id;
      var name = tr.insertCell();
      name.appendChild(document.createTextNode(p.name));
      name.appendChild(text("small", p.sku));
      var id = document.createElement("input");
      id.type = "hidden"; id.name = "product_id"; id.value = p.id;
      name.appendChild(id);
      var q = document.createElement("input");
      q.name = "quantity"; q.value = "1"; q.size = 5; q.required = true;
      q.setAttribute("inputmode", "decimal");
      var qc = tr.insertCell(); qc.className = "qty"; qc.appendChild(q);
      var rm = text("button", form.dataset.remove, "link remove");
      rm.type = "button";
      tr.insertCell().appendChild(rm);
    }
    noLines.hidden = true;
    markStores();
  }

  function markStores() {
    Array.prototype.forEach.call(pickup.options, function (option) {
      var short = false;
      Array.prototype.forEach.call(lines.rows, function (tr) {
        var have = stock[tr.dataset.product];
        var want = parseFloat(tr.querySelector("input[name=quantity]").value.replace(",", ".")) || 0;
        if (have && (have[option.value] || 0) < want) short = true;
      });
      option.textContent = option.textContent.replace(/ — .*$/, "") + (short ? " — " + form.dataset.missing : "");
      option.classList.toggle("short", short);
    });
  }

  search.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = search.value.trim();
      var mine = ++asked;
      if (!q) { results.hidden = true; return; }
      fetch(form.dataset.products + "?q=" + encodeURIComponent(q), {
        headers: {"Accept": "application/json"}, credentials: "same-origin"
      }).then(function (r) {
        if (r.status === 401) { window.location.reload(); throw new Error("logged out"); }
        return r.json();
      }).then(function (data) { if (mine === asked) show(data.products); });
    }, 150);
  });
  search.addEventListener("keydown", function (e) {
    if (e.key === "Enter") {
      e.preventDefault();
      var first = results.querySelector("button.add");
      if (first) first.click();
    }
  });
  lines.addEventListener("click", function (e) {
    if (e.target.classList.contains("remove")) {
      e.target.closest("tr").remove();
      noLines.hidden = lines.rows.length > 0;
      markStores();
    }
  });
  lines.addEventListener("input", markStores);
})();
