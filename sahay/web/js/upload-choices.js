// The upload form's choices, built from the server's capabilities: the installed models and the
// explanation methods, each with a line of help under its select.

import { $, el } from "./dom.js";

let models = [];
let defaultMethod = "";
let methods = [];

export function setUpChoices() {
  $("model").addEventListener("change", describeModel);
  $("explain").addEventListener("change", describeMethod);
  describeModel();
  describeMethod();
}

/** Fill both selects, keeping what the user had chosen when it is still offered. */
export function showChoices(capabilities) {
  models = capabilities.models || [];
  methods = capabilities.explain_methods || [];
  defaultMethod = capabilities.default_explain_method;
  fill(
    $("model"),
    [el("option", { value: "" }, "Automatic (default)")].concat(
      models.map((m) => el("option", { value: m.name }, `${m.name} ${m.version}${m.demonstration ? " (demonstration)" : ""}`)),
    ),
    "",
  );
  fill($("explain"), methods.map((m) => el("option", { value: m.name }, m.title || m.name)), defaultMethod);
  describeModel();
  describeMethod();
}

function fill(select, options, fallback) {
  const chosen = select.value;
  select.replaceChildren(...options);
  const offered = (value) => [...select.options].some((o) => o.value === value);
  if (chosen && offered(chosen)) select.value = chosen;
  else if (offered(fallback)) select.value = fallback;
}

function describeModel() {
  const model = models.find((m) => m.name === $("model").value);
  const help = $("model-help");
  if (!model) {
    help.textContent = "Sahay picks a model that fits the image.";
    return;
  }
  const parts = [];
  if (model.modalities && model.modalities.length) parts.push(`For ${model.modalities.join(", ")}`);
  if (model.body_part) parts.push(model.body_part);
  if (model.demonstration) parts.unshift("Demonstration model");
  let text = parts.join(", ");
  if (model.intended_use) text += `${text ? ". " : ""}${model.intended_use}`;
  help.textContent = text;
}

function describeMethod() {
  const method = methods.find((m) => m.name === $("explain").value);
  const help = $("explain-help");
  if (!method) {
    help.textContent = "How the heatmaps are made.";
    return;
  }
  const parts = [];
  if (method.cost) parts.push(`Cost: ${method.cost.replace(/\.$/, "")}.`);
  if (method.class_specific === false) parts.push("Every finding gets the same map.");
  if (method.family === "perturbation") parts.push("Slower: the analysis runs in the background.");
  help.textContent = parts.join(" ");
}
