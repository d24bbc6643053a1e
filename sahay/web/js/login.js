// Sign-in and sign-out, and which screen shows: the login form or the application.

import { signIn, signOut, tokens } from "./api.js";
import { clearAdmin } from "./admin.js";
import { closeAnalysis } from "./analysis.js";
import { $ } from "./dom.js";
import { clearHistory } from "./history.js";
import { clearError, reportError, setStatus, showError } from "./messages.js";
import { markSignedOut } from "./router.js";
import { resetUpload } from "./upload.js";

/** onSignedIn() loads the application once the tokens are stored. */
export function setUpLogin(onSignedIn) {
  $("login-form").addEventListener("submit", (event) => onLogin(event, onSignedIn));
  $("logout").addEventListener("click", onLogout);
}

export function showLogin(message) {
  closeAnalysis();
  resetUpload();
  clearAdmin();
  $("app-screen").hidden = true;
  $("app-nav").hidden = true;
  $("session").hidden = true;
  $("login-screen").hidden = false;
  $("password").value = "";
  setStatus("");
  if (message) showError(message);
  $("username").focus();
}

export function showAppScreen() {
  const user = tokens.user;
  $("login-screen").hidden = true;
  $("app-screen").hidden = false;
  $("app-nav").hidden = false;
  $("session").hidden = false;
  $("session-user").textContent = user ? `Signed in as ${user.username} (${user.role})` : "";
}

async function onLogin(event, onSignedIn) {
  event.preventDefault();
  clearError();
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) {
    showError("Enter your username and password.");
    (username ? $("password") : $("username")).focus();
    return;
  }
  const button = $("login-button");
  button.disabled = true;
  setStatus("Signing in…");
  try {
    await signIn(username, password);
    $("password").value = "";
    setStatus(`Signed in as ${username}.`);
    await onSignedIn();
    $("file-input").focus();
  } catch (error) {
    reportError(error, "Sign-in failed");
    $("password").focus();
  } finally {
    button.disabled = false;
  }
}

async function onLogout() {
  clearError();
  await signOut();
  clearHistory();
  showLogin();
  markSignedOut();
  setStatus("You have been logged out.");
}
