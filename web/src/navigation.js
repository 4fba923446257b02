// Moving through a vertical feed by wheel and keys: one item per wheel
// gesture (released when the wheel rests, so it never sticks), and keys.
export function wheelStepper(onStep) {
  let locked = false;
  let idle = null;
  let cap = null;
  const unlock = () => {
    locked = false;
    clearTimeout(cap);
  };
  return (event) => {
    event.preventDefault();
    if (Math.abs(event.deltaY) < 4) return;
    clearTimeout(idle);
    idle = setTimeout(unlock, 160); // the gesture ended: the next one moves again
    if (locked) return;
    locked = true;
    cap = setTimeout(unlock, 900); // a long inertial tail counts as a new gesture
    onStep(event.deltaY > 0 ? 1 : -1);
  };
}

const NEXT = new Set(["ArrowDown", "PageDown", " ", "j"]);
const PREVIOUS = new Set(["ArrowUp", "PageUp", "k"]);

/** Keys of the feed: -1/1 to move, or the name of an action (like, comments, mute). */
export function feedKey(event) {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return null;
  if (target.closest && target.closest("input, textarea, select, [contenteditable], .sheet")) return null;
  if (NEXT.has(event.key)) return 1;
  if (PREVIOUS.has(event.key)) return -1;
  return { l: "like", c: "comments", m: "mute" }[event.key.toLowerCase()] || null;
}
