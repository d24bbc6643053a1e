// The result of one analysis: its heading and warnings, then each part (findings, viewer, notes,
// chat, reports, similar cases) drawn by its own module.

import { getAnalysis, getJSON } from "./api.js";
import { clearChat, renderChat } from "./chat.js";
import { $, el } from "./dom.js";
import { renderFindings, sortedFindings } from "./findings.js";
import { formatDate } from "./format.js";
import { clearError, reportError, setStatus } from "./messages.js";
import { renderNotes } from "./notes.js";
import { renderReports } from "./reports.js";
import { loadSimilar } from "./similar.js";
import { analysisLink } from "./router.js";
import { setAnalysis } from "./state.js";
import { clearViewer, renderViewer } from "./viewer.js";

export function showAnalysis(analysis) {
  setAnalysis(analysis);
  $("result").hidden = false;
  $("nav-result").hidden = false;
  renderHeading(analysis);
  const findings = sortedFindings(analysis);
  renderFindings(findings, analysis.model.task);
  renderViewer(analysis, findings);
  renderNotes(analysis);
  renderChat(analysis);
  renderReports(analysis);
  loadSimilar(analysis);
}

/** Fetch an analysis by id and show it; errors are shown, then thrown for the caller. */
export async function openAnalysis(id, { focus = true } = {}) {
  clearError();
  setStatus("Loading the analysis…");
  try {
    const analysis = await getAnalysis(id);
    showAnalysis(analysis);
    setStatus(`Showing the analysis of ${analysis.image.filename}.`);
    if (focus) $("result").focus();
  } catch (error) {
    reportError(error, "Could not open the analysis");
    throw error;
  }
}

export function closeAnalysis() {
  clearViewer();
  clearChat();
  setAnalysis(null);
  $("result").hidden = true;
  $("nav-result").hidden = true;
}

function renderHeading(analysis) {
  const image = analysis.image;
  const model = analysis.model || {};
  $("result-title").textContent = `Result: ${image.filename}`;
  $("result-meta").textContent = [
    image.modality || (image.format || "").toUpperCase(),
    `${image.columns} × ${image.rows} px`,
    `model ${model.name} ${model.version}`,
    formatDate(analysis.created_at),
  ]
    .filter(Boolean)
    .join(" · ");
  $("result-link").href = analysisLink(analysis.id);

  // The server's statement: the same notices, in the same words, as the reports and the chat.
  const notices = analysis.statement.notices;
  const demonstration = notices.find((n) => n.kind === "demonstration");
  const notice = $("demonstration-notice");
  notice.textContent = demonstration ? demonstration.text : "";
  notice.hidden = !demonstration;

  const others = notices.filter((n) => n.kind !== "demonstration");
  const warnings = $("warnings");
  warnings.replaceChildren(...others.map((n) => el("li", { dataset: { kind: n.kind } }, n.text)));
  warnings.hidden = others.length === 0;
  $("decision-rule").textContent = analysis.statement.rule_text;
  renderCard(model.name);
}

/** The model's card, fetched when the reader opens it: what it is (not) for, its evidence, its
 * known failure modes with their sources, its calibration and the state of its weights. */
function renderCard(name) {
  const details = $("model-card");
  details.open = false;
  $("model-card-title").textContent = `Model card: ${name}`;
  const body = $("model-card-body");
  body.replaceChildren();
  details.ontoggle = async () => {
    if (!details.open || body.childElementCount) return;
    try {
      const card = await getJSON(`models/${encodeURIComponent(name)}/card`);
      body.replaceChildren(
        el("p", {}, `Intended use: ${card.intended_use}`),
        list("Not for", card.not_intended_for),
        el("p", {}, `Calibration: ${card.calibration}`),
        el("p", {}, `Weights: ${card.weights}`),
        list(
          "Known failure modes",
          card.failure_modes.map(
            (m) => `${m.findings.length ? m.findings.join(", ") : "Every finding"}: ${m.description} (${m.source.title})`,
          ),
        ),
        list("Limitations", card.limitations),
      );
    } catch (error) {
      body.replaceChildren(el("p", {}, "The card could not be loaded (the model may have been removed)."));
    }
  };
}

function list(title, items) {
  if (!items || !items.length) return "";
  return el("div", {}, el("h4", {}, title), el("ul", {}, ...items.map((item) => el("li", {}, item))));
}
