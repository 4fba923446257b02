// Whom the viewer follows, per creator (read from their profile once, then
// kept in step with the follow buttons).
import { api, requireSession } from "./api.js";
import { createStore } from "./store.js";
import { session } from "./session.js";
import { toast } from "./toast.js";

export const follows = createStore({}); // user_id -> true | false
const asked = new Set();

export function learnFollow(userId) {
  const me = session.get();
  if (!me || me.user_id === userId || asked.has(userId)) return;
  asked.add(userId);
  api(`/v1/users/${userId}`)
    .then((p) => follows.set((all) => ({ ...all, [userId]: Boolean(p.viewer_follows) })))
    .catch(() => asked.delete(userId));
}

export function setFollowKnown(userId, value) {
  asked.add(userId);
  follows.set((all) => ({ ...all, [userId]: value }));
}

/** Follow or unfollow, optimistic; resolves to the new state. */
export async function toggleFollow(userId) {
  if (!requireSession()) return null;
  const now = Boolean(follows.get()[userId]);
  setFollowKnown(userId, !now);
  try {
    await api(`/v1/users/${userId}/follow`, { method: now ? "DELETE" : "PUT" });
    return !now;
  } catch (error) {
    setFollowKnown(userId, now);
    toast(`Could not ${now ? "unfollow" : "follow"}: ${error.message}`);
    return now;
  }
}
