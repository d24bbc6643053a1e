// The history of past analyses, newest first, a page at a time, each with open and delete.

import { deleteAnalysis, listAnalyses, tokens } from "./api.js";
import { closeAnalysis, openAnalysis } from "./analysis.js";
import { $, el } from "./dom.js";
import { formatDate } from "./format.js";
import { clearError, reportError, setStatus } from "./messages.js";
import { onAnalysisChange, state } from "./state.js";

const PAGE = 20;
let offset = 0;

export function setUpHistory() {
  $("history-more").addEventListener("click", () => loadHistory(false));
  onAnalysisChange(markCurrent);
}

/** Load the first page (reset) or the next one. */
export async function loadHistory(reset) {
  if (reset) offset = 0;
  let page;
  try {
    page = await listAnalyses(PAGE, offset);
  } catch (error) {
    reportError(error, "Could not load the history");
    return;
  }
  const list = $("history-list");
  if (reset) list.replaceChildren();
  list.append(...page.items.map(historyItem));
  offset += page.items.length;
  $("history-empty").hidden = page.total > 0;
  $("history-more").hidden = offset >= page.total;
  markCurrent(state.analysis);
}

export function clearHistory() {
  offset = 0;
  $("history-list").replaceChildren();
}

function historyItem(item) {
  const name = item.filename || item.id;
  const when = formatDate(item.created_at);
  const positives = item.positives && item.positives.length
    ? `Positive: ${item.positives.join(", ")}`
    : "No positive findings";
  const meta = [when, item.model, item.modality].filter(Boolean).join(" · ");
  const me = tokens.user;
  // An administrator sees everyone's analyses: each row says whose it is.
  const owner = me && item.owner && item.owner !== me.username ? `by ${item.owner}` : "";
  const open = el(
    "button",
    { type: "button", class: "history-open", dataset: { id: item.id }, onclick: () => openAnalysis(item.id).catch(() => {}) },
    el("span", { class: "h-name" }, name),
    el("span", { class: "h-meta" }, meta),
    owner ? el("span", { class: "h-owner" }, owner) : "",
    el("span", { class: "h-pos" }, positives),
  );
  const remove = el(
    "button",
    {
      type: "button",
      class: "danger small",
      "aria-label": `Delete the analysis of ${name} from ${when}`,
      onclick: () => deleteItem(item),
    },
    "Delete",
  );
  return el("li", { dataset: { id: item.id } }, open, remove);
}

async function deleteItem(item) {
  const name = item.filename || item.id;
  if (!window.confirm(`Delete the analysis of ${name}? This cannot be undone.`)) return;
  clearError();
  try {
    await deleteAnalysis(item.id);
    if (state.analysis && state.analysis.id === item.id) closeAnalysis();
    setStatus(`Deleted the analysis of ${name}.`);
    await loadHistory(true);
  } catch (error) {
    reportError(error, "Could not delete the analysis");
  }
}

function markCurrent(analysis) {
  const current = analysis && analysis.id;
  for (const button of document.querySelectorAll(".history-open")) {
    if (button.dataset.id === current) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
}
