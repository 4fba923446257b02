// Account settings: the display name, the e-mail address digests go to and the
// digest switch (GET and PATCH /v1/me). What changed goes in one PATCH, so a
// refused field saves nothing; the server's message shows next to its field and
// what the person typed stays. Save is aria-disabled, never disabled, so a
// keyboard user's focus stays on it while it saves.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "./api.js";
import { logOut } from "./auth.js";
import { setLeaveGuard } from "./router.js";

const FIELDS = ["display_name", "email", "digest_enabled"];
const UNSAVED = "Your settings are not saved. Leave this page?";

/** The form's values for an account (no address: ""). */
function formOf(account) {
  return {
    display_name: account.display_name,
    email: account.email || "",
    digest_enabled: account.digest_enabled,
  };
}

/** The PATCH body: only what differs from `saved` (an emptied address is null: removed). */
export function changesOf(saved, form) {
  const body = {};
  const name = form.display_name.trim();
  if (name !== saved.display_name) body.display_name = name;
  const email = form.email.trim();
  if (email !== saved.email) body.email = email || null;
  if (form.digest_enabled !== saved.digest_enabled) body.digest_enabled = form.digest_enabled;
  return body;
}

/** field -> the server's message, from a 422 problem's `errors` (loc ["body", field]). */
function fieldErrors(problem) {
  const out = {};
  for (const e of (problem && problem.errors) || []) {
    const field = e.loc && e.loc[0] === "body" ? e.loc[1] : undefined;
    if (FIELDS.includes(field) && !out[field]) out[field] = e.msg;
  }
  return out;
}

/** aria-describedby of a field: its hint, and its error while it has one. */
const describedBy = (name, errors, hint = true) =>
  [hint && `settings-${name}-hint`, errors[name] && `settings-${name}-error`].filter(Boolean).join(" ") ||
  undefined;

function FieldError({ name, errors }) {
  return errors[name]
    ? html`<p class="error field-error" id=${`settings-${name}-error`} data-error=${name}>${errors[name]}</p>`
    : null;
}

export function SettingsPage() {
  const [account, setAccount] = useState(null);
  const [saved, setSaved] = useState(null); // the form as the server has it
  const [form, setForm] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [errors, setErrors] = useState({});
  const [error, setError] = useState(null); // a failure not about one field
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState("");
  const inputs = { display_name: useRef(null), email: useRef(null), digest_enabled: useRef(null) };

  const load = () => {
    setLoadError(null);
    api("/v1/me")
      .then((a) => {
        setAccount(a);
        setSaved(formOf(a));
        setForm(formOf(a));
      })
      .catch((e) => setLoadError(e.message));
  };
  useEffect(load, []);

  const changes = saved && form ? changesOf(saved, form) : {};
  const dirty = Object.keys(changes).length > 0;
  useEffect(() => setLeaveGuard(dirty ? UNSAVED : null), [dirty]);
  useEffect(() => () => setLeaveGuard(null), []);

  const edit = (field, value) => {
    setForm((f) => ({ ...f, [field]: value }));
    setStatus("");
    setErrors((e) => (e[field] ? { ...e, [field]: undefined } : e));
  };
  const discard = () => {
    setForm(saved);
    setErrors({});
    setError(null);
    inputs.display_name.current && inputs.display_name.current.focus(); // the button goes away
  };
  const submit = async (event) => {
    event.preventDefault();
    if (!dirty || busy) return;
    setBusy(true);
    setErrors({});
    setError(null);
    setStatus("");
    try {
      const updated = await api("/v1/me", { method: "PATCH", body: changes });
      setAccount(updated);
      setSaved(formOf(updated));
      setForm(formOf(updated));
      setStatus("Saved");
    } catch (e) {
      const byField = e.status === 422 ? fieldErrors(e.problem) : {};
      const first = FIELDS.find((f) => byField[f]);
      setErrors(byField);
      if (first) inputs[first].current && inputs[first].current.focus();
      else setError(e.message);
    } finally {
      setBusy(false);
    }
  };

  if (loadError) {
    return html`<main class="page narrow settings">
      <h1>Settings</h1>
      <p class="error" role="alert">${loadError}</p>
      <button onClick=${load}>Try again</button>
    </main>`;
  }
  if (!form) return html`<main class="page narrow settings"><p class="muted">Loading…</p></main>`;
  const hasEmail = form.email.trim() !== "";
  return html`<main class="page narrow settings">
    <h1>Settings</h1>
    <p class="muted signed-in-as">Signed in as <a href=${`/@${account.handle}`}>@${account.handle}</a></p>
    <form class="stack" noValidate onSubmit=${submit} aria-label="Account settings">
      <div class="field">
        <label>Display name
          <input name="display_name" ref=${inputs.display_name} maxlength="80" autocomplete="name"
            value=${form.display_name} onInput=${(e) => edit("display_name", e.target.value)}
            aria-invalid=${errors.display_name ? "true" : undefined}
            aria-describedby=${describedBy("display_name", errors)} /></label>
        <p class="hint" id="settings-display_name-hint">Shown next to your handle. Leave it empty for none.</p>
        <${FieldError} name="display_name" errors=${errors} />
      </div>
      <div class="field">
        <label>E-mail address
          <input name="email" type="email" inputmode="email" ref=${inputs.email} autocomplete="email"
            spellcheck="false" autocapitalize="off" maxlength="320" placeholder="you@example.org"
            value=${form.email} onInput=${(e) => edit("email", e.target.value)}
            aria-invalid=${errors.email ? "true" : undefined}
            aria-describedby=${describedBy("email", errors)} /></label>
        <p class="hint" id="settings-email-hint">Only for your digest; never shown to anyone. Leave it empty to remove it.</p>
        <${FieldError} name="email" errors=${errors} />
      </div>
      <div class="field">
        <label class="switch">
          <input name="digest_enabled" type="checkbox" role="switch" ref=${inputs.digest_enabled}
            checked=${form.digest_enabled} onChange=${(e) => edit("digest_enabled", e.target.checked)}
            aria-invalid=${errors.digest_enabled ? "true" : undefined}
            aria-describedby=${describedBy("digest_enabled", errors)} />
          <span>Digest e-mails</span>
        </label>
        <p class="hint" id="settings-digest_enabled-hint">${hasEmail
          ? "Your new followers, your top videos and creators to follow, now and then."
          : "Add an e-mail address above to get them."}</p>
        <${FieldError} name="digest_enabled" errors=${errors} />
      </div>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      <div class="form-actions">
        <button class="primary" type="submit" aria-disabled=${busy || !dirty ? "true" : undefined}>
          ${busy ? "Saving…" : "Save"}</button>
        ${dirty && html`<button type="button" class="link" onClick=${discard}>Discard changes</button>`}
        <span class="saved" role="status">${status}</span>
      </div>
    </form>
    <hr class="divider" />
    <button type="button" onClick=${logOut}>Log out</button>
  </main>`;
}
