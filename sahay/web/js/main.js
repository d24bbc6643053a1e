// Sahay browser UI: plain ES modules, no build step. It talks to the web service under /api/v1.
// Decision support, not a diagnosis: the disclaimer in index.html stays visible on every screen.

import { SessionExpired, capabilities, me, onSessionExpired, tokens } from "./api.js";
import { openAnalysis } from "./analysis.js";
import { setUpChat } from "./chat.js";
import { loadHistory, setUpHistory } from "./history.js";
import { setUpLogin, showAppScreen, showLogin } from "./login.js";
import { reportError } from "./messages.js";
import { renderReports } from "./reports.js";
import { forgetRememberedAnalysis, rememberedAnalysis, state } from "./state.js";
import { showChoices } from "./upload-choices.js";
import { setUpUpload } from "./upload.js";
import { setUpViewer } from "./viewer.js";

/** The server's lists (models, methods, report formats), fetched once per sign-in. */
async function loadCapabilities() {
  try {
    state.capabilities = await capabilities();
  } catch (error) {
    state.capabilities = null;
    reportError(error, "Could not load what this server offers");
    return;
  }
  showChoices(state.capabilities);
  if (state.analysis) renderReports(state.analysis);
}

async function showApp() {
  showAppScreen();
  const current = rememberedAnalysis();
  await Promise.allSettled([loadCapabilities(), loadHistory(true)]);
  if (current && !state.analysis) {
    openAnalysis(current, { focus: false }).catch(() => forgetRememberedAnalysis());
  }
}

async function start() {
  setUpLogin(showApp);
  setUpUpload();
  setUpHistory();
  setUpViewer();
  setUpChat();
  onSessionExpired(() => showLogin("Your session has expired. Please sign in again."));
  if (!tokens.access) {
    showLogin();
    return;
  }
  try {
    tokens.user = await me();
    await showApp();
  } catch (error) {
    if (!(error instanceof SessionExpired)) {
      tokens.clear();
      showLogin();
      reportError(error);
    }
  }
}

start();
