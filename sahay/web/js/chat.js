// The chat panel: questions about the shown analysis, answers streamed as they are written, then
// replaced by the checked answer whose citation markers open the cited passage.

import { ApiError, ask, getChat, tokens } from "./api.js";
import { citationButton, closeCitation, findCitation, setUpCitations } from "./citation.js";
import { $, el } from "./dom.js";
import { clearError, reportError, setStatus, showError } from "./messages.js";

let shown = null; // the analysis the conversation is about
let busy = false;

export function setUpChat() {
  $("chat-form").addEventListener("submit", onAsk);
  $("chat-question").addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter starts a new line; an input method's Enter only confirms its text.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("chat-form").requestSubmit();
    }
  });
  setUpCitations();
}

export function renderChat(analysis) {
  clearChat();
  shown = analysis;
  $("chat-question").value = "";
  loadChat(analysis);
}

/** Forget the conversation on screen (another analysis, none, or signed out). */
export function clearChat() {
  shown = null;
  $("chat-answers").replaceChildren();
  closeCitation();
}

async function loadChat(analysis) {
  try {
    const body = await getChat(analysis.id);
    if (shown !== analysis) return;
    for (const message of body.messages || []) {
      if (message.role === "user") addUserMessage(message.text, message.author);
      else {
        const item = addAssistantMessage();
        if (message.answer) renderAnswer(item, message.answer);
        else item.querySelector(".text").textContent = message.text;
      }
    }
  } catch (error) {
    reportError(error, "Could not load the conversation");
  }
}

function addUserMessage(text, author = null) {
  // An administrator may have asked about this analysis: name anyone who is not the reader.
  const who = author && author !== tokens.user?.username ? author : "You";
  const item = el("li", { class: "user" }, el("span", { class: "who" }, who), el("p", { class: "text" }, text));
  $("chat-answers").append(item);
  scrollChat();
  return item;
}

function addAssistantMessage() {
  const item = el("li", { class: "assistant" }, el("span", { class: "who" }, "Sahay"), el("p", { class: "text" }));
  $("chat-answers").append(item);
  scrollChat();
  return item;
}

function scrollChat() {
  const list = $("chat-answers");
  list.scrollTop = list.scrollHeight;
}

/** The answer text with each [n] or [An] marker as a button that opens the cited passage. */
function renderAnswer(item, answer) {
  const text = item.querySelector(".text");
  text.replaceChildren();
  const source = answer.answer || "";
  let position = 0;
  for (const match of source.matchAll(/\[(A?\d+)\]/g)) {
    const cited = findCitation(answer, match[1]);
    if (!cited) continue; // an unbacked marker stays plain text
    text.append(source.slice(position, match.index), citationButton(cited));
    position = match.index + match[0].length;
  }
  text.append(source.slice(position));
  for (const old of item.querySelectorAll(".answer-disclaimer, .removed")) old.remove();
  if (answer.removed && answer.removed.length) {
    const n = answer.removed.length;
    item.append(
      el(
        "p",
        { class: "removed" },
        `${n} sentence${n === 1 ? " was" : "s were"} left out because ${n === 1 ? "it" : "they"} could not be checked against the sources.`,
      ),
    );
  }
  if (answer.disclaimer) item.append(el("p", { class: "answer-disclaimer" }, answer.disclaimer));
  item.removeAttribute("aria-busy");
  scrollChat();
}

async function onAsk(event) {
  event.preventDefault();
  const analysis = shown;
  const input = $("chat-question");
  const question = input.value.trim();
  if (!analysis || busy) return;
  if (!question) {
    showError("Type a question first.");
    input.focus();
    return;
  }
  clearError();
  busy = true;
  const send = $("chat-send");
  send.disabled = true;
  input.value = "";
  addUserMessage(question);
  const item = addAssistantMessage();
  item.setAttribute("aria-busy", "true");
  const text = item.querySelector(".text");
  text.textContent = "…";
  let streamed = "";
  let finished = false;
  setStatus("Sahay is answering…");
  try {
    await ask(analysis.id, question, (name, data) => {
      if (name === "token") {
        streamed += data.text || "";
        text.textContent = streamed;
        scrollChat();
      } else if (name === "answer") {
        finished = true;
        renderAnswer(item, data);
      } else if (name === "error") {
        finished = true;
        item.classList.add("error-item");
        item.removeAttribute("aria-busy");
        text.textContent = data.detail || "The answer could not be completed.";
        showError(data.detail || "The answer could not be completed.");
      }
    });
    if (!finished) {
      item.removeAttribute("aria-busy");
      text.textContent = streamed || "No answer came back.";
      item.append(el("p", { class: "removed" }, "The answer was cut off before it was checked."));
    }
    setStatus(finished && !item.classList.contains("error-item") ? "Answer received." : "");
  } catch (error) {
    item.classList.add("error-item");
    item.removeAttribute("aria-busy");
    text.textContent = error instanceof ApiError ? error.message : "The question could not be sent.";
    reportError(error, "The question could not be answered");
  } finally {
    busy = false;
    send.disabled = false;
    input.focus();
  }
}
