/* Copy buttons: <button type="button" data-copy="ID"> copies the value (or text) of element ID.
 *
 * Used for invitation links on the team settings page. No inline handlers, so it runs under a
 * Content-Security-Policy without 'unsafe-inline'. The clipboard API needs a secure context
 * (https, or localhost); elsewhere (http://192.168.x.y:8000) it falls back to selecting the field
 * and the older copy command, and if even that fails the field stays selected for Ctrl-C.
 */
(function () {
  "use strict";

  function fallbackCopy(field) {
    field.focus();
    field.select();
    try {
      return document.execCommand("copy");
    } catch (error) {
      return false;
    }
  }

  function say(button, text) {
    if (!button.dataset.label) button.dataset.label = button.textContent;
    button.textContent = text;
    clearTimeout(button._copyTimer);
    button._copyTimer = setTimeout(function () {
      button.textContent = button.dataset.label;
    }, 2000);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const field = document.getElementById(button.dataset.copy);
    if (!field) return;
    const text = "value" in field ? field.value : field.textContent;
    const done = function () { say(button, "Copied"); };
    const failed = function () {
      say(button, fallbackCopy(field) ? "Copied" : "Press Ctrl-C to copy");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, failed);
    } else {
      failed();
    }
  });
})();
