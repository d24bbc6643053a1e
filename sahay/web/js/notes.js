// The clinical note with its entities marked by status, what image and note say together, and
// where they disagree.

import { $, el, externalLink } from "./dom.js";
import { displayLabel } from "./format.js";

function entityStatus(entity) {
  if (entity.negated) return { cls: "negated", text: "negated" };
  if (entity.inferred_from) return { cls: "uncertain", text: `suggested by ${entity.inferred_from}` };
  if (entity.uncertain) return { cls: "uncertain", text: "uncertain" };
  if (entity.hypothetical) return { cls: "uncertain", text: "hypothetical" };
  if (entity.family) return { cls: "historical", text: "family history" };
  if (entity.temporality === "resolved") return { cls: "historical", text: "resolved" };
  if (entity.historical) return { cls: "historical", text: "historical" };
  return { cls: "affirmed", text: "affirmed" };
}

export function renderNotes(analysis) {
  const section = $("notes-section");
  section.hidden = !analysis.notes_text && !analysis.notes;
  if (section.hidden) return;
  renderNoteText(analysis.notes_text, analysis.notes);
  renderFusion(analysis.fusion);
}

function renderNoteText(text, reading) {
  const paragraph = $("notes-text");
  paragraph.replaceChildren();
  if (!text) {
    paragraph.textContent = "The note's text is not stored with this analysis.";
    return;
  }
  const entities = [...((reading && reading.entities) || [])].sort((a, b) => a.start - b.start || b.end - a.end);
  let position = 0;
  for (const entity of entities) {
    // Overlapping or out-of-range spans are skipped, so the text is shown once and in order.
    if (entity.start < position || entity.end > text.length || entity.end <= entity.start) continue;
    paragraph.append(text.slice(position, entity.start));
    const status = entityStatus(entity);
    paragraph.append(
      el(
        "mark",
        { class: `entity ${status.cls}`, title: `${entity.concept}: ${status.text}`, dataset: { status: status.cls } },
        text.slice(entity.start, entity.end),
        el("span", { class: "visually-hidden" }, ` (${entity.concept}, ${status.text})`),
      ),
    );
    position = entity.end;
  }
  paragraph.append(text.slice(position));
}

function renderFusion(fusion) {
  const box = $("fusion");
  box.replaceChildren();
  if (fusion && fusion.findings && fusion.findings.length) {
    box.append(
      el("h4", {}, "Image and notes together"),
      el(
        "ul",
        {},
        fusion.findings.map((f) => {
          // The explanation starts with the label too: say it once.
          const why = f.explanation.startsWith(`${f.label}: `) ? f.explanation.slice(f.label.length + 2) : f.explanation;
          const label = displayLabel(f.label);
          return el("li", {}, el("span", { class: "assessment" }, `${label}: ${f.assessment.replace(/-/g, " ")}`), "; ", why);
        }),
      ),
    );
  }
  if (fusion && fusion.flags && fusion.flags.length) {
    box.append(
      el("h4", {}, "Flags"),
      el(
        "ul",
        {},
        fusion.flags.map((flag) =>
          el(
            "li",
            {},
            flag.text,
            (flag.sources || []).length ? " Sources: " : "",
            (flag.sources || []).map((s, i) => [i ? ", " : "", externalLink(s.url, s.title)]),
          ),
        ),
      ),
    );
  }
  const discordances = (fusion && fusion.discordances) || [];
  $("discordances").replaceChildren(...discordances.map((d) => el("li", {}, d)));
  $("discordances-box").hidden = discordances.length === 0;
}
