// The findings table: positives first, each with its probability bar, threshold mark and result in
// words (never colour alone), and a button that shows its heatmap.

import { $, el } from "./dom.js";
import { percent } from "./format.js";
import { showHeatmap } from "./viewer.js";

/** Positives first, then by probability: the order of the table and of the heatmap list. */
export function sortedFindings(analysis) {
  return [...analysis.findings].sort(
    (a, b) => Number(b.positive) - Number(a.positive) || b.probability - a.probability,
  );
}

/** A label that may wrap after underscores and slashes (long model label names). */
function breakable(text) {
  return text.split(/(?<=[_/])/).flatMap((part, i) => (i ? [el("wbr"), part] : [part]));
}

export function renderFindings(findings) {
  $("findings").tBodies[0].replaceChildren(...findings.map(findingRow));
}

function findingRow(finding) {
  const kind = finding.positive ? "positive" : "negative";
  const bar = el(
    "div",
    { class: "bar", "aria-hidden": "true" },
    el("div", { class: "bar-fill", style: { width: percent(finding.probability) } }),
    el("div", {
      class: "bar-threshold",
      style: { left: percent(finding.threshold) },
      title: `threshold ${percent(finding.threshold)}`,
    }),
  );
  const mapButton = finding.explanation
    ? el(
        "button",
        {
          type: "button",
          class: "secondary small",
          "aria-label": `Show the heatmap for ${finding.label}`,
          onclick: () => showHeatmap(finding.label),
        },
        "Map",
      )
    : "";
  return el(
    "tr",
    { class: kind, dataset: { label: finding.label } },
    el("th", { scope: "row" }, breakable(finding.label)),
    el("td", {}, el("div", { class: "prob" }, el("span", { class: "prob-value" }, percent(finding.probability)), bar)),
    el("td", {}, percent(finding.threshold)),
    el("td", {}, el("span", { class: `result-badge ${kind}` }, finding.positive ? "Positive" : "Negative")),
    el("td", {}, mapButton),
  );
}
