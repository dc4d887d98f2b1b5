// Browser notifications: a mention of you or a direct message while the tab is hidden.
// Asked for only by the button ("Notify me of mentions"), never on load. Owns nothing:
// the browser keeps the permission.
import { ui } from "./dom.js";
import { isOwn } from "./outbox.js";
import { isDm, mentionsMe, roomLabel } from "./rooms.js";

const supported = "Notification" in window;

// A message arrived: one notification for it (its id as the tag) when it calls for one.
export function notifyMessage(message) {
  if (!supported || Notification.permission !== "granted") return;
  if (document.visibilityState !== "hidden" || typeof message.text !== "string") return;
  if (isOwn(message, message.verified === true)) return;
  if (!mentionsMe(message) && !isDm(message.room)) return;
  const title = isDm(message.room) ? message.from : `${message.from} in ${roomLabel(message.room)}`;
  const shown = new Notification(title, { body: message.text.slice(0, 200), tag: message.id });
  shown.addEventListener("click", () => window.focus());
}

function showButton() {
  ui.notifyOn.hidden = !supported || Notification.permission !== "default";
  ui.notifyNote.hidden = !supported || Notification.permission !== "denied";
}

export function initNotify() {
  showButton();
  ui.notifyOn.addEventListener("click", async () => {
    await Notification.requestPermission();
    showButton();
  });
}
