/* Job cards (dashboard and gallery): a finished video's poster plays, muted, while the pointer is
 * over its card or the card has keyboard focus, and pauses when it leaves.
 *
 * The <video preload="none"> loads nothing until first played. Listeners sit on the document, so
 * cards that htmx swaps in (the dashboard's polling, the gallery's filters and pages) work too. No
 * inline handlers, so it runs under a Content-Security-Policy without 'unsafe-inline'.
 */
(function () {
  "use strict";
  if (window.studioCards) return; // loaded twice: one set of listeners is enough
  window.studioCards = true;

  function previewOf(target) {
    var card = target && target.closest ? target.closest("a.card[data-job-card]") : null;
    return card ? card.querySelector("video.card-preview") : null;
  }

  function play(event) {
    var video = previewOf(event.target);
    if (!video) return;
    var started = video.play();
    if (started && started.catch) started.catch(function () {}); // autoplay refused: the poster stays
  }

  function pause(event) {
    var video = previewOf(event.target);
    if (!video) return;
    var card = video.closest("a.card[data-job-card]");
    // Moving between a card's own children is not leaving it.
    if (event.relatedTarget && card.contains(event.relatedTarget)) return;
    if (event.type === "mouseout" && card.matches(":focus-within")) return;
    if (event.type === "focusout" && card.matches(":hover")) return;
    video.pause();
  }

  document.addEventListener("mouseover", play);
  document.addEventListener("focusin", play);
  document.addEventListener("mouseout", pause);
  document.addEventListener("focusout", pause);
})();
