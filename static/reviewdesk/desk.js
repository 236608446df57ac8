// reviewdesk: live pages. Pushes are hints; on every (re)connect the page fetches the truth.
(function () {
  "use strict";
  // Codes the htmx ws extension retries by itself.
  var RETRIED = [1006, 1011, 1012, 1013];
  var AUTH = [4401, 4403];

  // Exponential backoff with jitter, capped at 10 s: a page never waits long after a restart.
  htmx.config.wsReconnectDelay = function (retryCount) {
    var delay = Math.min(500 * Math.pow(2, retryCount), 10000);
    return delay / 2 + Math.random() * delay / 2;
  };

  document.addEventListener("htmx:wsOpen", function () {
    document.body.classList.add("live");
    htmx.trigger(document.body, "desk:resync");
  });

  document.addEventListener("htmx:wsClose", function (event) {
    document.body.classList.remove("live");
    var code = event.detail.event.code;
    if (AUTH.indexOf(code) >= 0) {
      window.location.reload();  // sends a logged-out person to the login page
      return;
    }
    if (RETRIED.indexOf(code) >= 0) return;
    // Any other close (a server restart says 1000/1001): reconnect anyway, with jitter.
    var wrapper = event.detail.socketWrapper;
    window.setTimeout(function () { wrapper.reconnect(); }, 500 + Math.random() * 2000);
  });

  // Radio buttons that switch answer modes update the textarea's hint without a round trip.
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.name === "mode") {
      var area = document.getElementById("id_answer");
      if (area) area.classList.toggle("mono", target.value === "json");
    }
  });
})();
