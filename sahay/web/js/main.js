// Sahay browser UI: plain ES modules, no build step. It talks to the web service under /api/v1.
// Decision support, not a diagnosis: the disclaimer in index.html stays visible on every screen.

import { SessionExpired, capabilities, me, onSessionExpired, tokens } from "./api.js";
import { loadAdmin, setUpAdmin } from "./admin.js";
import { openAnalysis } from "./analysis.js";
import { setUpChat } from "./chat.js";
import { loadHistory, setUpHistory } from "./history.js";
import { setUpLogin, showAppScreen, showLogin } from "./login.js";
import { reportError } from "./messages.js";
import { renderReports } from "./reports.js";
import { analysisIdInURL, onRoute, showInURL } from "./router.js";
import { forgetRememberedAnalysis, onAnalysisChange, rememberedAnalysis, state } from "./state.js";
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

// A link to an analysis opened in a new tab: shown once its reader has signed in. Only the address
// the page was loaded with counts, so the next user of a shared tab does not inherit it.
let deepLink = analysisIdInURL();

async function showApp() {
  showAppScreen();
  const current = deepLink || rememberedAnalysis();
  deepLink = null;
  await Promise.allSettled([loadCapabilities(), loadHistory(true), loadAdmin()]);
  if (current && !state.analysis) {
    openAnalysis(current, { focus: false }).catch(() => forgetRememberedAnalysis());
  }
}

/** Back and Forward between analyses; nothing opens for a signed-out page. */
function followAddress() {
  const id = analysisIdInURL();
  if (!tokens.access || !id || (state.analysis && state.analysis.id === id)) return;
  openAnalysis(id).catch(() => {});
}

async function start() {
  setUpLogin(showApp);
  setUpUpload();
  setUpHistory();
  setUpViewer();
  setUpChat();
  setUpAdmin();
  onAnalysisChange(showInURL);
  onRoute(followAddress);
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
