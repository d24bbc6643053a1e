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

/** Report an error from any action: API messages as given, anything else in plain words. */
export function reportError(error, context) {
  if (error instanceof SessionExpired) return; // the login screen already says so
  if (error && error.name === "AbortError") return;
  let message;
  if (error instanceof ApiError) message = error.message;
  else if (error instanceof TypeError) message = "Could not reach the Sahay server. Check the connection and try again.";
  else message = (error && error.message) || String(error);
  showError(context ? `${context}: ${message}` : message);
  setStatus("");
}
