// A new analysis: choose or drop an image, add a note, pick the model and explanation method,
// and upload it, with a progress bar while it runs.

import { analyse } from "./api.js";
import { showAnalysis } from "./analysis.js";
import { $ } from "./dom.js";
import { loadHistory } from "./history.js";
import { clearError, reportError, setStatus, showError } from "./messages.js";
import { setAnalysis } from "./state.js";
import { setUpChoices } from "./upload-choices.js";

let selectedFile = null; // a dropped file, for browsers that cannot put it in the input

export function setUpUpload() {
  $("upload-form").addEventListener("submit", onAnalyse);
  setUpDropZone();
  setUpChoices();
}

/** Empty the form (file, note, choices): on a shared workstation the next user must not find the
 * previous user's clinical note or image in it. */
export function resetUpload() {
  $("upload-form").reset();
  chooseFile(null);
}

function chooseFile(file) {
  selectedFile = file || null;
  $("file-chosen").textContent = file
    ? `Chosen: ${file.name} (${(file.size / 1024).toFixed(0)} KB)`
    : "No file chosen.";
}

function setAnalysing(busy) {
  const button = $("analyze-button");
  button.disabled = busy;
  button.textContent = busy ? "Analysing…" : "Analyse";
  $("progress-box").hidden = !busy;
  $("upload-form").setAttribute("aria-busy", busy ? "true" : "false");
  if (busy) {
    showUpload(0);
    // In view, clear of the fixed disclaimer (scroll-margin in app.css).
    $("progress-box").scrollIntoView({ block: "nearest" });
  }
}

/** The upload's share sent (0..1), then, once it is all sent, the analysis itself (no measure). */
function showUpload(fraction) {
  const bar = $("progress");
  const uploading = fraction < 1;
  const percentSent = Math.round(fraction * 100);
  bar.classList.toggle("indeterminate", !uploading);
  $("progress-bar").style.width = uploading ? `${percentSent}%` : "";
  if (uploading) {
    bar.setAttribute("aria-valuenow", String(percentSent));
    bar.setAttribute("aria-valuetext", `Uploading, ${percentSent}% sent`);
    $("progress-label").textContent = `Uploading the image: ${percentSent}% sent`;
  } else {
    bar.removeAttribute("aria-valuenow");
    bar.setAttribute("aria-valuetext", "Analysing");
    $("progress-label").textContent = "Uploaded. Analysing the image…";
  }
}

/** Take the previous result off the screen: a failed upload must never leave it there under the
 * name of the new file. */
function clearResult() {
  setAnalysis(null);
  $("result").hidden = true;
  $("nav-result").hidden = true;
}

async function onAnalyse(event) {
  event.preventDefault();
  await submit({ force: false });
}

async function submit({ force }) {
  clearError();
  const file = selectedFile || $("file-input").files[0];
  if (!file) {
    showError("Choose an image file first (DICOM, PNG, JPEG or TIFF).");
    $("file-input").focus();
    return;
  }
  clearResult();
  const form = new FormData();
  if (force) form.append("force", "true");
  form.append("image", file, file.name);
  const notes = $("notes").value;
  if (notes.trim()) form.append("notes", notes);
  for (const id of ["model", "explain"]) {
    if ($(id).value) form.append(id, $(id).value);
  }
  if ($("faithfulness").checked) form.append("faithfulness", "true");

  setAnalysing(true);
  setStatus(`Analysing ${file.name}. This can take up to a minute.`);
  try {
    const analysis = await analyse(form, showUpload);
    showAnalysis(analysis);
    const positives = analysis.findings.filter((f) => f.positive).length;
    setStatus(
      `Analysis finished: ${positives} positive finding${positives === 1 ? "" : "s"} of ${analysis.findings.length}.`,
    );
    loadHistory(true);
    $("result").focus();
  } catch (error) {
    if (error && error.kind === "out_of_domain") {
      showError(
        `${error.plain} Choose another model above, or analyse it anyway: the result will carry a warning ` +
          "that the image failed the model's checks, and the override is recorded.",
        { label: "Analyse anyway", run: () => submit({ force: true }) },
      );
      setStatus("");
    } else {
      reportError(error, "The analysis failed");
    }
  } finally {
    setAnalysing(false);
  }
}

function setUpDropZone() {
  const zone = $("drop-zone");
  const input = $("file-input");
  input.addEventListener("change", () => chooseFile(input.files[0]));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragover");
    });
  }
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("dragover");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragover");
    const files = event.dataTransfer.files;
    if (!files || !files.length) return;
    try {
      input.files = files;
    } catch {
      // Older browsers: the file is kept in selectedFile instead.
    }
    chooseFile(files[0]);
  });
  // A file dropped beside the zone must not replace the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
}
