// Report downloads: one button per format the server offers (GET /capabilities), the DICOM
// formats only for DICOM uploads. Files are fetched with the token and saved under the server's name.

import { downloadReport } from "./api.js";
import { $, el } from "./dom.js";
import { clearError, reportError, setStatus } from "./messages.js";
import { state } from "./state.js";

const SAVE_URL_MS = 60_000; // the browser reads the blob after click(); revoke it later

export function renderReports(analysis) {
  const box = $("reports");
  const formats = state.capabilities && state.capabilities.report_formats;
  if (!formats) {
    box.replaceChildren(el("p", { class: "muted" }, "The report formats could not be loaded."));
    return;
  }
  const dicom = analysis.source_format === "dicom";
  $("reports-status").textContent = "";
  box.replaceChildren(
    ...formats
      .filter((format) => dicom || !format.needs_dicom)
      .map((format) =>
        el(
          "button",
          {
            type: "button",
            class: "secondary",
            dataset: { format: format.name },
            onclick: (event) => download(analysis, format, event.currentTarget),
          },
          `Download ${format.title}`,
        ),
      ),
  );
}

async function download(analysis, format, button) {
  if (state.analysis !== analysis) return;
  clearError();
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  // Said beside the buttons, where the user is looking: a PDF can take a while to build.
  const said = `Preparing the ${format.title}… This can take up to a minute.`;
  $("reports-status").textContent = said;
  setStatus(said);
  try {
    const fallback = `sahay-${analysis.id}-${format.name}${format.suffix || ""}`;
    const { name, blob } = await downloadReport(analysis.id, format.name, fallback);
    const url = URL.createObjectURL(blob);
    const link = el("a", { href: url, download: name, hidden: true });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), SAVE_URL_MS);
    setStatus(`Downloaded ${name}.`);
    $("reports-status").textContent = `Downloaded ${name}.`;
  } catch (error) {
    $("reports-status").textContent = "";
    reportError(error, `Could not download the ${format.title}`);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}
