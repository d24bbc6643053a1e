// The address bar: each analysis on screen has its own link (#analysis/<id>) that can be bookmarked
// or shared with a colleague who may see it, and Back moves between analyses within the app.

const PREFIX = "#analysis/";

/** The analysis id the address names, or null. */
export function analysisIdInURL() {
  if (!location.hash.startsWith(PREFIX)) return null;
  try {
    return decodeURIComponent(location.hash.slice(PREFIX.length)) || null;
  } catch {
    return null;
  }
}

export const analysisLink = (id) => `${location.pathname}${location.search}${PREFIX}${encodeURIComponent(id)}`;

/** Keep the address in step with the analysis on screen: a new entry for each one opened. */
export function showInURL(analysis) {
  if (analysis) {
    const hash = `${PREFIX}${encodeURIComponent(analysis.id)}`;
    if (location.hash !== hash) history.pushState(null, "", hash);
  } else if (analysisIdInURL()) {
    history.replaceState(null, "", `${location.pathname}${location.search}`);
  }
}

/** After sign-out Back must stay in the app (on the sign-in screen), not leave it. */
export function markSignedOut() {
  history.pushState(null, "", `${location.pathname}${location.search}#signed-out`);
}

/** Call handler() when Back, Forward or a link changes the address. */
export function onRoute(handler) {
  window.addEventListener("popstate", handler);
}
