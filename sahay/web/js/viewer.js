// The image viewer: the analysed image, one finding's heatmap layer at a time with its opacity,
// the numbered region boxes and the method's explanation. Zoom/pan and window/level live beside it.

import { heatmapLayerURL, imageURL } from "./api.js";
import { $, el, svg } from "./dom.js";
import { percent } from "./format.js";
import { reportError } from "./messages.js";
import { displayLabel } from "./format.js";
import { imageSize, refit, setImageSize, setUpZoom } from "./viewer-zoom.js";
import { resetWindow, setUpWindowing } from "./viewer-window.js";

let shown = null; // the analysis in the viewer; late answers for another one are dropped
const urls = new Set(); // object URLs of the shown analysis, revoked when it goes
const layerUrls = new Map(); // label -> object URL of its heatmap layer
let imageUrl = null;
let imageAbort = null;
let heatmapLabel = "";

export function setUpViewer() {
  setUpZoom(() => shown !== null);
  setUpWindowing(() => shown, loadImage);
  $("opacity").addEventListener("input", setLayerOpacity);
  $("heatmap-select").addEventListener("change", (event) => selectHeatmap(event.target.value));
  $("show-regions").addEventListener("change", () => drawRegions(findingOf(heatmapLabel)));
  $("enlarge").addEventListener("click", () => setEnlarged(!$("viewer-section").classList.contains("enlarged")));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("viewer-section").classList.contains("enlarged")) setEnlarged(false);
  });
}

/** A radiograph needs the screen: the enlarged viewer fills it, above everything but the
 * disclaimer. Escape or the same button closes it. */
function setEnlarged(on) {
  const section = $("viewer-section");
  section.classList.toggle("enlarged", on);
  document.body.classList.toggle("viewer-enlarged", on);
  const button = $("enlarge");
  button.setAttribute("aria-pressed", on ? "true" : "false");
  button.textContent = on ? "Close enlarged view" : "Enlarge";
  refit();
  $("viewer").focus();
}

/** Empty the viewer and free the images it holds. */
export function clearViewer() {
  if (imageAbort) imageAbort.abort();
  for (const url of urls) URL.revokeObjectURL(url);
  urls.clear();
  layerUrls.clear();
  imageUrl = null;
  heatmapLabel = "";
  shown = null;
  if ($("viewer-section").classList.contains("enlarged")) setEnlarged(false);
}

export function renderViewer(analysis, findings) {
  clearViewer();
  shown = analysis;
  const select = $("heatmap-select");
  select.replaceChildren(el("option", { value: "" }, "No heatmap"));
  const explained = findings.filter((f) => f.explanation);
  for (const finding of explained) {
    select.append(
      el("option", { value: finding.label }, `${finding.label} (${finding.positive ? "Positive" : "Negative"})`),
    );
  }
  select.disabled = explained.length === 0;
  const layer = $("heatmap-layer");
  layer.hidden = true;
  layer.removeAttribute("src");
  $("regions-layer").replaceChildren();
  $("explanation").replaceChildren(
    explained.length ? "" : el("p", { class: "muted" }, "This analysis has no heatmaps."),
  );
  setLayerOpacity();

  const image = analysis.image;
  $("regions-layer").setAttribute("viewBox", `0 0 ${image.columns} ${image.rows}`);
  setImageSize(image.columns, image.rows);
  resetWindow(analysis);
  loadImage(null);

  select.value = explained.length ? explained[0].label : "";
  selectHeatmap(select.value);
}

/** Show one finding's heatmap (the findings table's "Map" buttons). */
export function showHeatmap(label) {
  $("heatmap-select").value = label;
  selectHeatmap(label);
  $("viewer").scrollIntoView({ block: "nearest" });
}

const findingOf = (label) => (shown ? shown.findings.find((f) => f.label === label) : undefined);

function track(url) {
  urls.add(url);
  return url;
}

async function loadImage(windowing) {
  const analysis = shown;
  if (!analysis) return;
  if (imageAbort) imageAbort.abort();
  const abort = new AbortController();
  imageAbort = abort;
  $("viewer-loading").hidden = false;
  try {
    const url = track(await imageURL(analysis.id, windowing, abort.signal));
    if (shown !== analysis || abort.signal.aborted) {
      URL.revokeObjectURL(url);
      return;
    }
    const img = $("viewer-image");
    const previous = imageUrl;
    imageUrl = url;
    img.src = url;
    img.alt = `The analysed image, ${analysis.image.filename}`;
    if (previous) {
      // Keep the old image until the new one is drawn, so the viewer does not flash empty.
      img.addEventListener(
        "load",
        () => {
          URL.revokeObjectURL(previous);
          urls.delete(previous);
        },
        { once: true },
      );
    }
  } catch (error) {
    reportError(error, "Could not load the image");
  } finally {
    if (imageAbort === abort) $("viewer-loading").hidden = true;
  }
}

async function selectHeatmap(label) {
  heatmapLabel = label;
  const analysis = shown;
  const layer = $("heatmap-layer");
  const finding = findingOf(label);
  drawRegions(finding);
  describeExplanation(finding);
  // The old map goes at once: it must never sit under the new finding's name while this one loads.
  layer.hidden = true;
  layer.removeAttribute("src");
  showScale(null);
  if (!finding || !finding.explanation) {
    $("heatmap-loading").hidden = true;
    return;
  }
  $("heatmap-loading").hidden = false;
  try {
    let url = layerUrls.get(label);
    if (!url) {
      url = track(await heatmapLayerURL(analysis.id, label));
      if (shown !== analysis) return;
      layerUrls.set(label, url);
    }
    if (heatmapLabel !== label) return;
    layer.src = url;
    layer.alt = "";
    try {
      await layer.decode();
    } catch {
      // A decode failure shows as a missing layer; the image stays usable.
    }
    if (heatmapLabel !== label || shown !== analysis) return;
    layer.hidden = false;
    setLayerOpacity();
    showScale(finding);
  } catch (error) {
    reportError(error, `Could not load the heatmap for ${label}`);
  } finally {
    if (heatmapLabel === label) $("heatmap-loading").hidden = true;
  }
}

/** The colour scale under the viewer, with what the colours mean; hidden with no map shown. */
function showScale(finding) {
  const scale = $("heatmap-scale");
  scale.hidden = !finding;
  if (!finding) return;
  $("heatmap-caption").textContent =
    `${finding.explanation.method_title} for ${displayLabel(finding.label)}: how much each area drove the ` +
    "model's score. Where the model looked, not where disease is.";
}

function setLayerOpacity() {
  const value = Number($("opacity").value);
  $("heatmap-layer").style.opacity = String(value / 100);
  $("opacity-value").textContent = `${value}%`;
}

/** The model's field of view as a dashed outline, when it saw less than the whole image. */
function drawFieldOfView(layer) {
  const fov = shown && shown.field_of_view;
  const { width, height } = imageSize();
  const partial = Boolean(fov) && (fov.width < shown.image.columns || fov.height < shown.image.rows);
  $("field-of-view-note").hidden = !partial;
  if (!partial) return false;
  // The image may come back at another size (windowed DICOM): scale from the analysed size.
  const sx = width / shown.image.columns;
  const sy = height / shown.image.rows;
  const group = svg("g", { class: "field-of-view", "data-testid": "field-of-view" });
  group.append(svg("title", {}, "What the model saw"));
  group.append(svg("rect", { x: fov.left * sx, y: fov.top * sy, width: fov.width * sx, height: fov.height * sy }));
  layer.append(group);
  return true;
}

function drawRegions(finding) {
  const layer = $("regions-layer");
  layer.replaceChildren();
  const outlined = drawFieldOfView(layer);
  const regions = $("show-regions").checked
    ? (finding && finding.explanation && finding.explanation.regions) || []
    : [];
  layer.hidden = !outlined && regions.length === 0;
  const { width, height } = imageSize();
  const size = Math.max(10, Math.round(Math.min(width, height) / 24)); // label size in image pixels
  for (const region of regions) {
    const [x, y, w, h] = region.box;
    const group = svg("g", { class: "region", "data-index": region.index });
    group.append(svg("title", {}, `Region ${region.index}: ${region.location}`));
    group.append(svg("rect", { x, y, width: w, height: h }));
    const labelWidth = size * (0.75 + 0.6 * String(region.index).length);
    const labelY = y >= size * 1.3 ? y - size * 1.3 : y;
    group.append(svg("rect", { class: "region-label-bg", x, y: labelY, width: labelWidth, height: size * 1.3 }));
    group.append(
      svg("text", { x: x + size * 0.35, y: labelY + size * 1.02, "font-size": size }, String(region.index)),
    );
    layer.append(group);
  }
}

function describeExplanation(finding) {
  const box = $("explanation");
  if (!finding || !finding.explanation) {
    const any = shown && shown.findings.some((f) => f.explanation);
    box.replaceChildren(el("p", { class: "muted" }, any ? "No heatmap shown." : "This analysis has no heatmaps."));
    return;
  }
  const explanation = finding.explanation;
  const parts = [
    el("p", {}, el("strong", {}, `${finding.label}: ${explanation.method_title}. `), explanation.summary || ""),
  ];
  if (explanation.class_specific === false) {
    parts.push(el("p", { class: "muted" }, "This method gives every finding the same map."));
  }
  if (explanation.regions && explanation.regions.length) {
    parts.push(
      el(
        "ol",
        { "aria-label": "Regions" },
        explanation.regions.map((r) =>
          el("li", { value: r.index }, `${r.location} (${percent(r.mass_share)} of the map's weight)`),
        ),
      ),
    );
  }
  if (explanation.faithfulness && explanation.faithfulness.informative === false) {
    parts.push(el("p", { class: "muted" }, "Faithfulness not informative: the model's output is saturated here."));
  } else if (explanation.faithfulness) {
    const f = explanation.faithfulness;
    parts.push(
      el(
        "p",
        { class: "muted" },
        `Faithfulness score ${f.score.toFixed(2)} (deletion ${f.deletion_auc.toFixed(2)}, insertion ${f.insertion_auc.toFixed(2)}; higher is more faithful).`,
      ),
    );
  }
  parts.push(el("p", { class: "muted" }, "A heatmap shows where the model looked, not where disease is."));
  box.replaceChildren(...parts);
}
