/* The new-job form's image (templates/studio/job_new.html): a picture dropped on the form or
 * pasted (Ctrl/Cmd-V) fills the file input, as choosing it would; crop.js then previews it.
 * A file input can only be filled with a FileList, which a DataTransfer makes.
 * Plain ES2017, no dependencies; no inline handlers (the page runs under a CSP).
 */
(function () {
  "use strict";

  const form = document.getElementById("new-job");
  const input = form && form.querySelector('input[type="file"][name="image"]');
  if (!input) return;
  const zone = document.getElementById("image-drop") || form;
  const problem = document.getElementById("image-drop-problem");
  const accepted = (input.getAttribute("accept") || "image/*").split(",").map((t) => t.trim());

  function acceptable(file) {
    return accepted.some((type) =>
      type.endsWith("/*") ? file.type.startsWith(type.slice(0, -1)) : file.type === type
    );
  }

  function say(message) {
    if (!problem) return;
    problem.textContent = message;
    problem.hidden = !message;
  }

  function firstImage(files) {
    return Array.from(files || []).find((file) => file.type.startsWith("image/")) || null;
  }

  // Fill the input and tell everyone listening (the preview, the price) as a real choice would.
  function choose(file) {
    if (!acceptable(file)) {
      say(`This is a ${file.type || "file"} we cannot use: ${input.getAttribute("accept")} only.`);
      return false;
    }
    const transfer = new DataTransfer();
    transfer.items.add(file);
    input.files = transfer.files;
    say("");
    const note = document.getElementById("kept-image-note");
    if (note) note.hidden = true;
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  input.addEventListener("change", () => {
    const note = document.getElementById("kept-image-note");
    if (note) note.hidden = input.files.length > 0;
    if (input.files.length) say("");
  });

  const carriesFiles = (event) =>
    event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  let depth = 0; // dragenter/dragleave fire for every child crossed
  form.addEventListener("dragenter", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth += 1;
    zone.classList.add("dragging");
  });
  form.addEventListener("dragover", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // without it the browser opens the file instead of dropping it here
    event.dataTransfer.dropEffect = "copy";
  });
  form.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (!depth) zone.classList.remove("dragging");
  });
  form.addEventListener("drop", (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault();
    depth = 0;
    zone.classList.remove("dragging");
    const files = event.dataTransfer.files;
    const file = firstImage(files) || (files && files[0]);
    if (file) choose(file);
  });

  document.addEventListener("paste", (event) => {
    const data = event.clipboardData;
    const file = data && firstImage(data.files);
    if (!file) return;
    // Text pasted into a text field stays text; an image on its own becomes the chosen image.
    const target = event.target;
    const typing =
      target && (target.isContentEditable || /^(TEXTAREA|INPUT)$/.test(target.tagName || ""));
    if (typing && target.type !== "file" && data.types.includes("text/plain")) return;
    event.preventDefault();
    choose(file);
  });
})();
