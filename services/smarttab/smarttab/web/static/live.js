// The store page's live orders: the WebSocket feed (signed in by the session cookie) inserts new orders and
// updates their status without a reload; after a disconnect it resumes from the last sequence it saw (`since`).
(function () {
  "use strict";
  var table = document.getElementById("orders");
  var body = table.tBodies[0];
  var state = document.getElementById("feed-state");
  var storeId = table.dataset.storeId;
  // The newest event the rendered rows reflect; none when nothing was shown (then the feed starts live).
  var lastSeq = table.dataset.since ? Number(table.dataset.since) : null;
  var delay = 500;

  function cell(text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function show(message) {
    var order = message.order;
    var row = document.getElementById("order-" + order.id);
    if (row && Number(row.dataset.version) >= message.version) return;
    var fresh = document.createElement("tr");
    fresh.id = "order-" + order.id;
    fresh.dataset.version = String(message.version);
    fresh.className = "fresh";
    fresh.appendChild(cell(order.id));
    fresh.appendChild(cell(message.status, "status"));
    fresh.appendChild(cell(String(order.item_count)));
    fresh.appendChild(cell(order.total_amount + " " + order.currency));
    fresh.appendChild(cell(order.created_at));
    if (row) body.replaceChild(fresh, row); else body.insertBefore(fresh, body.firstChild);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var url = scheme + location.host + "/ws/orders?store_id=" + encodeURIComponent(storeId);
    if (lastSeq !== null) url += "&since=" + lastSeq;
    var socket = new WebSocket(url);
    socket.onopen = function () { state.textContent = "Live"; delay = 500; };
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === "resync_required") {  // too much was missed to replay: reload the page's rows
        state.textContent = "Live (reload the page to see what changed while disconnected)";
        return;
      }
      if (message.type !== "order.created" && message.type !== "order.updated") return;
      lastSeq = lastSeq === null ? message.seq : Math.max(lastSeq, message.seq);
      show(message);
    };
    socket.onclose = function (event) {
      if (event.code === 4401) { location.assign("/dashboard/login?next=" + encodeURIComponent(location.pathname)); return; }
      state.textContent = "Reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 10000);
    };
  }

  connect();
})();
