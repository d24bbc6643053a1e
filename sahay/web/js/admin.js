// Administration, for administrators only: the users (add, disable, enable) and the audit log.
// The server checks the role on every call; this only decides what to show.

import { auditLog, createUser, listUsers, setUserActive, tokens } from "./api.js";
import { $, el } from "./dom.js";
import { formatDate } from "./format.js";
import { clearError, reportError, setStatus, showError } from "./messages.js";

const AUDIT_ROWS = 100;

export function setUpAdmin() {
  $("new-user-form").addEventListener("submit", onNewUser);
}

const isAdmin = () => Boolean(tokens.user && tokens.user.role === "admin");

/** Show the section to an administrator (and fill it), hide it from everyone else. */
export async function loadAdmin() {
  const admin = isAdmin();
  $("admin").hidden = !admin;
  $("nav-admin").hidden = !admin;
  if (!admin) return;
  await Promise.allSettled([loadUsers(), loadAudit()]);
}

export function clearAdmin() {
  $("admin").hidden = true;
  $("nav-admin").hidden = true;
  $("users").tBodies[0].replaceChildren();
  $("audit").tBodies[0].replaceChildren();
  $("new-user-form").reset();
}

async function loadUsers() {
  let users;
  try {
    users = await listUsers();
  } catch (error) {
    reportError(error, "Could not load the users");
    return;
  }
  const me = tokens.user;
  $("users").tBodies[0].replaceChildren(
    ...users.map((user) => {
      const self = me && me.username === user.username;
      const toggle = self
        ? el("span", { class: "muted" }, "you")
        : el(
            "button",
            {
              type: "button",
              class: user.active ? "danger small" : "secondary small",
              "aria-label": `${user.active ? "Disable" : "Enable"} ${user.username}`,
              onclick: () => toggleUser(user),
            },
            user.active ? "Disable" : "Enable",
          );
      return el(
        "tr",
        { dataset: { user: user.username } },
        el("th", { scope: "row" }, user.username),
        el("td", {}, user.role),
        el("td", {}, user.active ? "active" : "disabled"),
        el("td", {}, formatDate(user.created_at)),
        el("td", {}, toggle),
      );
    }),
  );
}

async function loadAudit() {
  let entries;
  try {
    entries = await auditLog(AUDIT_ROWS);
  } catch (error) {
    reportError(error, "Could not load the audit log");
    return;
  }
  $("audit").tBodies[0].replaceChildren(
    ...entries.map((entry) =>
      el(
        "tr",
        {},
        el("td", {}, formatDate(entry.at)),
        el("th", { scope: "row" }, entry.actor),
        el("td", {}, entry.action),
        el("td", {}, [entry.object_type, entry.object_id ? entry.object_id.slice(0, 12) : ""].filter(Boolean).join(" ")),
      ),
    ),
  );
}

async function toggleUser(user) {
  clearError();
  try {
    await setUserActive(user.id, !user.active);
    setStatus(`${user.username} is ${user.active ? "disabled" : "enabled"}.`);
  } catch (error) {
    reportError(error, `Could not change ${user.username}`);
  }
  await Promise.allSettled([loadUsers(), loadAudit()]);
}

async function onNewUser(event) {
  event.preventDefault();
  clearError();
  const username = $("new-username").value.trim();
  const password = $("new-password").value;
  if (!username || !password) {
    showError("Enter a username and a password for the new user.");
    return;
  }
  try {
    await createUser(username, password, $("new-role").value);
    $("new-user-form").reset();
    setStatus(`Added ${username}.`);
  } catch (error) {
    reportError(error, "Could not add the user");
  }
  await Promise.allSettled([loadUsers(), loadAudit()]);
}
