/* The /client index: keep the three transport links pointing at the agent typed in. */
(function () {
  "use strict";
  var input = document.getElementById("agent-input");
  function update() {
    var agent = input.validity.valid ? input.value : "1001";
    document.querySelectorAll("a[data-tech]").forEach(function (a) {
      a.href = "client/" + a.getAttribute("data-tech") + "/" + encodeURIComponent(agent);
    });
  }
  input.addEventListener("input", update);
  document.getElementById("open-form").addEventListener("submit", function (e) { e.preventDefault(); });
  update();
})();
