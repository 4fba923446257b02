// The vertical feed: full-height snap cards, one active at a time, the next
// one preloaded, pages fetched ahead, wheel and keyboard navigation.
import { html } from "./html.js";
import { useCallback, useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { Card } from "./card.js";
import { Comments } from "./comments.js";
import { feedKey, wheelStepper } from "./navigation.js";
import { muted, setMuted } from "./sound.js";
import { setLike } from "./likes.js";
import { Icon } from "./icons.js";
import { flush } from "./watch.js";

const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");

export function Feed({ load, empty, startId = null }) {
  const [items, setItems] = useState([]);
  const [next, setNext] = useState(undefined); // undefined: first page not read yet
  const [error, setError] = useState(null);
  const [active, setActive] = useState(0);
  const [commentsFor, setCommentsFor] = useState(null);
  const box = useRef(null);
  const target = useRef(0);
  const steering = useRef(false); // a wheel or key move is scrolling to target
  const loading = useRef(false);
  const state = useRef({});
  state.current = { items, active, commentsFor };

  // Opened at a start item (a profile tile): the first page is rendered with
  // it active already, so no other video starts loading or playing first.
  const started = useRef(false);
  const jump = useRef(false); // the box still has to scroll to the start item

  const more = useCallback(async (cursor) => {
    if (loading.current) return;
    loading.current = true;
    try {
      const page = await load(cursor);
      if (!started.current) {
        started.current = true;
        const index = startId ? page.items.findIndex((i) => i.video_id === startId) : -1;
        if (index > 0) {
          target.current = index;
          jump.current = true;
          setActive(index);
        }
      }
      setItems((all) => {
        const seen = new Set(all.map((i) => i.video_id));
        return [...all, ...page.items.filter((i) => !seen.has(i.video_id))];
      });
      setNext(page.next_cursor || null);
    } catch (e) {
      setError(e.message);
      setNext(null);
    } finally {
      loading.current = false;
    }
  }, [load]);

  useEffect(() => {
    more(null);
    return () => flush();
  }, [more]);

  useEffect(() => {
    if (next && active >= items.length - 3) more(next);
  }, [active, items.length, next]);

  // Before the first paint with the start item: scroll to it.
  useLayoutEffect(() => {
    if (!jump.current || !box.current) return;
    jump.current = false;
    box.current.scrollTop = target.current * box.current.clientHeight;
  }, [items.length]);

  const go = useCallback((step) => {
    const el = box.current;
    const count = state.current.items.length;
    if (!el || !count) return;
    const to = Math.max(0, Math.min(count - 1, target.current + step));
    target.current = to;
    steering.current = true;
    setActive(to);
    el.scrollTo({ top: to * el.clientHeight, behavior: reducedMotion.matches ? "auto" : "smooth" });
  }, []);

  // The active item follows the scroll once it rests (touch and snap).
  useEffect(() => {
    const el = box.current;
    let timer = null;
    const settle = () => {
      const index = Math.round(el.scrollTop / el.clientHeight);
      if (steering.current) {
        // A smooth scroll cut short by the next key press may rest early: finish it.
        steering.current = false;
        if (index !== target.current) el.scrollTo({ top: target.current * el.clientHeight });
        return;
      }
      target.current = index;
      setActive(index);
    };
    const onScroll = () => {
      clearTimeout(timer);
      timer = setTimeout(settle, 120);
    };
    const onWheel = wheelStepper(go);
    el.addEventListener("scroll", onScroll, { passive: true });
    el.addEventListener("wheel", onWheel, { passive: false });
    return () => {
      el.removeEventListener("scroll", onScroll);
      el.removeEventListener("wheel", onWheel);
    };
  }, [go]);

  useEffect(() => {
    const onKey = (event) => {
      const { items: all, active: i, commentsFor: open } = state.current;
      if (open) return;
      const action = feedKey(event);
      if (action === null) return;
      event.preventDefault();
      const item = all[i];
      if (typeof action === "number") go(action);
      else if (action === "mute") setMuted(!muted.get());
      else if (item && action === "like") setLike(item, !item.viewer_liked, (p) => patch(i, p));
      else if (item && action === "comments") setCommentsFor(i);
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  }, [go]);

  const patch = (index, values) =>
    setItems((all) => all.map((item, i) => (i === index ? { ...item, ...values } : item)));

  const closeComments = () => {
    const index = commentsFor;
    setCommentsFor(null);
    const button = box.current && box.current.querySelectorAll("[data-comments-button]")[index];
    if (button) button.focus();
  };

  if (next !== undefined && !items.length) {
    return html`<div class="empty">${error ? `Could not load the feed: ${error}` : empty}</div>`;
  }
  return html`<div class=${`feed-wrap${commentsFor !== null ? " with-comments" : ""}`}>
    <div class="feed" ref=${box} tabindex="-1" data-feed>
      ${items.map((item, i) => html`<${Card} key=${item.video_id} item=${item} active=${i === active}
        attached=${i >= active - 1 && i <= active + 1}
        update=${(values) => patch(i, values)} onComments=${() => setCommentsFor(i)} />`)}
    </div>
    <div class="feed-arrows">
      <button aria-label="Previous video" onClick=${() => go(-1)}><${Icon} name="up" /></button>
      <button aria-label="Next video" onClick=${() => go(1)}><${Icon} name="down" /></button>
    </div>
    ${commentsFor !== null && items[commentsFor] && html`<${Comments} item=${items[commentsFor]}
      onClose=${closeComments}
      onCount=${(delta) => patch(commentsFor, {
        counters: { ...items[commentsFor].counters, comments: Math.max(0, items[commentsFor].counters.comments + delta) },
      })} />`}
  </div>`;
}
