/* Kling's motion brush on the new-job form (templates/studio/_motion_brush.html).
 *
 * The member paints a still area and up to six moving areas over the chosen image, and draws
 * the path each moving area takes, with a mouse, a finger or a pen (pointer events). Masks are
 * painted on offscreen canvases in image pixels (at most WORK_SIDE a side; a bigger image is
 * painted at a reduced scale and enlarged without smoothing on export). On submit, every mask
 * with paint becomes a black-and-white PNG at the image's natural, upright size (white = painted)
 * in the static_mask / dynamic_mask_N file inputs, each path a JSON list of whole [x, y] image
 * pixels in trajectory_N; then the form posts as usual.
 *
 * The paint belongs to the image: choosing another image clears it. It lives outside the
 * partial, so htmx swapping the settings fieldset (another provider, then back) keeps it.
 * Plain ES2017, no dependencies. <img> decoding applies EXIF orientation, as the server does.
 */
(function () {
  "use strict";

  // htmx runs this file again each time it swaps the partial in: the first copy does the work.
  if (window.studioMotionBrush) {
    window.studioMotionBrush.scan();
    return;
  }

  const MAX_AREAS = 6; // Kling takes at most six dynamic masks
  const MAX_POINTS = 100; // per path, after simplification
  const WORK_SIDE = 2048; // masks are coarse: a larger drawing surface only costs phone memory
  const STILL_COLOUR = "#3454d1";
  const AREA_COLOURS = ["#e4572e", "#12a594", "#c98a00", "#b0307a", "#4f8a10", "#7b4fd6"];
  const CONTROLS = "motion-brush-controls"; // the form= of inputs that are not sent
  const CONFLICT =
    "Kling cannot combine an end frame with the motion brush: " +
    "remove the end frame or clear the brush.";

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const imageInput = (form) =>
    (form || document).querySelector('input[type="file"][name="image"]');

  // --- The paint: one per chosen image, whichever partial shows it ---------------------------
  let picture = null; // { file, img, width, height, scale }; scale: drawing px per image px
  let loading = 0; // the latest image chosen wins
  let paint = blankPaint();
  let ui = null; // the partial on the page now, or null

  function blankPaint() {
    return { still: layer(), areas: [area()], tool: { kind: "still", index: 0 }, revision: 0 };
  }
  function layer() {
    return { canvas: null, revision: 0, counted: -1, count: 0 };
  }
  function area() {
    return { mask: layer(), path: [] };
  }
  function layers() {
    return [paint.still].concat(paint.areas.map((a) => a.mask));
  }
  function changed() {
    paint.revision += 1;
  }

  function surface(target) {
    if (!target.canvas) {
      target.canvas = document.createElement("canvas");
      target.canvas.width = Math.max(1, Math.round(picture.width * picture.scale));
      target.canvas.height = Math.max(1, Math.round(picture.height * picture.scale));
      // Read back at every stroke's end (is anything painted?): keep it in memory, not the GPU.
      target.canvas.getContext("2d", { willReadFrequently: true });
    }
    return target.canvas;
  }

  // Painting one area takes the same pixels from the others: a spot cannot both move and stay.
  function stroke(target, from, to, diameter, erase) {
    const k = picture.scale;
    for (const each of layers()) {
      let mode;
      if (each === target) mode = erase ? "destination-out" : "source-over";
      else if (!erase && each.canvas && !known(each, 0)) mode = "destination-out";
      else continue;
      const ctx = surface(each).getContext("2d");
      ctx.globalCompositeOperation = mode;
      ctx.fillStyle = ctx.strokeStyle = "#fff";
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.lineWidth = Math.max(1, diameter * k);
      ctx.beginPath();
      if (from[0] === to[0] && from[1] === to[1]) {
        ctx.arc(from[0] * k, from[1] * k, ctx.lineWidth / 2, 0, 2 * Math.PI);
        ctx.fill();
      } else {
        ctx.moveTo(from[0] * k, from[1] * k);
        ctx.lineTo(to[0] * k, to[1] * k);
        ctx.stroke();
      }
      each.revision += 1;
    }
  }

  // How many pixels of a layer are painted (alpha ≥ 50 %), counted again only once it changed;
  // with `keep`, also the layer in black and white at drawing size.
  function binary(target, keep) {
    if (!target.canvas) return { count: 0, canvas: null };
    if (!keep && known(target)) return { count: target.count, canvas: null };
    const { width, height } = target.canvas;
    const pixels = target.canvas.getContext("2d").getImageData(0, 0, width, height);
    const data = pixels.data;
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
      const on = data[i + 3] >= 128;
      if (on) count += 1;
      if (keep) {
        data[i] = data[i + 1] = data[i + 2] = on ? 255 : 0;
        data[i + 3] = 255;
      }
    }
    target.counted = target.revision;
    target.count = count;
    if (!keep) return { count, canvas: null };
    const copy = document.createElement("canvas");
    [copy.width, copy.height] = [width, height];
    copy.getContext("2d").putImageData(pixels, 0, 0);
    return { count, canvas: copy };
  }

  // Is the layer's count up to date (and, if given, equal to `count`)?
  function known(target, count) {
    return target.counted === target.revision && (count === undefined || target.count === count);
  }

  function painted(target) {
    return binary(target, false).count > 0;
  }

  function exportMask(target) {
    const small = binary(target, true).canvas;
    let out = small;
    if (small.width !== picture.width || small.height !== picture.height) {
      out = document.createElement("canvas");
      [out.width, out.height] = [picture.width, picture.height];
      const ctx = out.getContext("2d");
      ctx.imageSmoothingEnabled = false; // nearest neighbour: the PNG stays black and white
      ctx.drawImage(small, 0, 0, out.width, out.height);
    }
    return new Promise((resolve, reject) =>
      out.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("toBlob"))), "image/png")
    );
  }

  // Whole image pixels inside the image, no repeats, at most MAX_POINTS (Douglas–Peucker with a
  // growing tolerance, so the shape is kept as closely as the budget allows).
  function trajectory(path) {
    const whole = [];
    for (const [x, y] of path) {
      const point = [
        clamp(Math.round(x), 0, picture.width - 1),
        clamp(Math.round(y), 0, picture.height - 1),
      ];
      const last = whole[whole.length - 1];
      if (!last || last[0] !== point[0] || last[1] !== point[1]) whole.push(point);
    }
    if (whole.length <= 2) return whole;
    let tolerance = 0.5;
    let result = simplify(whole, tolerance);
    while (result.length > MAX_POINTS) {
      tolerance *= 1.5;
      result = simplify(whole, tolerance);
    }
    return result;
  }

  function simplify(points, tolerance) {
    const keep = new Uint8Array(points.length);
    keep[0] = keep[points.length - 1] = 1;
    const stack = [[0, points.length - 1]];
    while (stack.length) {
      const [first, last] = stack.pop();
      let farthest = -1;
      let distance = tolerance;
      for (let i = first + 1; i < last; i += 1) {
        const d = offLine(points[i], points[first], points[last]);
        if (d > distance) [farthest, distance] = [i, d];
      }
      if (farthest > 0) {
        keep[farthest] = 1;
        stack.push([first, farthest], [farthest, last]);
      }
    }
    return points.filter((_, i) => keep[i]);
  }

  function offLine([px, py], [ax, ay], [bx, by]) {
    const [dx, dy] = [bx - ax, by - ay];
    const length = Math.hypot(dx, dy);
    if (!length) return Math.hypot(px - ax, py - ay);
    return Math.abs(dy * px - dx * py + bx * ay - by * ax) / length;
  }

  // --- What a submit would send, and what stops it --------------------------------------------
  function review() {
    const still = picture ? painted(paint.still) : false;
    const areas = paint.areas.map((a, i) => {
      const hasPaint = picture ? painted(a.mask) : false;
      const points = picture && a.path.length ? trajectory(a.path) : [];
      let problem = "";
      if (hasPaint && points.length < 2) {
        problem = a.path.length
          ? `Drag to draw path ${i + 1}: it needs a start and an end.`
          : `Draw the path moving area ${i + 1} takes (choose “Path ${i + 1}”).`;
      } else if (!hasPaint && points.length) {
        problem = `Paint the area that follows path ${i + 1} (choose “Moving area ${i + 1}”).`;
      }
      return { painted: hasPaint, points, problem };
    });
    const used = still || areas.some((a) => a.painted || a.points.length);
    const tail = ui && ui.tail && ui.tail.files && ui.tail.files.length > 0;
    return { still, areas, used, conflict: Boolean(tail && used) };
  }

  // --- The partial ----------------------------------------------------------------------------
  function scan() {
    const root = document.querySelector("[data-motion-brush]");
    if (ui && ui.root === root) return;
    ui = root ? bind(root) : null;
    if (ui) load();
  }

  function bind(root) {
    const $ = (id) => root.querySelector("#" + id);
    const view = {
      root,
      form: root.closest("form"),
      canvas: $("brush-canvas"),
      tail: root.querySelector('input[name="tail_image"]'),
      size: $("brush-size"),
      eraser: $("brush-eraser"),
      pointer: null, // the pointer drawing now: { id, last }
      hover: null, // a mouse over the canvas: [x, y] in canvas pixels
      frame: 0,
      tried: false, // a submit was stopped: problems are shown as they change
      filled: -1, // the paint revision the file inputs hold
      busy: false,
      $,
    };
    root.querySelector('[data-layer="still"]').style.background = STILL_COLOUR;
    $("brush").hidden = false;

    // The controls are the brush's own: the price estimate need not hear them.
    const own = (event) => event.target.getAttribute("form") === CONTROLS;
    root.addEventListener("change", (event) => {
      if (event.target === view.tail) return showProblems(view);
      if (!own(event)) return;
      event.stopPropagation();
      if (event.target.name === "brush_tool") choose(view, event.target.value);
      else controlsChanged(view);
    });
    root.addEventListener("input", (event) => {
      if (own(event)) event.stopPropagation();
      if (event.target === view.size) redraw(view);
    });
    $("brush-add").addEventListener("click", () => {
      if (paint.areas.length >= MAX_AREAS) return;
      paint.areas.push(area());
      paint.tool = { kind: "area", index: paint.areas.length - 1 };
      edited(view);
    });
    $("brush-remove").addEventListener("click", () => {
      if (paint.tool.kind === "still") return;
      paint.areas.splice(paint.tool.index, 1);
      if (!paint.areas.length) paint.areas.push(area());
      paint.tool = { kind: "still", index: 0 };
      edited(view);
    });
    $("brush-clear").addEventListener("click", () => {
      const chosen = paint.tool.kind === "still" ? null : paint.areas[paint.tool.index];
      if (paint.tool.kind === "path") chosen.path = [];
      else clearLayer(chosen ? chosen.mask : paint.still);
      edited(view);
    });
    $("brush-clear-all").addEventListener("click", () => {
      paint = Object.assign(blankPaint(), { revision: paint.revision });
      edited(view);
    });

    const canvas = view.canvas;
    canvas.addEventListener("pointerdown", (event) => down(view, event));
    canvas.addEventListener("pointermove", (event) => move(view, event));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      canvas.addEventListener(type, (event) => up(view, event));
    }
    canvas.addEventListener("pointerleave", () => {
      view.hover = null;
      redraw(view);
    });
    canvas.addEventListener("contextmenu", (event) => event.preventDefault());
    renderTools(view);
    return view;
  }

  function clearLayer(target) {
    if (!target.canvas) return;
    target.canvas.getContext("2d").clearRect(0, 0, target.canvas.width, target.canvas.height);
    target.revision += 1;
  }

  function choose(view, value) {
    const [kind, number] = value.split("-");
    paint.tool = { kind, index: kind === "still" ? 0 : Number(number) - 1 };
    controlsChanged(view);
  }

  function controlsChanged(view) {
    renderTools(view);
    redraw(view);
  }

  function edited(view) {
    changed();
    renderTools(view);
    showProblems(view);
    redraw(view);
  }

  // The tool rows follow the areas; existing rows are updated in place, so a radio being moved
  // through with the arrow keys keeps its focus.
  function renderTools(view) {
    const { $ } = view;
    const list = $("brush-areas");
    while (list.children.length > paint.areas.length) list.removeChild(list.lastElementChild);
    while (list.children.length < paint.areas.length) {
      list.appendChild($("brush-area-template").content.firstElementChild.cloneNode(true));
    }
    paint.areas.forEach((_, i) => {
      const row = list.children[i];
      const n = i + 1;
      for (const input of row.querySelectorAll("input[data-tool]")) {
        const kind = input.dataset.tool;
        input.value = `${kind}-${n}`;
        input.checked = paint.tool.kind === kind && paint.tool.index === i;
        input.setAttribute("aria-describedby", `brush-area-${n}-error`);
      }
      for (const swatch of row.querySelectorAll(".brush-swatch")) {
        swatch.style.background = AREA_COLOURS[i];
      }
      row.querySelector('[data-name="area"]').textContent = `Moving area ${n}`;
      row.querySelector('[data-name="path"]').textContent = `Path ${n}`;
      row.querySelector("[data-area-error]").id = `brush-area-${n}-error`;
    });
    view.root.querySelector('input[name="brush_tool"][value="still"]').checked =
      paint.tool.kind === "still";
    const tool = paint.tool;
    const number = tool.index + 1;
    $("brush-add").disabled = paint.areas.length >= MAX_AREAS;
    $("brush-remove").disabled = tool.kind === "still";
    $("brush-remove").textContent =
      tool.kind === "still" ? "Remove a moving area" : `Remove moving area ${number}`;
    view.eraser.disabled = tool.kind === "path";
    $("brush-clear").textContent =
      tool.kind === "still"
        ? "Clear the still area"
        : `Clear ${tool.kind === "path" ? "path" : "moving area"} ${number}`;
  }

  // Problems beside what they concern. The end frame is checked at once; a missing path or area
  // only once a submit has been stopped for it (the member may be halfway through).
  function showProblems(view, found) {
    const result = found || review();
    view.$("tail-image-error").textContent = result.conflict ? CONFLICT : "";
    const rows = view.root.querySelectorAll("[data-area-error]");
    result.areas.forEach((a, i) => {
      if (rows[i]) rows[i].textContent = view.tried ? a.problem : "";
    });
    if (!result.conflict && result.areas.every((a) => !a.problem)) {
      view.$("brush-error").textContent = "";
    }
    status(view, result);
    return result;
  }

  function status(view, result) {
    const parts = [];
    if (result.still) parts.push("still area painted");
    result.areas.forEach((a, i) => {
      const what = [a.painted ? "painted" : "", a.points.length >= 2 ? "path drawn" : ""];
      const said = what.filter(Boolean).join(", ");
      if (said) parts.push(`moving area ${i + 1} ${said}`);
    });
    const text = parts.length ? parts.join("; ") : "nothing painted yet";
    view.$("brush-status").textContent = text.charAt(0).toUpperCase() + text.slice(1) + ".";
  }

  // --- Pointers ------------------------------------------------------------------------------
  function imagePoint(view, event) {
    const rect = view.canvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * picture.width,
      ((event.clientY - rect.top) / rect.height) * picture.height,
    ];
  }

  // The brush's diameter in image pixels: the slider is in screen pixels, so it feels the same
  // on a phone and on a wide screen.
  function diameter(view) {
    const rect = view.canvas.getBoundingClientRect();
    return (Number(view.size.value) * picture.width) / Math.max(1, rect.width);
  }

  function down(view, event) {
    if (!picture || view.busy || view.pointer || event.button > 0) return;
    event.preventDefault();
    view.canvas.setPointerCapture(event.pointerId);
    const point = imagePoint(view, event);
    view.pointer = { id: event.pointerId, last: point };
    const tool = paint.tool;
    if (tool.kind === "path") paint.areas[tool.index].path = [point];
    else stroke(target(), point, point, diameter(view), view.eraser.checked);
    redraw(view);
  }

  function move(view, event) {
    if (!picture) return;
    if (event.pointerType === "mouse") {
      const rect = view.canvas.getBoundingClientRect();
      const ratio = view.canvas.width / Math.max(1, rect.width);
      view.hover = [(event.clientX - rect.left) * ratio, (event.clientY - rect.top) * ratio];
    }
    if (view.pointer && view.pointer.id === event.pointerId) {
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      for (const each of events.length ? events : [event]) {
        const point = imagePoint(view, each);
        if (paint.tool.kind === "path") paint.areas[paint.tool.index].path.push(point);
        else stroke(target(), view.pointer.last, point, diameter(view), view.eraser.checked);
        view.pointer.last = point;
      }
    }
    redraw(view);
  }

  function up(view, event) {
    if (!view.pointer || view.pointer.id !== event.pointerId) return;
    view.pointer = null;
    if (event.pointerType !== "mouse") view.hover = null;
    edited(view);
  }

  function target() {
    return paint.tool.kind === "still" ? paint.still : paint.areas[paint.tool.index].mask;
  }

  // --- Drawing the view ----------------------------------------------------------------------
  function redraw(view) {
    if (!view.frame) view.frame = window.requestAnimationFrame(() => draw(view));
  }

  let backdrop = null; // the picture scaled to the canvas once, not on every pointer move
  let scratch = null;

  function draw(view) {
    view.frame = 0;
    const { canvas, $ } = view;
    $("brush-empty").hidden = Boolean(picture);
    $("brush-body").hidden = !picture;
    if (!picture) return;
    const ratio = window.devicePixelRatio || 1;
    const stage = canvas.parentElement;
    const maxHeight = Math.max(240, window.innerHeight * 0.6);
    const [iw, ih] = [picture.width, picture.height];
    const cssWidth = Math.max(1, Math.min(stage.clientWidth || iw, iw, (maxHeight * iw) / ih));
    const [w, h] = [Math.round(cssWidth * ratio), Math.max(1, Math.round(((cssWidth * ih) / iw) * ratio))];
    if (canvas.width !== w || canvas.height !== h) [canvas.width, canvas.height] = [w, h];
    canvas.style.width = cssWidth + "px";
    canvas.setAttribute("aria-label", `The chosen image, ${iw}×${ih} pixels, to paint on`);

    const ctx = canvas.getContext("2d");
    if (!backdrop || backdrop.img !== picture.img || backdrop.width !== w || backdrop.height !== h) {
      const copy = document.createElement("canvas");
      [copy.width, copy.height] = [w, h];
      copy.getContext("2d").drawImage(picture.img, 0, 0, w, h);
      backdrop = { img: picture.img, width: w, height: h, copy };
    }
    ctx.globalCompositeOperation = "copy";
    ctx.drawImage(backdrop.copy, 0, 0);
    ctx.globalCompositeOperation = "source-over";
    tint(ctx, paint.still, STILL_COLOUR, w, h);
    paint.areas.forEach((a, i) => tint(ctx, a.mask, AREA_COLOURS[i], w, h));
    paint.areas.forEach((a, i) => drawPath(ctx, a.path, AREA_COLOURS[i], w / iw, ratio));

    if (view.hover && paint.tool.kind !== "path") {
      const radius = (Number(view.size.value) * ratio) / 2;
      ctx.beginPath();
      ctx.arc(view.hover[0], view.hover[1], radius, 0, 2 * Math.PI);
      ctx.lineWidth = ratio;
      ctx.strokeStyle = "rgba(255, 255, 255, 0.95)";
      ctx.stroke();
      ctx.beginPath();
      ctx.arc(view.hover[0], view.hover[1], radius + ratio, 0, 2 * Math.PI);
      ctx.strokeStyle = "rgba(0, 0, 0, 0.6)";
      ctx.stroke();
    }
  }

  function tint(ctx, target, colour, w, h) {
    if (!target.canvas) return;
    if (!scratch) scratch = document.createElement("canvas");
    if (scratch.width !== w || scratch.height !== h) [scratch.width, scratch.height] = [w, h];
    const s = scratch.getContext("2d");
    s.globalCompositeOperation = "source-over";
    s.clearRect(0, 0, w, h);
    s.drawImage(target.canvas, 0, 0, w, h);
    s.globalCompositeOperation = "source-in";
    s.fillStyle = colour;
    s.fillRect(0, 0, w, h);
    ctx.globalAlpha = 0.55;
    ctx.drawImage(scratch, 0, 0);
    ctx.globalAlpha = 1;
  }

  function drawPath(ctx, path, colour, k, ratio) {
    if (!path.length) return;
    const points = path.map(([x, y]) => [x * k, y * k]);
    ctx.lineCap = ctx.lineJoin = "round";
    for (const [width, style] of [[6 * ratio, "#fff"], [3 * ratio, colour]]) {
      ctx.beginPath();
      points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.lineWidth = width;
      ctx.strokeStyle = style;
      ctx.stroke();
    }
    const [sx, sy] = points[0];
    ctx.beginPath();
    ctx.arc(sx, sy, 5 * ratio, 0, 2 * Math.PI);
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.lineWidth = 2 * ratio;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
    // An arrowhead where the path ends, pointing the way it goes.
    const [ex, ey] = points[points.length - 1];
    const back = points.slice(0, -1).reverse().find(([x, y]) => Math.hypot(ex - x, ey - y) > 4 * ratio);
    if (!back) return;
    const angle = Math.atan2(ey - back[1], ex - back[0]);
    const size = 12 * ratio;
    ctx.beginPath();
    ctx.moveTo(ex, ey);
    ctx.lineTo(ex - size * Math.cos(angle - 0.45), ey - size * Math.sin(angle - 0.45));
    ctx.lineTo(ex - size * Math.cos(angle + 0.45), ey - size * Math.sin(angle + 0.45));
    ctx.closePath();
    ctx.fillStyle = colour;
    ctx.fill();
    ctx.stroke();
  }

  // --- The chosen image ----------------------------------------------------------------------
  async function load() {
    const input = imageInput(ui && ui.form);
    const file = input && input.files && input.files[0];
    if (picture && file === picture.file) {
      if (ui) showProblems(ui);
      if (ui) redraw(ui);
      return;
    }
    const id = ++loading;
    const hadPaint = picture && review().used;
    picture = null;
    paint = Object.assign(blankPaint(), { revision: paint.revision + 1 });
    if (ui) controlsChanged(ui);
    if (!file) return;
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.src = url;
    try {
      await img.decode();
      if (id !== loading) return;
      const [width, height] = [img.naturalWidth, img.naturalHeight];
      const scale = Math.min(1, WORK_SIDE / Math.max(width, height));
      picture = { file, img, width, height, scale };
    } catch (error) {
      if (id === loading && ui) ui.$("brush-status").textContent = "This file cannot be painted on.";
      return;
    } finally {
      URL.revokeObjectURL(url);
    }
    if (!ui) return;
    showProblems(ui);
    if (hadPaint) ui.$("brush-status").textContent = "A new image: the brush starts again.";
    redraw(ui);
  }

  // --- Submitting ----------------------------------------------------------------------------
  async function fill(view, found) {
    const inputs = (name) => view.root.querySelector(`input[name="${name}"]`);
    const put = (input, blob, name) => {
      const files = new DataTransfer();
      files.items.add(new File([blob], name, { type: "image/png" }));
      input.files = files.files;
      input.disabled = false;
    };
    clearInputs(view);
    if (found.still) put(inputs("static_mask"), await exportMask(paint.still), "static_mask.png");
    let n = 0;
    for (const [i, a] of found.areas.entries()) {
      if (!a.painted) continue; // review() has stopped any area without its path
      n += 1;
      put(inputs(`dynamic_mask_${n}`), await exportMask(paint.areas[i].mask), `dynamic_mask_${n}.png`);
      const path = inputs(`trajectory_${n}`);
      path.value = JSON.stringify(a.points);
      path.disabled = false;
    }
  }

  function clearInputs(view) {
    for (const input of view.root.querySelectorAll(
      'input[name="static_mask"], input[name^="dynamic_mask_"], input[name^="trajectory_"]'
    )) {
      input.value = "";
      input.disabled = true;
    }
  }

  function refuse(view, event, found, message) {
    event.preventDefault();
    view.tried = true;
    showProblems(view, found);
    if (message) view.$("brush-error").textContent = message;
    const first = found.conflict
      ? view.tail
      : view.root.querySelector(".field-error:not(:empty)") || view.$("brush-error");
    if (first && first.scrollIntoView) first.scrollIntoView({ block: "center" });
    if (found.conflict && view.tail) view.tail.focus();
  }

  document.addEventListener("submit", (event) => {
    const view = ui;
    if (!view || event.target !== view.form || !document.contains(view.root)) return;
    if (view.busy) return event.preventDefault();
    const found = review();
    if (found.conflict || found.areas.some((a) => a.problem)) {
      return refuse(view, event, found, "");
    }
    view.tried = false;
    showProblems(view, found);
    if (view.filled === paint.revision) return; // the inputs already hold this paint
    if (!found.used || !picture) {
      clearInputs(view);
      view.filled = paint.revision;
      return;
    }
    if (typeof DataTransfer !== "function") {
      return refuse(view, event, found, "This browser cannot send the brush: clear it, or use another browser.");
    }
    event.preventDefault();
    const submitter = event.submitter;
    const revision = paint.revision;
    view.busy = true;
    fill(view, found).then(
      () => {
        view.busy = false;
        if (revision !== paint.revision) return; // painted meanwhile: the member submits again
        view.filled = revision;
        if (!view.form.requestSubmit) view.form.submit();
        else if (submitter && submitter.form === view.form) view.form.requestSubmit(submitter);
        else view.form.requestSubmit();
      },
      () => {
        view.busy = false;
        clearInputs(view);
        view.$("brush-error").textContent = "The brush could not be prepared: try again, or clear it.";
      }
    );
  });

  document.addEventListener("change", (event) => {
    if (ui && event.target === imageInput(ui.form)) load();
  });
  window.addEventListener("resize", () => ui && redraw(ui));
  document.addEventListener("htmx:load", scan);
  window.studioMotionBrush = { scan };
  scan();
})();
