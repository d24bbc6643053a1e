// The findings table: positives first, each with its probability bar, threshold mark and result in
// words (never colour alone), and a button that shows its heatmap.

import { $, el } from "./dom.js";
import { displayLabel, percent, thresholdPercent } from "./format.js";
import { showHeatmap } from "./viewer.js";

/** Positives first, then by probability: the order of the table and of the heatmap list. */
export function sortedFindings(analysis) {
  return [...analysis.findings].sort(
    (a, b) => Number(b.positive) - Number(a.positive) || b.probability - a.probability,
  );
}

/** A label that may wrap after slashes (long model label names); underscores read as spaces. */
function breakable(text) {
  return displayLabel(text)
    .split(/(?<=[/])/)
    .flatMap((part, i) => (i ? [el("wbr"), part] : [part]));
}

/** task: the model's; a multiclass model's positive is its most probable class, and its
 * thresholds play no part, so "top class" stands in their place (as in every other output). */
export function renderFindings(findings, task) {
  $("findings").tBodies[0].replaceChildren(...findings.map((finding) => findingRow(finding, task)));
  // A new analysis opens at the start of the table, names in view, however the last was scrolled.
  $("findings-scroll").scrollLeft = 0;
}

function findingRow(finding, task) {
  const multiclass = task === "multiclass";
  const kind = finding.positive ? "positive" : "negative";
  const bar = el(
    "div",
    { class: "bar", "aria-hidden": "true" },
    el("div", { class: "bar-fill", style: { width: percent(finding.probability) } }),
    multiclass
      ? ""
      : el("div", {
          class: "bar-threshold",
          style: { left: percent(finding.threshold) },
          title: `threshold ${thresholdPercent(finding.threshold)}`,
        }),
  );
  const mapButton = finding.explanation
    ? el(
        "button",
        {
          type: "button",
          class: "secondary small",
          "aria-label": `Show the heatmap for ${displayLabel(finding.label)}`,
          onclick: () => showHeatmap(finding.label),
        },
        "Map",
      )
    : "";
  return el(
    "tr",
    { class: kind, dataset: { label: finding.label } },
    el("th", { scope: "row" }, breakable(finding.label), cautionList(finding.cautions || [])),
    el("td", {}, el("div", { class: "prob" }, el("span", { class: "prob-value" }, percent(finding.probability)), bar)),
    el("td", {}, multiclass ? "top class" : thresholdPercent(finding.threshold)),
    el("td", {}, el("span", { class: `result-badge ${kind}` }, finding.positive ? "Positive" : "Negative")),
    el("td", {}, mapButton),
  );
}

/** What the analysis says beside this finding (no site calibration, a site-check flag), in words. */
function cautionList(cautions) {
  if (!cautions.length) return "";
  return el(
    "ul",
    { class: "cautions" },
    ...cautions.map((text) =>
      el("li", { title: text }, text.startsWith("Flagged") ? "Site check: flagged" : "Not calibrated for this site",
        el("span", { class: "visually-hidden" }, `: ${text}`)),
    ),
  );
}
