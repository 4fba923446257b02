// Notifications: the unread count, kept live over the WebSocket
// /v1/notifications/live. The token goes in the first ("hello") message,
// never in the URL; the last cursor received goes with it on a reconnect, so
// what arrived while the socket was down is replayed. Reconnects back off
// (1 s doubling to 30 s, with jitter) and start over after a good connection.
import { api } from "./api.js";
import { session } from "./session.js";
import { createStore } from "./store.js";

/** Unread notifications (null until known, or when signed out). */
export const unread = createStore(null);
/** Whether the live socket is connected (its hello answered). */
export const live = createStore(false);
/** Bumped on every live notification (the inbox reloads on it). */
export const arrivals = createStore(0);

const MAX_BACKOFF_MS = 30_000;
// The server sends a heartbeat every 20 s: a silent socket is a dead one.
const SILENCE_MS = 65_000;
const STOP_CODES = new Set([4401]); // the token is no good: reconnecting will not help

let socket = null;
let token = null;
let cursor = null;
let attempts = 0;
let retry = null;
let watchdog = null;
let countTimer = null;

export async function refreshUnread() {
  if (!session.get()) return;
  try {
    const body = await api("/v1/notifications/unread-count");
    if (session.get()) unread.set(body.unread);
  } catch {
    // the badge keeps its last value; the next notification or reconnect refreshes it
  }
}

// The count is re-read from the server (the log is written before the live
// message is sent), so replays and duplicates never count twice.
function refreshSoon() {
  clearTimeout(countTimer);
  countTimer = setTimeout(refreshUnread, 150);
}

function liveUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/notifications/live`;
}

function alive() {
  clearTimeout(watchdog);
  watchdog = setTimeout(() => socket && socket.close(), SILENCE_MS);
}

function connect() {
  clearTimeout(retry);
  if (!token || socket) return;
  const ws = new WebSocket(liveUrl());
  socket = ws;
  ws.onopen = () => {
    ws.send(JSON.stringify(cursor ? { type: "hello", token, cursor } : { type: "hello", token }));
    alive();
  };
  ws.onmessage = (event) => {
    alive();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message.type === "ready") {
      attempts = 0;
      live.set(true);
      refreshSoon();
    } else if (message.type === "notification") {
      if (message.cursor) cursor = message.cursor;
      refreshSoon();
      arrivals.set((n) => n + 1);
    }
  };
  ws.onclose = (event) => {
    clearTimeout(watchdog);
    if (socket === ws) {
      socket = null;
      live.set(false);
    }
    if (!token || STOP_CODES.has(event.code)) return;
    const wait = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempts) * (0.75 + Math.random() / 2);
    attempts += 1;
    retry = setTimeout(connect, wait);
  };
}

function disconnect() {
  clearTimeout(retry);
  clearTimeout(watchdog);
  if (socket) {
    const ws = socket;
    socket = null;
    ws.close(1000, "signed out");
    live.set(false);
  }
}

function follow(current) {
  const next = current ? current.token : null;
  if (next === token) return;
  disconnect();
  token = next;
  cursor = null;
  attempts = 0;
  unread.set(null);
  if (token) {
    refreshUnread();
    connect();
  }
}

session.subscribe(follow);
follow(session.get());

// Back online, or back to a hidden tab: try at once rather than waiting out the backoff.
addEventListener("online", () => {
  attempts = 0;
  connect();
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && token && !socket) {
    attempts = 0;
    connect();
  }
});

/** Everything up to now has been seen. */
export async function markAllRead() {
  await api("/v1/notifications/read-all", { method: "POST" });
  unread.set(0);
}
