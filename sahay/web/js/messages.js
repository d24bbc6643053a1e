// The status line (polite) and the error box (an alert), shared by every view.

import { ApiError, SessionExpired } from "./api.js";
import { $ } from "./dom.js";

export function setStatus(message) {
  $("status").textContent = message || "";
}

export function showError(message, action = null) {
  const box = $("error");
  box.textContent = message;
  if (action) {
    // One action the user can take from here (for example "Analyse anyway"), inside the alert.
    const button = document.createElement("button");
    button.type = "button";
    button.className = "error-action";
    button.textContent = action.label;
    button.addEventListener("click", () => {
      clearError();
      action.run();
    });
    box.append(" ", button);
  }
  box.hidden = false;
  // Where the user is looking: a long page may be scrolled down to the result.
  box.scrollIntoView({ block: "nearest" });
}

export function clearError() {
  const box = $("error");
  box.textContent = "";
  box.hidden = true;
}

// The browser's own advice for errors whose API advice names API fields or commands.
const ADVICE = {
  model_unavailable: "Choose a model in the Model list above, or ask an administrator to install one.",
};

/** Report an error from any action: the server's message without its API advice, with this page's
 * advice where it has its own; anything else in plain words. */
export function reportError(error, context) {
  if (error instanceof SessionExpired) return; // the login screen already says so
  if (error && error.name === "AbortError") return;
  let message;
  if (error instanceof ApiError) message = [error.plain, ADVICE[error.kind]].filter(Boolean).join(" ");
  else if (error instanceof TypeError) message = "Could not reach the Sahay server. Check the connection and try again.";
  else message = (error && error.message) || String(error);
  showError(context ? `${context}: ${message}` : message);
  setStatus("");
}
