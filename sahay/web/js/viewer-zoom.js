// Zoom and pan: the stage holds the image, the heatmap layer and the regions, and moves as one.

import { $ } from "./dom.js";
import { debounce } from "./debounce.js";

const MIN_ZOOM = 1;
const MAX_ZOOM = 10;
const STEP = 1.25; // buttons and keys
const WHEEL_STEP = 1.15;
const PAN_PX = 40;

// viewW/viewH: the viewer's size when last drawn, which refit() needs after a resize.
const view = { scale: 1, x: 0, y: 0, baseW: 0, baseH: 0, naturalW: 0, naturalH: 0, viewW: 0, viewH: 0 };

/** The image's size in pixels, which the region boxes are drawn in. */
export const imageSize = () => ({ width: view.naturalW, height: view.naturalH });

/** Fit a new image of this size into the viewer, unzoomed. */
export function setImageSize(width, height) {
  view.naturalW = width;
  view.naturalH = height;
  fitStage();
}

function fitStage() {
  const viewer = $("viewer");
  if (!view.naturalW || !view.naturalH) return;
  const fit = Math.min((viewer.clientWidth || 1) / view.naturalW, (viewer.clientHeight || 1) / view.naturalH);
  view.baseW = view.naturalW * fit;
  view.baseH = view.naturalH * fit;
  const stage = $("viewer-stage");
  stage.style.width = `${view.baseW}px`;
  stage.style.height = `${view.baseH}px`;
  resetView();
}

/** The viewer changed size (window resize, enlarge): fit the image again, but keep the user's zoom
 * and the image point at the viewer's centre where it was. */
export function refit() {
  const viewer = $("viewer");
  if (!view.naturalW || !view.baseW) return;
  const scale = view.scale;
  const before = { w: view.baseW * scale, h: view.baseH * scale };
  // The centre of the old viewport, as a fraction of the image.
  const fx = (view.viewW / 2 - view.x) / before.w;
  const fy = (view.viewH / 2 - view.y) / before.h;
  fitStage();
  if (scale !== 1 && Number.isFinite(fx) && Number.isFinite(fy)) {
    view.scale = scale;
    view.x = viewer.clientWidth / 2 - fx * view.baseW * scale;
    view.y = viewer.clientHeight / 2 - fy * view.baseH * scale;
    applyView();
  }
}


function resetView() {
  const viewer = $("viewer");
  view.scale = 1;
  view.x = (viewer.clientWidth - view.baseW) / 2;
  view.y = (viewer.clientHeight - view.baseH) / 2;
  applyView();
}

function applyView() {
  const viewer = $("viewer");
  const w = view.baseW * view.scale;
  const h = view.baseH * view.scale;
  const vw = viewer.clientWidth;
  const vh = viewer.clientHeight;
  // Keep the image overlapping the middle of the viewport, so it cannot be lost off screen.
  view.x = Math.min(Math.max(view.x, vw / 2 - w), vw / 2);
  view.y = Math.min(Math.max(view.y, vh / 2 - h), vh / 2);
  $("viewer-stage").style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
  view.viewW = vw;
  view.viewH = vh;
}

function zoomAt(factor, cx, cy) {
  const scale = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.scale * factor));
  if (scale === view.scale) return;
  view.x = cx - ((cx - view.x) * scale) / view.scale;
  view.y = cy - ((cy - view.y) * scale) / view.scale;
  view.scale = scale;
  if (scale === MIN_ZOOM) {
    resetView();
    return;
  }
  applyView();
}

function zoomCentre(factor) {
  const viewer = $("viewer");
  zoomAt(factor, viewer.clientWidth / 2, viewer.clientHeight / 2);
}

function panBy(dx, dy) {
  view.x += dx;
  view.y += dy;
  applyView();
}

/** Mouse wheel, drag, keyboard and buttons; `active()` says whether an image is shown. */
export function setUpZoom(active) {
  const viewer = $("viewer");
  viewer.addEventListener(
    "wheel",
    (event) => {
      if (!active()) return;
      event.preventDefault();
      const rect = viewer.getBoundingClientRect();
      zoomAt(event.deltaY < 0 ? WHEEL_STEP : 1 / WHEEL_STEP, event.clientX - rect.left, event.clientY - rect.top);
    },
    { passive: false },
  );
  setUpDrag(viewer);
  viewer.addEventListener("keydown", (event) => {
    const actions = {
      ArrowLeft: () => panBy(PAN_PX, 0),
      ArrowRight: () => panBy(-PAN_PX, 0),
      ArrowUp: () => panBy(0, PAN_PX),
      ArrowDown: () => panBy(0, -PAN_PX),
      "+": () => zoomCentre(STEP),
      "=": () => zoomCentre(STEP),
      "-": () => zoomCentre(1 / STEP),
      0: () => resetView(),
    };
    const action = actions[event.key];
    if (action) {
      event.preventDefault();
      action();
    }
  });
  $("zoom-in").addEventListener("click", () => zoomCentre(STEP));
  $("zoom-out").addEventListener("click", () => zoomCentre(1 / STEP));
  $("zoom-reset").addEventListener("click", resetView);
  // A windowed DICOM may come back at another size than the analysis recorded.
  $("viewer-image").addEventListener("load", () => {
    const img = $("viewer-image");
    if (img.naturalWidth && (img.naturalWidth !== view.naturalW || img.naturalHeight !== view.naturalH)) {
      setImageSize(img.naturalWidth, img.naturalHeight);
    }
  });
  window.addEventListener(
    "resize",
    debounce(() => {
      if (active()) refit();
    }, 150),
  );
}

function setUpDrag(viewer) {
  let drag = null;
  viewer.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    drag = { id: event.pointerId, x: event.clientX, y: event.clientY };
    viewer.setPointerCapture(event.pointerId);
    viewer.classList.add("dragging");
  });
  viewer.addEventListener("pointermove", (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    panBy(event.clientX - drag.x, event.clientY - drag.y);
    drag.x = event.clientX;
    drag.y = event.clientY;
  });
  const endDrag = (event) => {
    if (!drag || drag.id !== event.pointerId) return;
    drag = null;
    viewer.classList.remove("dragging");
  };
  viewer.addEventListener("pointerup", endDrag);
  viewer.addEventListener("pointercancel", endDrag);
}
