// The console's only script: the live log, the history slider, and the projections' refresh.
(function () {
  "use strict";

  function followLog() {
    var state = document.getElementById("live-state");
    var body = document.querySelector("#log tbody");
    if (!state || !body || !window.EventSource) return;
    var url = "/ui/log/live?after=" + encodeURIComponent(state.dataset.after);
    if (state.dataset.eventType) url += "&eventType=" + encodeURIComponent(state.dataset.eventType);
    var source = new EventSource(url);
    source.onopen = function () { state.textContent = "live"; state.classList.remove("off"); };
    source.onerror = function () { state.textContent = "reconnecting"; state.classList.add("off"); };
    source.onmessage = function (message) {
      var holder = document.createElement("tbody");
      holder.innerHTML = message.data;
      var row = holder.firstElementChild;
      if (!row || document.getElementById(row.id)) return;
      row.classList.add("fresh");
      body.insertBefore(row, body.firstChild);
      while (body.children.length > 500) body.removeChild(body.lastChild);
    };
  }

  function historySlider() {
    var slider = document.getElementById("history");
    if (!slider) return;
    slider.addEventListener("change", function () {
      var url = new URL(window.location.href);
      url.searchParams.delete("at");
      url.searchParams.set("version", slider.value);
      window.location.assign(url.toString());
    });
  }

  function refreshProjections() {
    var table = document.getElementById("projections");
    if (!table) return;
    var every = parseInt(table.dataset.refresh, 10) || 2000;
    window.setInterval(function () {
      fetch(window.location.pathname, { credentials: "same-origin" })
        .then(function (answer) { return answer.ok ? answer.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("projections");
          var current = document.getElementById("projections");
          if (fresh && current) current.replaceWith(fresh);
        });
    }, every);
  }

  document.addEventListener("DOMContentLoaded", function () {
    followLog();
    historySlider();
    refreshProjections();
  });
})();
