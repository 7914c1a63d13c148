/* The operator dashboard's behaviour, in plain JavaScript: figures refreshed in place from the
   admin's small JSON views, tabs, expandable call rows and copy buttons. */
(function () {
  "use strict";

  function poll(url, intervalMs, apply) {
    function tick() {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) { if (data) { apply(data); } })
        .catch(function () { /* a missed refresh is retried on the next tick */ })
        .then(function () { window.setTimeout(tick, intervalMs); });
    }
    window.setTimeout(tick, intervalMs);
  }

  function setText(root, selector, value) {
    root.querySelectorAll(selector).forEach(function (element) { element.textContent = value; });
  }

  function liveText(node) {
    return node.used + " / " + node.allocation + (node.borrowed ? " (+" + node.borrowed + " borrowed)" : "");
  }

  function applyCampaign(root, data) {
    setText(root, "[data-stat=done]", data.done);
    setText(root, "[data-stat=total]", data.total);
    setText(root, "[data-stat=percent]", data.percent);
    setText(root, "[data-stat=live]", liveText(data.live));
    Object.keys(data.counts).forEach(function (status) {
      setText(document, "[data-count='" + status + "']", data.counts[status]);
    });
    root.querySelectorAll("[data-role=progress-bar]").forEach(function (bar) { bar.style.width = data.percent + "%"; });
    root.querySelectorAll("[data-role=status]").forEach(function (badge) {
      badge.className = "dash-badge dash-status-" + data.status;
      badge.textContent = data.status_label;
    });
    root.querySelectorAll("[data-role=control]").forEach(function (line) {
      line.textContent = data.control_text;
      line.hidden = !data.control_text;
    });
  }

  function percent(used, allocation) {
    return allocation ? Math.min(100, Math.round(100 * used / allocation)) : 0;
  }

  function applyRow(row, node) {
    if (!row) { return; }
    setText(row, "[data-field=used]", node.used);
    setText(row, "[data-field=allocation]", node.allocation);
    if (row.hasAttribute("data-slot-workspace")) { setText(row, "[data-field=borrowed]", node.borrowed); }
    row.querySelectorAll("[data-field=meter]").forEach(function (bar) {
      bar.style.width = percent(node.used, node.allocation) + "%";
    });
  }

  function applySlots(root, data) {
    data.organisations.forEach(function (org) {
      applyRow(root.querySelector("[data-slot-org='" + org.id + "']"), org);
      org.workspaces.forEach(function (ws) {
        applyRow(root.querySelector("[data-slot-workspace='" + ws.id + "']"), ws);
      });
      Object.keys(org.campaigns).forEach(function (campaignId) {
        var node = org.campaigns[campaignId];
        var borrowed = Math.max(0, node.used - node.allocation);
        setText(document, "[data-live-campaign='" + campaignId + "']",
          node.used + " / " + node.allocation + (borrowed ? " (+" + borrowed + ")" : ""));
      });
    });
    setText(root, "[data-role=slots-updated]", "updated " + new Date().toLocaleTimeString());
  }

  function setupTabs(container) {
    var tabs = container.querySelectorAll("[role=tab]");
    function select(tab) {
      tabs.forEach(function (other) {
        var selected = other === tab;
        other.setAttribute("aria-selected", selected ? "true" : "false");
        document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
      });
    }
    tabs.forEach(function (tab) {
      tab.addEventListener("click", function () {
        select(tab);
        window.history.replaceState(null, "", "#" + tab.id);
      });
    });
    var fromHash = window.location.hash && container.querySelector(window.location.hash + "[role=tab]");
    if (fromHash) { select(fromHash); }
  }

  function setupCopy(button) {
    button.addEventListener("click", function () {
      var text = document.getElementById(button.getAttribute("data-copy-target")).textContent;
      var status = button.parentNode.querySelector("[data-role=copy-status]");
      var done = function () { if (status) { status.textContent = "Copied."; } };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done);
      } else {
        // Plain-HTTP deployments have no Clipboard API: fall back to a selected textarea.
        var area = document.createElement("textarea");
        area.value = text;
        document.body.appendChild(area);
        area.select();
        document.execCommand("copy");
        document.body.removeChild(area);
        done();
      }
    });
  }

  function setupRowToggle(button) {
    button.addEventListener("click", function () {
      var row = document.getElementById(button.getAttribute("data-toggle-row"));
      row.hidden = !row.hidden;
      button.setAttribute("aria-expanded", row.hidden ? "false" : "true");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-stats-url]").forEach(function (root) {
      poll(root.getAttribute("data-stats-url"), 2000, function (data) { applyCampaign(root, data); });
    });
    document.querySelectorAll("[data-slots-url]").forEach(function (root) {
      poll(root.getAttribute("data-slots-url"), 2000, function (data) { applySlots(root, data); });
    });
    document.querySelectorAll("[data-tabs]").forEach(setupTabs);
    document.querySelectorAll("[data-copy-target]").forEach(setupCopy);
    document.querySelectorAll("[data-toggle-row]").forEach(setupRowToggle);
  });
}());
