// The signed-in session (bearer token, handle, user id), kept in localStorage.
import { createStore } from "./store.js";

const KEY = "reelplane.session";

function read() {
  try {
    return JSON.parse(localStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

export const session = createStore(read());

export function signedIn(body) {
  const value = { token: body.token, handle: body.handle, user_id: body.user_id };
  localStorage.setItem(KEY, JSON.stringify(value));
  session.set(value);
}

export function signedOut() {
  localStorage.removeItem(KEY);
  session.set(null);
}
