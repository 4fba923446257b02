// Like and unlike, optimistic with rollback.
import { api, requireSession } from "./api.js";
import { toast } from "./toast.js";

/** `item` is liked (or not): returns the patch to show at once, and runs the
 * request, calling `update` with the rollback patch on failure. */
export function setLike(item, liked, update) {
  if (!requireSession()) return;
  if (item.viewer_liked === liked) return;
  const before = { viewer_liked: item.viewer_liked, counters: item.counters };
  update({
    viewer_liked: liked,
    counters: { ...item.counters, likes: Math.max(0, item.counters.likes + (liked ? 1 : -1)) },
  });
  api(`/v1/videos/${item.video_id}/like`, { method: liked ? "PUT" : "DELETE" }).catch((error) => {
    update(before);
    toast(`Could not ${liked ? "like" : "unlike"}: ${error.message}`);
  });
}
