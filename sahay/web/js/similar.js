// Similar cases from the de-identified case library, most similar first: a thumbnail, how similar
// by each signal, and a button that opens the case beside the list.

import { ApiError, SessionExpired, caseThumbnailURL, getCase, similarCases } from "./api.js";
import { $, el } from "./dom.js";
import { displayLabel, formatDate, percent } from "./format.js";
import { reportError } from "./messages.js";
import { state } from "./state.js";

const HOW_MANY = 5;
const SIGNALS = [
  ["image", "image"],
  ["findings", "findings"],
  ["text", "text"],
];
const thumbnails = new Set(); // object URLs of the shown thumbnails, freed with the list

export async function loadSimilar(analysis) {
  const box = $("similar");
  freeThumbnails();
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
      el("details", {}, el("summary", {}, "Details"), el("p", {}, error.plain || error.message || String(error))),
    );
    return;
  }
  if (state.analysis !== analysis) return;
  const items = body.items || [];
  box.replaceChildren(
    items.length
      ? el("div", { class: "table-scroll" }, casesTable(items, analysis))
      : el("p", { class: "muted" }, "No similar cases in the case library."),
    el("div", { id: "case-detail", class: "case-detail", "aria-live": "polite", hidden: true }),
  );
  for (const item of items) showThumbnail(item.id, analysis);
}

function freeThumbnails() {
  for (const url of thumbnails) URL.revokeObjectURL(url);
  thumbnails.clear();
}

async function showThumbnail(caseId, analysis) {
  try {
    const url = await caseThumbnailURL(caseId);
    thumbnails.add(url);
    if (state.analysis !== analysis) return;
    const img = document.querySelector(`img[data-case="${CSS.escape(caseId)}"]`);
    if (img) img.src = url;
  } catch {
    // A missing thumbnail leaves the empty frame; the case still opens.
  }
}

/** A case's short name: its id's first 8 characters, enough to tell five cases apart. */
const shortId = (id) => id.slice(0, 8);

function signalsText(signals) {
  const parts = SIGNALS.filter(([key]) => typeof (signals || {})[key] === "number").map(
    ([key, name]) => `${name} ${signals[key].toFixed(2)}`,
  );
  return parts.length ? parts.join(" · ") : "";
}

function casesTable(items, analysis) {
  const headings = ["Case", "", "Similarity", "Diagnosis", "Model findings", "Added"];
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
          { dataset: { case: c.id } },
          el(
            "th",
            { scope: "row" },
            el(
              "button",
              {
                type: "button",
                class: "secondary small",
                title: c.id,
                "aria-label": `Open case ${shortId(c.id)}`,
                onclick: () => openCase(c, analysis),
              },
              shortId(c.id),
            ),
          ),
          el("td", {}, el("img", { class: "thumb", alt: `Thumbnail of case ${shortId(c.id)}`, dataset: { case: c.id } })),
          el(
            "td",
            {},
            typeof c.similarity === "number" ? c.similarity.toFixed(2) : "",
            el("span", { class: "signals", dataset: { testid: "signals" } }, signalsText(c.signals)),
          ),
          el("td", {}, c.diagnosis || "not recorded"),
          el("td", {}, (c.positive_findings || []).map(displayLabel).join(", ") || "none"),
          el("td", {}, formatDate(c.created_at)),
        ),
      ),
    ),
  );
}

async function openCase(summary, analysis) {
  const box = $("case-detail");
  box.hidden = false;
  box.replaceChildren(el("p", { class: "muted" }, `Opening case ${shortId(summary.id)}…`));
  let detail;
  try {
    detail = await getCase(summary.id);
  } catch (error) {
    box.hidden = true;
    reportError(error, "Could not open the case");
    return;
  }
  if (state.analysis !== analysis) return;
  const image = document.querySelector(`img.thumb[data-case="${CSS.escape(summary.id)}"]`);
  box.replaceChildren(
    el("h4", {}, `Case ${shortId(detail.id)}`),
    image && image.src ? el("img", { src: image.src, alt: `Case ${shortId(detail.id)}` }) : "",
    el(
      "dl",
      {},
      el("dt", {}, "Diagnosis recorded with the case"),
      el("dd", {}, detail.diagnosis || "not recorded"),
      el("dt", {}, "Model"),
      el("dd", {}, detail.model),
      el("dt", {}, "Added"),
      el("dd", {}, formatDate(detail.created_at)),
      detail.comment ? [el("dt", {}, "Comment"), el("dd", {}, detail.comment)] : [],
      el("dt", {}, "How similar"),
      el("dd", {}, `${summary.similarity.toFixed(2)} overall; ${signalsText(summary.signals) || "no signal breakdown"}`),
    ),
    el("h5", {}, "Model findings for this case"),
    el(
      "ul",
      {},
      detail.findings.map((f) =>
        el("li", {}, `${displayLabel(f.label)}: ${percent(f.probability)}, ${f.positive ? "positive" : "negative"}`),
      ),
    ),
    el("p", { class: "muted" }, "The model's findings for that case, not a confirmed diagnosis."),
  );
}
