// Similar cases from the de-identified case library, most similar first.

import { ApiError, SessionExpired, similarCases } from "./api.js";
import { $, el } from "./dom.js";
import { formatDate } from "./format.js";
import { state } from "./state.js";

const HOW_MANY = 5;

export async function loadSimilar(analysis) {
  const box = $("similar");
  box.replaceChildren(el("p", { class: "muted" }, "Looking for similar cases…"));
  let body;
  try {
    body = await similarCases(analysis.id, HOW_MANY);
  } catch (error) {
    if (state.analysis !== analysis || error instanceof SessionExpired) return;
    // A short note in place; the details stay one click away rather than in the alert.
    const short =
      error instanceof ApiError && error.status === 503
        ? "Similar-case search is not available on this server."
        : "Similar cases could not be loaded.";
    box.replaceChildren(
      el("p", { class: "muted" }, short),
      el("details", {}, el("summary", {}, "Details"), el("p", {}, error.message || String(error))),
    );
    return;
  }
  if (state.analysis !== analysis) return;
  const items = body.items || [];
  box.replaceChildren(
    items.length ? casesTable(items) : el("p", { class: "muted" }, "No similar cases in the case library."),
  );
}

function casesTable(items) {
  const headings = ["Case", "Similarity", "Diagnosis", "Modality", "Labels", "Added"];
  return el(
    "table",
    {},
    el("caption", { class: "visually-hidden" }, "Similar cases, most similar first"),
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h)))),
    el(
      "tbody",
      {},
      items.map((c) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, c.id),
          el("td", {}, typeof c.similarity === "number" ? c.similarity.toFixed(2) : ""),
          el("td", {}, c.diagnosis || "not recorded"),
          el("td", {}, c.modality || ""),
          el("td", {}, (c.positive_findings || []).join(", ")),
          el("td", {}, formatDate(c.created_at)),
        ),
      ),
    ),
  );
}
