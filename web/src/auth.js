// Sign up and log in forms, and logging out.
import { html } from "./html.js";
import { useState } from "preact/hooks";
import { api } from "./api.js";
import { signedIn, signedOut } from "./session.js";
import { navigate } from "./router.js";

function nextPath() {
  const next = new URLSearchParams(location.search).get("next");
  if (next) return next.startsWith("/") && !next.startsWith("//") ? next : "/";
  // Shown in place of a page that needs a session: stay on that page.
  return ["/login", "/signup"].includes(location.pathname) ? "/" : location.pathname;
}

export function AuthPage({ mode }) {
  const [handle, setHandle] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const signup = mode === "signup";
  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = await api(signup ? "/v1/accounts" : "/v1/sessions", {
        method: "POST",
        body: { handle, password },
      });
      signedIn(body);
      navigate(nextPath(), { replace: true });
    } catch (e) {
      setError(e.message);
    } finally {
      setBusy(false);
    }
  };
  const other = signup ? "/login" : "/signup";
  return html`<main class="page narrow">
    <h1>${signup ? "Create your account" : "Log in"}</h1>
    <form class="stack" onSubmit=${submit}>
      <label>Handle<input name="handle" autocomplete="username" required value=${handle}
        onInput=${(e) => setHandle(e.target.value)} /></label>
      <label>Password<input name="password" type="password" required minlength="10"
        autocomplete=${signup ? "new-password" : "current-password"} value=${password}
        onInput=${(e) => setPassword(e.target.value)} /></label>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <button class="primary" disabled=${busy}>${signup ? "Sign up" : "Log in"}</button>
    </form>
    <p>${signup ? "Have an account? " : "New here? "}
      <a href=${`${other}${location.search}`}>${signup ? "Log in" : "Sign up"}</a></p>
  </main>`;
}

export async function logOut() {
  try {
    await api("/v1/sessions/current", { method: "DELETE" });
  } catch {
    // the session may be gone already: signing out here is what matters
  }
  signedOut();
  navigate("/login", { replace: true });
}
