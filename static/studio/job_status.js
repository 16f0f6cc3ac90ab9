/* The job page between polls: the countdown ("About 40 s left") and the progress bar estimated
 * from the expected finish move every second here, in the browser.
 *
 * The status partial is polled every 2 s, and the server answers 304 while the job itself has not
 * changed (studio/unchanged_polls.py), so the fragment htmx swaps in is the one the browser kept,
 * with the figures of when it was drawn. This brings them up to date at once after each swap, and
 * every second. The wording and the sums are those of studio/jobs/eta.py and the template, which
 * draw the same figures for a page without scripts.
 *
 * The server's clock decides: the page says what time it was drawn (data-server-time on this
 * script), and the difference to this machine's clock is kept. No inline code (CSP).
 */
(function () {
  "use strict";
  if (window.studioJobStatus) return; // loaded twice: one timer is enough
  window.studioJobStatus = true;

  var drawnAt = Date.parse((document.currentScript || {}).dataset ? document.currentScript.dataset.serverTime : "");
  var skew = isNaN(drawnAt) ? 0 : drawnAt - Date.now(); // server time minus this machine's

  function now() {
    return Date.now() + skew;
  }

  function countdown(secondsLeft) { // as Eta.seconds_left and minutes_left
    if (secondsLeft === 0) return "Any moment now";
    if (secondsLeft < 60) return "About " + secondsLeft + " s left";
    return "About " + Math.max(1, Math.floor((secondsLeft + 30) / 60)) + " min left";
  }

  function percentDone(bar) { // as eta._progress: the larger of the reported and the elapsed share
    var reported = Math.min(99, parseInt(bar.dataset.progress, 10) || 0);
    var started = Date.parse(bar.dataset.runningAt);
    var expected = Date.parse(bar.dataset.etaAt) - started;
    if (!(expected > 0)) return 99;
    return Math.max(reported, Math.min(99, Math.floor((100 * (now() - started)) / expected)));
  }

  function update() {
    document.querySelectorAll("time[data-countdown]").forEach(function (time) {
      var left = Math.max(0, Math.ceil((Date.parse(time.dateTime) - now()) / 1000));
      if (!isNaN(left)) time.textContent = countdown(left);
    });
    document.querySelectorAll("progress[data-running-at]").forEach(function (bar) {
      var percent = percentDone(bar);
      bar.value = percent;
      bar.textContent = percent + "%";
      var label = bar.parentNode.querySelector(".percent");
      if (label) label.textContent = percent + "%";
    });
  }

  document.addEventListener("htmx:afterSwap", update);
  update();
  setInterval(update, 1000);
})();
