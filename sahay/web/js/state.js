// What several views share: the analysis on screen and what the server offers.

const CURRENT_KEY = "sahay.current_analysis"; // reopened after a reload of the page

export const state = {
  analysis: null,
  capabilities: null, // GET /capabilities, fetched once after sign-in
};

const listeners = [];

/** Call fn(analysis) whenever the analysis on screen changes (null when none). */
export function onAnalysisChange(fn) {
  listeners.push(fn);
}

export function setAnalysis(analysis) {
  state.analysis = analysis;
  if (analysis) sessionStorage.setItem(CURRENT_KEY, analysis.id);
  else sessionStorage.removeItem(CURRENT_KEY);
  for (const fn of listeners) fn(analysis);
}

export const rememberedAnalysis = () => sessionStorage.getItem(CURRENT_KEY);
export const forgetRememberedAnalysis = () => sessionStorage.removeItem(CURRENT_KEY);
