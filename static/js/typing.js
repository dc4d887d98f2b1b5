// Typing: the line under the log that says who is typing in the shown room, and the
// `typing` frames this page sends while its person types. Owns both.
import { ui } from "./dom.js";
import { shownRoom } from "./log.js";
import { send } from "./socket.js";

// The server passes on one typing frame per connection every 3 s and drops the others
// silently. Sent exactly 3 s apart, timer jitter lands some inside the 3 s and the
// receiver's line flickers off: a second of margin keeps every frame passed on.
const SEND_EVERY_MS = 4000;
// Someone is typing for this long after their last typing frame: longer than the
// spacing above, so a steady typist's line never lapses between two frames.
const SHOWN_MS = 5000;

const typing = {
  sentAt: 0,
  // Who is typing in the shown room: nickname -> the timer that forgets them.
  who: new Map(),
};

// The composer changed: one typing frame at most every 4 s, never for a /command.
export function noteTyped(text) {
  const now = Date.now();
  if (!text || (text.startsWith("/") && !text.startsWith("//"))) return;
  if (now - typing.sentAt < SEND_EVERY_MS || !shownRoom()) return;
  if (send({ action: "typing", room: shownRoom() })) typing.sentAt = now;
}

export function receiveTyping(frame) {
  if (frame.room !== shownRoom() || typeof frame.nick !== "string") return;
  clearTimeout(typing.who.get(frame.nick));
  typing.who.set(
    frame.nick,
    setTimeout(() => stopTyping(frame.nick), SHOWN_MS),
  );
  render();
}

// Their message arrived (or they left): they are no longer typing it.
export function stopTyping(nick) {
  if (!typing.who.has(nick)) return;
  clearTimeout(typing.who.get(nick));
  typing.who.delete(nick);
  render();
}

// Another room is shown.
export function forgetTyping() {
  for (const timer of typing.who.values()) clearTimeout(timer);
  typing.who.clear();
  render();
}

function render() {
  const names = [...typing.who.keys()];
  if (names.length === 0) ui.typing.textContent = "";
  else if (names.length === 1) ui.typing.textContent = `${names[0]} is typing…`;
  else if (names.length === 2) ui.typing.textContent = `${names[0]} and ${names[1]} are typing…`;
  else ui.typing.textContent = "several people are typing…";
}
