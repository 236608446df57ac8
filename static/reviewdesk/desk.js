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

  // Subscribed (the server joins the groups before it accepts): now fetch what may have been missed.
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

  // Thread and item pages are pushed a hint ({"changed": ...}), not HTML: the page's own
  // #thread-sync / #item-sync then fetch its fragments over HTTP, as this user.
  document.addEventListener("htmx:wsBeforeMessage", function (event) {
    var message = event.detail.message;
    htmx.trigger(document.body, "desk:count");  // the pending badge may have changed
    if (typeof message !== "string") return;
    if (message.charAt(0) === "{") {
      event.preventDefault();
      htmx.trigger(document.body, "desk:changed");
      return;
    }
    // Queue rows are appended only by the default view; a filtered or paged view refetches.
    if (document.getElementById("queue-items") && !document.querySelector("#queue-rows[data-live-rows]")) {
      event.preventDefault();
      htmx.trigger(document.body, "desk:refetch");
      return;
    }
    // A row pushed while the list is being fetched would be swapped away by a response read
    // before it existed: fetch the list once more when that response has landed.
    if (listFetching) listStale = true;
  });

  var listFetching = false;
  var listStale = false;
  function isList(event) { return event.detail.elt && event.detail.elt.id === "queue-items"; }
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (isList(event)) listFetching = true;
  });
  document.addEventListener("htmx:afterRequest", function (event) {
    if (!isList(event)) return;
    listFetching = false;
    if (!listStale) return;
    listStale = false;
    // Asked of the new list itself: its own triggers are attached only when it settles.
    window.setTimeout(function () {
      var list = document.getElementById("queue-items");
      if (list) htmx.ajax("GET", list.getAttribute("hx-get"), { source: list, target: list, swap: "outerHTML" });
    }, 50);
    // And once more through the settled list's own trigger, should that request be lost too.
    window.setTimeout(function () { htmx.trigger(document.body, "desk:resync"); }, 1000);
  });

  // --- an answer the person had not sent yet survives the item being decided under it ---------

  function labelFor(form, control) {
    if (control.type === "radio") {
      var group = control.closest("fieldset.action") ? "Decision" : "Answer as";
      return group + ": " + (control.closest("label") || control).textContent.trim();
    }
    var label = control.id && form.querySelector('label[for="' + control.id + '"]');
    if (!label) return control.name;
    return label.getAttribute("data-label") || label.textContent.trim();
  }

  // What the person typed or chose, as plain text; "" when they have not touched the form
  // (unless submitted: then what it holds is what they meant to send).
  function unsentText(form, submitted) {
    if (!form) return "";
    var controls = Array.prototype.slice.call(form.querySelectorAll(
      "textarea, input[type=radio], input[type=text], input[type=number]"));
    var touched = submitted || form.hasAttribute("data-bound") || controls.some(function (c) {
      return c.type === "radio" ? c.checked !== c.defaultChecked : c.value !== c.defaultValue;
    });
    if (!touched) return "";
    // One block per tool-call card; any other form is one block.
    var scopes = Array.prototype.slice.call(form.querySelectorAll("fieldset.action"));
    if (!scopes.length) scopes = [form];
    return scopes.map(function (scope) {
      var lines = [];
      var legend = scope !== form ? scope.querySelector("legend") : null;
      if (legend) lines.push(legend.textContent.trim());
      var decision = scope.querySelector(".decisions input[type=radio]:checked, .modes input[type=radio]:checked");
      if (decision) lines.push(labelFor(form, decision));
      scope.querySelectorAll("textarea, input[type=text], input[type=number]").forEach(function (area) {
        var edited = area.value !== area.defaultValue || (decision && decision.value === "edit");
        if (area.value.trim() && (edited || area.name === "answer")) {
          lines.push(labelFor(form, area) + ":\n" + area.value);
        }
      });
      return lines.join("\n");
    }).join("\n\n");
  }

  // Shown as text in a read-only textarea: never parsed as HTML.
  function keepUnsent(text) {
    var box = document.getElementById("unsent-answer");
    if (!text || !box) return;
    var area = box.querySelector("textarea");
    if (area.value.indexOf(text) >= 0) return;
    area.value = area.value ? area.value + "\n\n----\n\n" + text : text;
    box.hidden = false;
  }

  // A resync replaces the item's part because it changed (someone else decided it, the graph
  // withdrew or changed the question): keep what the person had typed there.
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    var form = event.detail.target.querySelector("#answer-form");
    // A form being submitted is judged by its own response (below).
    if (form && !form.classList.contains("htmx-request")) keepUnsent(unsentText(form));
  });

  // The person's own submission: if it did not go through and no form is left to hold it (409:
  // someone else was first; or the form was replaced while the request was in flight), keep it.
  // The listener sits on the form itself, which still hears its request end once detached.
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail.elt;
    if (!form || form.id !== "answer-form") return;
    var text = unsentText(form, true);
    form.addEventListener("htmx:afterRequest", function (done) {
      var status = done.detail.xhr ? done.detail.xhr.status : 0;
      if (status !== 200 && !document.getElementById("answer-form")) keepUnsent(text);
    }, { once: true });
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#unsent-answer .copy");
    if (!button) return;
    var area = document.querySelector("#unsent-answer textarea");
    area.focus();
    area.select();
    var copied = function () { button.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(area.value).then(copied, function () {
        if (document.execCommand("copy")) copied();
      });
    } else if (document.execCommand("copy")) {
      copied();
    }
  });

  // Radio buttons that switch answer modes update the textarea's hint without a round trip.
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target && target.name === "mode") {
      var area = document.getElementById("id_answer");
      if (area) area.classList.toggle("mono", target.value === "json");
    }
  });

  // --- workbench: the pending count in the title, ages that stay current ------------------------

  var baseTitle = document.title;
  function showCount() {
    var badge = document.getElementById("pending-count");
    var count = badge ? badge.getAttribute("data-count") : "";
    document.title = count && count !== "0" ? "(" + count + ") " + baseTitle : baseTitle;
  }
  document.addEventListener("htmx:afterSettle", showCount);

  function ageText(iso) {
    var seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return "just now";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h";
    return Math.floor(seconds / 86400) + " d";
  }
  function refreshAges() {
    document.querySelectorAll("time[data-age]").forEach(function (el) {
      var text = ageText(el.getAttribute("datetime"));
      if (el.textContent !== text) el.textContent = text;
    });
  }
  window.setInterval(refreshAges, 30000);

  // --- item pages: presence and claim heartbeat, leaving, drafts' diff ---------------------------

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"]; }
    catch (e) { return ""; }
  }

  function itemPage() { return document.querySelector("[data-heartbeat-url]"); }

  function heartbeat() {
    var page = itemPage();
    if (!page) return;
    fetch(page.getAttribute("data-heartbeat-url"), {
      method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() }
    }).catch(function () {});
  }

  // Leaving the page releases the reviewer's claim and their presence (a beacon survives unload).
  window.addEventListener("pagehide", function () {
    var page = itemPage();
    if (!page || !navigator.sendBeacon) return;
    var data = new FormData();
    data.append("csrfmiddlewaretoken", csrfToken());
    navigator.sendBeacon(page.getAttribute("data-leave-url"), data);
  });

  // Edited tool arguments: a side-by-side table of what differs from what the model proposed.
  function refreshDiff(container) {
    var body = container.querySelector("table.diff tbody");
    if (!body) return;
    body.textContent = "";
    container.querySelectorAll("[data-original]").forEach(function (input) {
      var original = input.getAttribute("data-original");
      if (input.value === original) return;
      var row = document.createElement("tr");
      var name = document.createElement("th");
      name.scope = "row";
      var field = input.closest(".field");
      name.textContent = field ? field.getAttribute("data-arg") : input.name;
      var old = document.createElement("td");
      old.className = "old";
      old.textContent = original;
      var now = document.createElement("td");
      now.className = "new";
      now.textContent = input.value;
      row.append(name, old, now);
      body.appendChild(row);
    });
    container.classList.toggle("changed", body.children.length > 0);
  }
  document.addEventListener("input", function (event) {
    var container = event.target.closest && event.target.closest(".edit-fields");
    if (container) refreshDiff(container);
  });

  // --- keyboard triage -------------------------------------------------------------------------

  function typing(target) {
    if (!target || !target.tagName) return false;
    var tag = target.tagName.toLowerCase();
    var type = (target.type || "").toLowerCase();
    return tag === "textarea" || tag === "select" || target.isContentEditable ||
      (tag === "input" && ["radio", "checkbox", "button", "submit"].indexOf(type) < 0);
  }

  function rows() { return Array.prototype.slice.call(document.querySelectorAll(".item-row .item-link")); }

  function moveRow(step) {
    var links = rows();
    if (!links.length) return;
    var at = links.indexOf(document.activeElement);
    var next = at < 0 ? 0 : Math.min(links.length - 1, Math.max(0, at + step));
    links.forEach(function (link) { link.closest(".item-row").classList.remove("selected"); });
    links[next].closest(".item-row").classList.add("selected");
    links[next].focus();
    choose(links[next].closest(".item-row"));
  }

  // A list being swapped in is settling: htmx puts the rows' server-rendered attributes back at
  // its end, so a place chosen meanwhile (j/k, Tab) must be remembered here, not in a class.
  function choose(row) {
    if (kept && row && row.id) { kept.selected = row.id; kept.focused = true; }
  }

  // The reviewer's place follows focus however it got there (Tab, a click, j/k), so a refetched
  // list puts focus back on the row they were on, not on the first.
  document.addEventListener("focusin", function (event) {
    var row = event.target.closest && event.target.closest(".item-row");
    if (!row || row.classList.contains("selected")) return;
    document.querySelectorAll(".item-row.selected").forEach(function (other) { other.classList.remove("selected"); });
    row.classList.add("selected");
    choose(row);
  });

  // The card the keys act on: the one holding focus, else the first without a decision.
  function currentCard() {
    var cards = Array.prototype.slice.call(document.querySelectorAll("#answer-form fieldset.action"));
    var focused = document.activeElement && document.activeElement.closest &&
      document.activeElement.closest("fieldset.action");
    if (focused) return focused;
    return cards.filter(function (card) { return !card.querySelector(".decisions input:checked"); })[0] || cards[0];
  }

  function decide(kind) {
    var button = document.querySelector("#answer-form .approval-buttons button[value=" + kind + "]");
    if (button) { button.click(); return true; }
    var card = currentCard();
    if (!card) return false;
    var names = kind === "approve" ? ["approve", "accept"] : kind === "reject" ? ["reject", "ignore"] : [kind];
    for (var i = 0; i < names.length; i++) {
      var radio = card.querySelector(".decisions input[value=" + names[i] + "]");
      if (radio) {
        radio.checked = true;
        radio.dispatchEvent(new Event("change", { bubbles: true }));
        radio.focus();
        if (kind === "edit") {
          var first = card.querySelector(".edit-fields input:not([type=hidden]), .edit-fields textarea, .edit-fields select");
          if (first) first.focus();
        }
        return true;
      }
    }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    var dialog = document.getElementById("keys-dialog");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      var form = document.getElementById("answer-form");
      var submit = form && form.querySelector("button[type=submit]:not([name])");
      if (submit) { event.preventDefault(); form.requestSubmit(submit); }
      return;
    }
    if (event.key === "Escape" && typing(event.target)) { event.target.blur(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (dialog && dialog.open) return;
    var handled = true;
    switch (event.key) {
      case "Enter":
        // Focus is on the page itself (the list was just refetched under it): open the
        // reviewer's row, as Enter on its link would.
        if (document.activeElement && document.activeElement !== document.body) { handled = false; break; }
        var place = document.querySelector(".item-row.selected") ||
          (kept && kept.selected && document.getElementById(kept.selected));
        var open = place && place.querySelector(".item-link");
        if (open) window.location.assign(open.href); else handled = false;
        break;
      case "j": moveRow(1); break;
      case "k": moveRow(-1); break;
      case "x":
        var row = document.activeElement && document.activeElement.closest && document.activeElement.closest(".item-row");
        var pick = row && row.querySelector("input.pick");
        if (pick) pick.checked = !pick.checked; else handled = false;
        break;
      case "a": handled = decide("approve"); break;
      case "r": handled = decide("reject"); break;
      case "e": handled = decide("edit"); break;
      case "c":
        var claim = document.getElementById("claim-button");
        if (claim) claim.click(); else handled = false;
        break;
      case "?": if (dialog) dialog.showModal(); break;
      default: handled = false;
    }
    if (handled) event.preventDefault();
  });

  document.addEventListener("click", function (event) {
    if (event.target.closest && event.target.closest(".keys-help")) {
      var dialog = document.getElementById("keys-dialog");
      if (dialog) dialog.showModal();
    }
  });

  // "Answer and next" lands here: focus the answer's first control, never <body>.
  function focusFirstControl() {
    var form = document.getElementById("answer-form");
    if (!form || form.contains(document.activeElement)) return;
    var first = form.querySelector(
      ".approval-buttons button, .decisions input, input:not([type=hidden]):not([type=checkbox]), textarea, select"
    );
    if (first) first.focus();
  }

  document.addEventListener("DOMContentLoaded", function () {
    showCount();
    refreshAges();
    if (itemPage()) {
      heartbeat();
      var every = parseFloat(itemPage().getAttribute("data-heartbeat")) || 30;
      window.setInterval(heartbeat, every * 1000);
      focusFirstControl();
    } else {
      var links = rows();
      if (links.length) { links[0].closest(".item-row").classList.add("selected"); links[0].focus(); }
    }
  });

  // A pushed row is appended; put it back in its place (oldest first), so a claim or a change
  // of an item never moves its row to the bottom.
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var rows = document.querySelector("#queue-rows[data-live-rows]");
    if (!rows || !rows.contains(event.detail.target)) return;
    var items = Array.prototype.slice.call(rows.querySelectorAll(":scope > .item-row"));
    var key = function (row) { return [parseFloat(row.getAttribute("data-order")) || 0, parseInt(row.getAttribute("data-item"), 10) || 0]; };
    var sorted = items.slice().sort(function (a, b) {
      var ka = key(a), kb = key(b);
      return ka[0] - kb[0] || ka[1] - kb[1];
    });
    if (sorted.some(function (row, n) { return row !== items[n]; })) {
      sorted.forEach(function (row) { rows.appendChild(row); });
    }
  });

  // A refetched list keeps the reviewer's place: the selected row (and focus) and ticked boxes.
  var kept = null;
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (!event.detail.target || event.detail.target.id !== "queue-items") return;
    var selected = document.querySelector(".item-row.selected");
    kept = {
      selected: selected ? selected.id : "",
      focused: !!(selected && selected.contains(document.activeElement)),
      picked: Array.prototype.map.call(document.querySelectorAll("input.pick:checked"), function (i) { return i.value; })
    };
  });
  document.addEventListener("htmx:afterSettle", function () {
    if (!kept) return;
    var keep = kept;
    kept = null;
    keep.picked.forEach(function (value) {
      var box = document.querySelector('input.pick[value="' + value + '"]');
      if (box) box.checked = true;
    });
    var row = keep.selected && document.getElementById(keep.selected);
    if (!row) row = document.querySelector(".item-row");
    if (!row) return;
    document.querySelectorAll(".item-row.selected").forEach(function (other) { other.classList.remove("selected"); });
    row.classList.add("selected");
    if (keep.focused || document.activeElement === document.body) row.querySelector(".item-link").focus();
  });

  // A panel swapped in after a decision or a claim: keep focus inside it.
  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "answer-panel" && document.activeElement === document.body) {
      var panel = document.getElementById("answer-panel");
      var first = panel && panel.querySelector("#answer-form .decisions input, #answer-form button, #answer-form textarea, #answer-form input:not([type=hidden]), button, a");
      if (first) first.focus();
      else if (panel) { panel.setAttribute("tabindex", "-1"); panel.focus(); }
    }
  });
})();
