// Window and level, for DICOM: the server renders the image again with the chosen window.

import { $ } from "./dom.js";
import { debounce } from "./debounce.js";

const DEBOUNCE_MS = 350; // one request once the slider rests, not one per step

export const isDicom = (analysis) =>
  analysis.source_format === "dicom" || (analysis.image && analysis.image.format === "dicom");

/** The slider range: the modality's usual span, widened to include the file's own window. */
function windowRange(image) {
  let lo = 0;
  let hi = 4095;
  if ((image.modality || "").toUpperCase() === "CT") {
    lo = -1024;
    hi = 3071;
  } else if (image.bits_stored) {
    hi = 2 ** image.bits_stored - 1;
  }
  const [center, width] = image.window || [null, null];
  if (center !== null && width !== null) {
    lo = Math.min(lo, Math.floor(center - width));
    hi = Math.max(hi, Math.ceil(center + width));
  }
  return { lo, hi, center: center ?? Math.round((lo + hi) / 2), width: width ?? hi - lo };
}

/** Show the controls for a DICOM analysis, set to its own window; hide them otherwise. */
export function resetWindow(analysis) {
  const box = $("window-controls");
  box.hidden = !isDicom(analysis);
  if (box.hidden) return;
  const range = windowRange(analysis.image);
  const center = $("window-center");
  const width = $("window-width");
  center.min = String(range.lo);
  center.max = String(range.hi);
  width.min = "1";
  width.max = String(Math.max(2, (range.hi - range.lo) * 2));
  center.value = String(Math.round(range.center));
  width.value = String(Math.round(range.width));
  showWindowValues();
}

function showWindowValues() {
  $("window-center-value").textContent = $("window-center").value;
  $("window-width-value").textContent = $("window-width").value;
}

/** reload(windowing) fetches the image again: with {center, width}, or as stored when null. */
export function setUpWindowing(current, reload) {
  const reloadWindowed = debounce(() => {
    reload({ center: Number($("window-center").value), width: Number($("window-width").value) });
  }, DEBOUNCE_MS);
  for (const id of ["window-center", "window-width"]) {
    $(id).addEventListener("input", () => {
      showWindowValues();
      reloadWindowed();
    });
  }
  $("window-reset").addEventListener("click", () => {
    const analysis = current();
    if (!analysis) return;
    resetWindow(analysis);
    reload(null);
  });
}
