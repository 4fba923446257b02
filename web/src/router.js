// History-based routing: same-origin links navigate without a reload.
import { createStore } from "./store.js";

export const route = createStore(location.pathname + location.search);

let leaveGuard = null;

/** While `message` is set, leaving the page (in the app or away) asks first. */
export function setLeaveGuard(message) {
  leaveGuard = message;
}

addEventListener("beforeunload", (event) => {
  if (leaveGuard) {
    event.preventDefault();
    event.returnValue = leaveGuard;
  }
});

export function navigate(path, { replace = false } = {}) {
  if (leaveGuard && !confirm(leaveGuard)) return;
  leaveGuard = null;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  route.set(location.pathname + location.search);
}

export function loginPath() {
  if (location.pathname === "/login") return location.pathname + location.search;
  return `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
}

addEventListener("popstate", () => route.set(location.pathname + location.search));

document.addEventListener("click", (event) => {
  const a = event.target.closest && event.target.closest("a[href]");
  if (!a || a.target || a.hasAttribute("download") || event.defaultPrevented) return;
  if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  const url = new URL(a.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/docs")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});
