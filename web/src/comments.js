// Comments: a bottom sheet on phones, a side panel on wide screens; paging,
// posting, deleting your own. Text is rendered as text, never as markup.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "preact/hooks";
import { api, requireSession } from "./api.js";
import { session } from "./session.js";
import { useStore } from "./store.js";
import { ago } from "./format.js";
import { Icon } from "./icons.js";
import { toast } from "./toast.js";

export function Comments({ item, onClose, onCount }) {
  const me = useStore(session);
  const [list, setList] = useState([]);
  const [next, setNext] = useState(undefined);
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const sheet = useRef(null);

  const load = async (cursor) => {
    const query = cursor ? `?cursor=${encodeURIComponent(cursor)}` : "";
    try {
      const page = await api(`/v1/videos/${item.video_id}/comments${query}`);
      setList((all) => (cursor ? [...all, ...page.items] : page.items));
      setNext(page.next_cursor);
    } catch (error) {
      toast(`Could not load comments: ${error.message}`);
      setNext(null);
    }
  };
  useEffect(() => {
    load(null);
    sheet.current.focus();
  }, [item.video_id]);
  // Esc closes it wherever focus is (a disabled button drops focus to the page).
  useEffect(() => {
    const onEscape = (event) => {
      if (event.key === "Escape") onClose();
    };
    addEventListener("keydown", onEscape);
    return () => removeEventListener("keydown", onEscape);
  }, [onClose]);

  const onKey = (event) => {
    if (event.key === "Tab") {
      // Keep focus inside the sheet while it is open.
      const focusable = sheet.current.querySelectorAll("button, textarea, a[href]");
      const first = focusable[0];
      const last = focusable[focusable.length - 1];
      if (event.shiftKey && document.activeElement === first) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && document.activeElement === last) {
        event.preventDefault();
        first.focus();
      }
    }
  };
  const post = async (event) => {
    event.preventDefault();
    if (!requireSession() || !text.trim()) return;
    setBusy(true);
    try {
      const made = await api(`/v1/videos/${item.video_id}/comments`, { method: "POST", body: { text } });
      setList((all) => [made, ...all]);
      setText("");
      onCount(1);
      sheet.current.querySelector("textarea").focus();
    } catch (error) {
      toast(`Could not post: ${error.message}`);
    } finally {
      setBusy(false);
    }
  };
  const remove = async (comment) => {
    try {
      await api(`/v1/comments/${comment.comment_id}`, { method: "DELETE" });
      setList((all) => all.filter((c) => c.comment_id !== comment.comment_id));
      onCount(-1);
    } catch (error) {
      toast(`Could not delete: ${error.message}`);
    }
  };
  return html`<div class="sheet-backdrop" onClick=${onClose}>
    <aside class="sheet" ref=${sheet} tabindex="-1" role="dialog" aria-modal="true" aria-label="Comments"
        onClick=${(e) => e.stopPropagation()} onKeyDown=${onKey} onWheel=${(e) => e.stopPropagation()}>
      <header class="sheet-head">
        <h2>${item.counters.comments} comments</h2>
        <button aria-label="Close comments" onClick=${onClose}><${Icon} name="close" /></button>
      </header>
      <ul class="comments" data-comments>
        ${list.map((c) => html`<li class="comment" key=${c.comment_id}>
          <a class="handle" href=${`/@${c.handle}`}>@${c.handle}</a>
          <span class="when">${ago(c.created_at)}</span>
          <p class="comment-text">${c.text}</p>
          ${me && me.user_id === c.user_id && html`<button class="link" aria-label="Delete comment"
            onClick=${() => remove(c)}><${Icon} name="trash" size=${16} /></button>`}
        </li>`)}
        ${next === undefined && html`<li class="muted">Loading…</li>`}
        ${next === null && !list.length && html`<li class="muted">No comments yet. Be the first.</li>`}
        ${next && html`<li><button class="link" onClick=${() => load(next)}>More comments</button></li>`}
      </ul>
      <form class="comment-form" onSubmit=${post}>
        <textarea aria-label="Add a comment" placeholder=${me ? "Add a comment…" : "Log in to comment"}
          maxlength="500" rows="1" value=${text} onInput=${(e) => setText(e.target.value)}></textarea>
        <button class="primary" disabled=${busy || !text.trim()}>Post</button>
      </form>
    </aside>
  </div>`;
}
