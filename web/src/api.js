// The API client: bearer token, problem+json errors in words, Retry-After on 429.
import { session, signedOut } from "./session.js";
import { loginPath, navigate } from "./router.js";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `request failed (${status})`);
    this.status = status;
    this.problem = problem;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function problemOf(response) {
  try {
    return await response.json();
  } catch {
    return { title: response.statusText };
  }
}

export async function api(path, { method = "GET", body, keepalive = false, retries = 2 } = {}) {
  const headers = { Accept: "application/json" };
  const current = session.get();
  if (current) headers.Authorization = `Bearer ${current.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    keepalive,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 429 && retries > 0) {
    const wait = Math.min(Number(response.headers.get("Retry-After")) || 1, 10);
    await sleep(wait * 1000);
    return api(path, { method, body, keepalive, retries: retries - 1 });
  }
  // A 401 for the session still in use ends it; one for a session already ended
  // (a request in flight while logging out) changes nothing.
  if (response.status === 401 && current && session.get()?.token === current.token) {
    signedOut();
    navigate(loginPath());
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  if (response.status === 204) return null;
  return response.json();
}

/** Run `action` when signed in; otherwise ask to sign in first. */
export function requireSession() {
  if (session.get()) return true;
  navigate(loginPath());
  return false;
}
