/* AKOOL's effects gallery on the new-job form (templates/studio/_effects_gallery.html).
 *
 * Choosing an effect hides the prompt fields (AKOOL ignores the prompt when an effect is set;
 * they are still sent, empty or not, because AKOOL marks them required). Previews play while
 * the pointer is over them or their effect is chosen. Plain ES2017, no dependencies; safe to
 * load again when htmx swaps the settings in.
 */
(function () {
  "use strict";

  const PROMPT_FIELDS = ["prompt", "negative_prompt", "extend_prompt"];

  function promptLabels(form) {
    return PROMPT_FIELDS.map((name) => form.querySelector(`[name="${name}"]`))
      .filter(Boolean)
      .map((input) => input.closest("label") || input);
  }

  function update(form) {
    const chosen = form.querySelector('input[name="effect_code"]:checked');
    const effect = chosen ? chosen.value : "";
    for (const label of promptLabels(form)) {
      label.hidden = Boolean(effect);
      const help = label.nextElementSibling;
      if (help && help.tagName === "SMALL") help.hidden = Boolean(effect);
    }
    for (const video of form.querySelectorAll(".effect video")) {
      const mine = video.closest(".effect").querySelector("input").checked;
      if (mine) video.play().catch(() => {});
      else video.pause();
    }
  }

  function setUp() {
    const gallery = document.getElementById("effects");
    if (!gallery || gallery.dataset.ready) return;
    gallery.dataset.ready = "1";
    const form = gallery.closest("form");
    gallery.addEventListener("change", () => update(form));
    for (const video of gallery.querySelectorAll("video")) {
      video.addEventListener("mouseenter", () => video.play().catch(() => {}));
      video.addEventListener("mouseleave", () => update(form));
    }
    update(form);
  }

  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:load", setUp); // the settings were swapped in
  if (document.readyState !== "loading") setUp();
})();
