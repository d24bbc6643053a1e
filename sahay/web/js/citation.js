// Citations in a chat answer: [n] cites a knowledge-base passage, [An] a field of this analysis.
// A marker is a button; it opens the cited passage and its sources beside the conversation.

import { $, el, externalLink } from "./dom.js";
import { displayLabel } from "./format.js";

let trigger = null; // the marker that opened the box; focus returns to it on close

/** What marker ("3" or "A1") cites in the answer, or null when the answer does not back it. */
export function findCitation(answer, marker) {
  const evidence = (answer.sentences || []).flatMap((sentence) => sentence.evidence || []);
  if (marker.startsWith("A")) {
    const item = evidence.find((e) => e.type === "analysis" && String(e.id) === marker);
    return item ? { kind: "analysis", marker, title: "From this analysis", field: item.field, passage: item.text } : null;
  }
  const citation = (answer.citations || []).find((c) => String(c.id) === marker);
  if (citation) return { kind: "passage", marker, ...citation };
  const item = evidence.find((e) => e.type === "passage" && String(e.id) === marker);
  return item
    ? { kind: "passage", marker, title: item.document, document: item.document, passage: item.text, sources: [] }
    : null;
}

export function citationButton(cited) {
  return el(
    "button",
    {
      type: "button",
      class: "cite",
      "aria-label": `Citation ${cited.marker}: ${cited.title}`,
      "aria-controls": "citation-box",
      "aria-expanded": "false",
      dataset: { cite: cited.marker },
      onclick: (event) => openCitation(cited, event.currentTarget),
    },
    `[${cited.marker}]`,
  );
}

/** Where in the analysis a cited fact comes from, in words ("findings[Pleural_Thickening]" is the
 * model's result for Pleural Thickening), never the JSON path. */
function fieldInWords(field) {
  const finding = /^(findings|fusion)\[(.+?)\](\.explanation)?$/.exec(field);
  if (finding) {
    const label = displayLabel(finding[2]);
    if (finding[1] === "fusion") return `From this analysis: the note and the image on ${label}.`;
    return finding[3] ? `From this analysis: the heatmap for ${label}.` : `From this analysis: the model's result for ${label}.`;
  }
  const words = {
    model: "From this analysis: the model that made it.",
    demonstration_notice: "From this analysis: the demonstration notice.",
    quality: "From this analysis: the checks of whether the image suits the model.",
    "fusion.discordances": "From this analysis: where the note and the image disagree.",
  };
  return words[field] || "From this analysis.";
}

function openCitation(cited, button) {
  if (trigger) trigger.setAttribute("aria-expanded", "false");
  trigger = button;
  button.setAttribute("aria-expanded", "true");
  $("citation-title").textContent = `[${cited.marker}] ${cited.title || "Citation"}`;
  const parts = [];
  if (cited.kind === "analysis") {
    if (cited.field) parts.push(el("p", { class: "muted" }, fieldInWords(cited.field)));
  } else {
    if (cited.section) parts.push(el("p", { class: "citation-section" }, el("strong", {}, "Section: "), cited.section));
    if (cited.document) parts.push(el("p", { class: "muted" }, `Knowledge-base article: ${cited.document}`));
  }
  parts.push(el("blockquote", { class: "citation-passage" }, cited.passage || ""));
  const sources = cited.sources || [];
  if (sources.length) {
    parts.push(el("h5", {}, "Sources"), el("ul", { class: "citation-sources" }, sources.map(sourceItem)));
  }
  $("citation-body").replaceChildren(...parts);
  const box = $("citation-box");
  box.hidden = false;
  box.closest(".chat-layout").classList.add("with-citation");
  box.focus();
}

function sourceItem(source) {
  const about = [source.publisher, source.year].filter(Boolean);
  return el(
    "li",
    {},
    source.url ? externalLink(source.url, source.title) : source.title,
    about.length ? ` (${about.join(", ")})` : "",
  );
}

export function closeCitation() {
  const box = $("citation-box");
  box.hidden = true;
  box.closest(".chat-layout").classList.remove("with-citation");
  const button = trigger;
  trigger = null;
  if (button) {
    button.setAttribute("aria-expanded", "false");
    if (button.isConnected) button.focus();
  }
}

export function setUpCitations() {
  $("citation-close").addEventListener("click", closeCitation);
  $("citation-box").addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeCitation();
  });
}
