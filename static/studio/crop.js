/* Crop preview on the new-job form (templates/studio/_crop_preview.html).
 *
 * Shows the chosen picture. When the settings fieldset has Stability's focus_x / focus_y
 * (percent) and orientation fields, it also darkens what will be cut away, exactly as
 * studio/providers/images.py crop_box() cuts it, and lets a click or drag move the focus.
 * Plain ES2017, no dependencies. The browser's <img> decoding applies EXIF orientation
 * (image-orientation: from-image), so the preview is upright like the server's result.
 */
(function () {
  "use strict";

  // studio/providers/images.py STABILITY_SIZES, in the same order (it decides ties).
  const SIZES = { landscape: [1024, 576], portrait: [576, 1024], square: [768, 768] };
  let picture = null; // the decoded <img>, or null
  let loading = 0; // the latest load wins when files are chosen quickly in turn
  let drag = null; // focus values when a drag began
  let frame = 0;

  const $ = (id) => document.getElementById(id);
  const fileInput = () => document.querySelector('input[type="file"][name="image"]');
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function fields() {
    const scope = (fileInput() && fileInput().form) || document;
    const x = scope.querySelector('[name="focus_x"]');
    const y = scope.querySelector('[name="focus_y"]');
    return x && y ? { x, y, orientation: scope.querySelector('[name="orientation"]') } : null;
  }

  function percent(input) {
    const value = parseFloat(input.value);
    return Number.isFinite(value) ? clamp(value, 0, 100) / 100 : 0.5;
  }

  function nearest(w, h) {
    const aspect = Math.log(w / h);
    let best = "";
    let bestDistance = Infinity;
    for (const key of Object.keys(SIZES)) {
      const distance = Math.abs(Math.log(SIZES[key][0] / SIZES[key][1]) - aspect);
      if (distance < bestDistance - 1e-9) [best, bestDistance] = [key, distance];
    }
    return best;
  }

  // The largest box of aspect tw:th inside w×h, centred on the focus, kept inside.
  function cropBox(w, h, tw, th, fx, fy) {
    let bw = w;
    let bh = h;
    if (w * th > h * tw) bw = Math.min(w, Math.max(1, Math.round((h * tw) / th)));
    else bh = Math.min(h, Math.max(1, Math.round((w * th) / tw)));
    const left = clamp(Math.round(fx * w - bw / 2), 0, w - bw);
    const top = clamp(Math.round(fy * h - bh / 2), 0, h - bh);
    return [left, top, bw, bh];
  }

  // The picture scaled to the canvas once, not on every pointer move (a phone photo is 12 MP).
  let cache = null;
  function scaled(w, h) {
    if (!cache || cache.picture !== picture || cache.width !== w || cache.height !== h) {
      const copy = document.createElement("canvas");
      [copy.width, copy.height] = [w, h];
      copy.getContext("2d").drawImage(picture, 0, 0, w, h);
      cache = { picture, width: w, height: h, copy };
    }
    return cache.copy;
  }

  function draw() {
    frame = 0;
    const box = $("crop-preview-box");
    const canvas = $("crop-preview");
    const caption = $("crop-preview-caption");
    if (!box || !canvas || !caption) return;
    box.hidden = !picture && !caption.textContent;
    canvas.style.display = picture ? "block" : "none";
    if (!picture) return;
    const iw = picture.naturalWidth;
    const ih = picture.naturalHeight;
    const ratio = window.devicePixelRatio || 1;
    const maxHeight = Math.max(240, window.innerHeight * 0.6);
    const cssWidth = Math.max(1, Math.min(box.clientWidth || iw, iw, (maxHeight * iw) / ih));
    canvas.width = Math.round(cssWidth * ratio);
    canvas.height = Math.max(1, Math.round(((cssWidth * ih) / iw) * ratio));
    canvas.style.width = cssWidth + "px";
    const ctx = canvas.getContext("2d");
    ctx.drawImage(scaled(canvas.width, canvas.height), 0, 0);

    const f = fields();
    const size = `${iw}×${ih}`;
    if (!f) {
      caption.textContent = `The image you chose: ${size} pixels.`;
      canvas.setAttribute("aria-label", `Preview of the chosen image, ${size} pixels`);
      return;
    }
    const chosen = f.orientation && SIZES[f.orientation.value] ? f.orientation.value : "";
    const [tw, th] = SIZES[chosen || nearest(iw, ih)];
    const fx = percent(f.x);
    const fy = percent(f.y);
    const k = canvas.width / iw;
    const [l, t, w, h] = cropBox(iw, ih, tw, th, fx, fy).map((v) => v * k);
    const [cw, ch] = [canvas.width, canvas.height];
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(0, 0, cw, t);
    ctx.fillRect(0, t + h, cw, ch - t - h);
    ctx.fillRect(0, t, l, h);
    ctx.fillRect(l + w, t, cw - l - w, h);
    ctx.lineWidth = 2 * ratio;
    ctx.strokeStyle = "#fff";
    ctx.strokeRect(l + ratio, t + ratio, w - 2 * ratio, h - 2 * ratio);
    ctx.beginPath(); // the focus point
    ctx.arc(fx * cw, fy * ch, 6 * ratio, 0, 2 * Math.PI);
    ctx.fillStyle = "rgba(255, 255, 255, 0.9)";
    ctx.fill();
    ctx.strokeStyle = "#1d2330";
    ctx.stroke();
    caption.textContent =
      `Stability receives this part, resized to ${tw}×${th} (your image is ${size}). ` +
      "Click or drag on the picture, or use the focus fields, to move it.";
    canvas.setAttribute(
      "aria-label",
      `Preview of the chosen image, ${size} pixels, with the part sent to Stability outlined`
    );
  }

  function redraw() {
    if (!frame) frame = window.requestAnimationFrame(draw);
  }

  // The image the form already holds (kept after a refusal, or the source job's), if any.
  const keptSource = () => {
    const box = $("crop-preview-box");
    return (box && box.dataset.keptSrc) || "";
  };

  // The chosen file, else the kept image: a file chosen replaces it, a file cleared restores it.
  async function load() {
    const input = fileInput();
    const file = input && input.files && input.files[0];
    const caption = $("crop-preview-caption");
    const id = ++loading;
    picture = null;
    if (caption) caption.textContent = "";
    const url = file ? URL.createObjectURL(file) : keptSource();
    if (!url) return redraw();
    const img = new Image();
    img.src = url;
    try {
      await img.decode();
      if (id === loading) picture = img;
    } catch (error) {
      if (id === loading && caption) caption.textContent = "This file cannot be previewed.";
    } finally {
      if (file) URL.revokeObjectURL(url);
    }
    if (id === loading) redraw();
  }

  function moveFocus(event) {
    const f = fields();
    const rect = event.target.getBoundingClientRect();
    if (!f || !rect.width || !rect.height) return;
    f.x.value = String(Math.round(clamp((event.clientX - rect.left) / rect.width, 0, 1) * 100));
    f.y.value = String(Math.round(clamp((event.clientY - rect.top) / rect.height, 0, 1) * 100));
    redraw();
  }

  function endDrag() {
    const f = drag && fields();
    const before = drag;
    drag = null;
    if (!f) return;
    // One bubbling change, so listeners on the form (the price estimate) fire once per drag;
    // an input that changed too but is not last still hears its own, non-bubbling, change.
    const changed = [f.x, f.y].filter((input) => input.value !== before[input.name]);
    changed.forEach((input, i) =>
      input.dispatchEvent(new Event("change", { bubbles: i === changed.length - 1 }))
    );
  }

  const onCanvas = (event) => event.target && event.target.id === "crop-preview";
  document.addEventListener("pointerdown", (event) => {
    const f = onCanvas(event) && picture && fields();
    if (!f || event.button > 0) return;
    event.preventDefault();
    event.target.setPointerCapture(event.pointerId);
    drag = { focus_x: f.x.value, focus_y: f.y.value };
    moveFocus(event);
  });
  document.addEventListener("pointermove", (event) => {
    if (drag && onCanvas(event)) moveFocus(event);
  });
  for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
    document.addEventListener(type, () => drag && endDrag());
  }
  document.addEventListener("change", (event) => {
    if (event.target === fileInput()) load();
  });
  const redrawOn = new Set(["focus_x", "focus_y", "orientation"]);
  for (const type of ["input", "change"]) {
    document.addEventListener(type, (event) => {
      if (!drag && event.target && redrawOn.has(event.target.name)) redraw();
    });
  }
  document.body.addEventListener("htmx:afterSwap", redraw);
  document.body.addEventListener("htmx:load", redraw);
  window.addEventListener("resize", redraw);
  if ((fileInput() && fileInput().files && fileInput().files.length) || keptSource()) load();
})();
