// mimekit web: live updates and small conveniences. The pages work without this file.
// No framework; nothing from a message is ever written as markup here: counts are set with
// textContent, and a folder's list is redrawn from the server's own page (escaped there),
// parsed by DOMParser, whose documents run no script.
"use strict";

(function () {
  function setCounts(change) {
    var item = document.querySelector('#folders li[data-folder-id="' + CSS.escape(change.mailboxId) + '"]');
    if (!item) return;
    var unread = item.querySelector(".unread-count");
    var total = item.querySelector(".total-count");
    if (unread) {
      unread.textContent = String(change.unread);
      unread.classList.toggle("has-unread", change.unread > 0);
    }
    if (total) total.textContent = String(change.total);
  }

  var reloading = false;
  var again = false;

  // Fetch this page again and put its message list in place of ours.
  function reloadList() {
    if (reloading) { again = true; return; }
    reloading = true;
    fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (text) {
        if (text === null) return;
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("mailbox");
        var current = document.getElementById("mailbox");
        if (fresh && current) current.replaceWith(document.importNode(fresh, true));
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        reloading = false;
        if (again) { again = false; reloadList(); }
      });
  }

  // The stream is closed when the page is left: the browser keeps recent pages alive for its
  // back button (back/forward cache) and would keep their streams too, and past six
  // connections to this server the next page waits for one to end. Reopened on return.
  var events = null;

  function listen() {
    if (!window.EventSource || events) return;
    events = new EventSource("/api/events");
    events.addEventListener("mailbox", function (event) {
      var change;
      try { change = JSON.parse(event.data); } catch (e) { return; }
      if (!change || typeof change.mailboxId !== "string") return;
      setCounts(change);
      var mailbox = document.getElementById("mailbox");
      if (mailbox && mailbox.dataset.folderId === change.mailboxId) reloadList();
    });
  }

  // "Show remote images": reload the iframe alone (the link opens the page with them otherwise).
  function remoteImagesButton() {
    var button = document.getElementById("show-remote");
    var frame = document.getElementById("html-body");
    var status = document.getElementById("remote-status");
    if (!button || !frame || !status) return;
    button.addEventListener("click", function (event) {
      event.preventDefault();
      frame.src = button.dataset.bodyUrl;
      status.textContent = "Remote images are shown.";
    });
  }

  function stopListening() {
    if (events) { events.close(); events = null; }
  }

  document.addEventListener("DOMContentLoaded", function () {
    remoteImagesButton();
    listen();
  });
  window.addEventListener("pagehide", stopListening);
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { listen(); reloadList(); }
  });
})();
