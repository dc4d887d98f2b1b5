// One's own messages: ids made on the server's clock, the outbox of messages sent and
// not yet acknowledged (docs/page.md), and which messages are one's own. Owns them.
import { signedIn } from "./auth.js";
import { ui } from "./dom.js";
import { changeLog, lastSeenId, placeRow, renderMessage, scrollToEnd } from "./log.js";
import { ownNick } from "./people.js";
import { params, store } from "./settings.js";
import { send } from "./socket.js";

const ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
// The server takes ids within 60 s of its clock: an older outbox id is made anew.
const ID_REUSE_MS = 45000;
// A message not acknowledged this long after it went out says "Not sent" (Retry).
const ACK_TIMEOUT_MS = (Number(params.get("ack")) || 20) * 1000;
const RESEND_FIRST_MS = 1000;
const RESEND_TRIES = 5;
const OWN_IDS_KEPT = 500;

const outbox = {
  // Messages sent and not yet acknowledged, by the id this page gave them, each shown as
  // a pending row. Sent again with that id after `unavailable` and after a reconnect
  // (the server stores one message per id); never dropped silently.
  pending: new Map(),
  clockOffset: 0,
  // The time of the newest id this page made: ids only ever grow.
  lastIdMs: 0,
  // A guest's, kept in this tab's storage; signed in, one's own messages are also those
  // verified under one's username, and the ids are kept in memory only.
  ownIds: new Set(JSON.parse(store.getItem("chat.own") || "[]")),
};

// A message of ours came back (its echo, or a history that has it): out of the outbox.
export function claimOwn(message) {
  const entry = outbox.pending.get(message.id);
  if (!entry) return false;
  clearTimeout(entry.timer);
  clearTimeout(entry.ackTimer);
  entry.row.remove();
  outbox.pending.delete(message.id);
  rememberOwn(message.id);
  return true;
}

export function emptyOutbox() {
  for (const entry of outbox.pending.values()) {
    clearTimeout(entry.timer);
    clearTimeout(entry.ackTimer);
  }
  outbox.pending.clear();
}

// Message ids carry a time the server checks against its own clock (docs/protocol.md):
// a computer whose clock is off would have every message refused, so ids use the
// server's time, learnt from `joined`. That answer is late by its trip (seconds on a
// busy server), so every message seen also says the server's clock is at least its ts.
export function noteServerClock(serverTime) {
  const server = Date.parse(serverTime);
  if (Number.isFinite(server)) outbox.clockOffset = server - Date.now();
}

export function noteMessageClock(ts) {
  const stamped = Date.parse(ts);
  if (Number.isFinite(stamped)) outbox.clockOffset = Math.max(outbox.clockOffset, stamped - Date.now());
}

// The millisecond a ULID was made in: its first 10 characters.
function idTime(id) {
  let ms = 0;
  for (const char of id.slice(0, 10)) ms = ms * 32 + ID_ALPHABET.indexOf(char);
  return ms;
}

// A ULID (docs/protocol.md): 48 bits of milliseconds, 80 random bits, Crockford base 32.
// Ids order the log, so a new one sorts after every id seen and made: one's own message
// is the newest even when the clock estimate is behind (unless that would put it
// further from the estimate than the server takes).
function newMessageId() {
  const estimate = Date.now() + outbox.clockOffset;
  const newest = Math.max(outbox.lastIdMs, lastSeenId() ? idTime(lastSeenId()) : 0) + 1;
  const ms = newest > estimate && newest - estimate < ID_REUSE_MS ? newest : estimate;
  outbox.lastIdMs = Math.max(outbox.lastIdMs, ms);
  const random = crypto.getRandomValues(new Uint8Array(10));
  let value = BigInt(ms);
  for (const byte of random) value = (value << 8n) | BigInt(byte);
  let id = "";
  for (let i = 0; i < 26; i += 1) {
    id = ID_ALPHABET[Number(value & 31n)] + id;
    value >>= 5n;
  }
  return id;
}

// Into the outbox, shown at once as pending, then out (now, or after a reconnect).
// `extra` adds fields to the frame (an attachment's key), `attachment` shows it pending.
export function sendMessage(data, extra = {}, attachment = undefined) {
  const frame = { action: "sendmessage", data, ...extra, id: newMessageId() };
  const entry = { frame, tries: 0, timer: 0, ackTimer: 0 };
  entry.row = pendingRow(entry.frame, attachment);
  outbox.pending.set(entry.frame.id, entry);
  changeLog(() => placeRow(entry.row));
  scrollToEnd();
  transmit(entry);
  return entry.frame.id;
}

// A message the server refused for good (its attachment): out of the outbox and the log.
export function withdraw(id) {
  const entry = outbox.pending.get(id);
  if (!entry) return;
  clearTimeout(entry.timer);
  clearTimeout(entry.ackTimer);
  entry.row.remove();
  outbox.pending.delete(id);
}

function transmit(entry) {
  clearTimeout(entry.timer);
  clearTimeout(entry.ackTimer);
  if (Date.now() + outbox.clockOffset - idTime(entry.frame.id) > ID_REUSE_MS) renewId(entry);
  showPending(entry, false);
  if (!send(entry.frame)) return; // a reconnect's `joined` sends it
  entry.tries += 1;
  entry.ackTimer = setTimeout(() => showPending(entry, true), ACK_TIMEOUT_MS);
}

// An id too old for the server's clock check: a new one (this one was never stored,
// or the history would have shown it), and the row moves to its new place.
function renewId(entry) {
  outbox.pending.delete(entry.frame.id);
  entry.frame.id = newMessageId();
  outbox.pending.set(entry.frame.id, entry);
  entry.row.dataset.key = entry.frame.id;
  entry.row.remove();
  changeLog(() => placeRow(entry.row));
}

// A pending row: the message as it will look, marked "Sending…" or "Not sent" + Retry.
function pendingRow(frame, attachment) {
  const ts = new Date(Date.now() + outbox.clockOffset).toISOString();
  const row = renderMessage({ id: frame.id, from: ownNick(), text: frame.data, ts, attachment });
  delete row.dataset.id;
  row.classList.add("own", "pending");
  const note = document.createElement("p");
  note.className = "delivery";
  row.append(note);
  return row;
}

function showPending(entry, failed) {
  const note = entry.row.querySelector(".delivery");
  entry.row.classList.toggle("failed", failed);
  if (!failed) {
    note.replaceChildren("Sending…");
    return;
  }
  clearTimeout(entry.ackTimer);
  const retry = document.createElement("button");
  retry.type = "button";
  retry.textContent = "Retry";
  retry.addEventListener("click", () => {
    transmit(entry);
    ui.input.focus();
  });
  note.replaceChildren("Not sent ", retry);
}

// `unavailable` for one of ours: it may or may not be stored; sending it again with its
// id settles that without a duplicate. A few tries, further apart, then "Not sent".
export function resendLater(id) {
  const entry = outbox.pending.get(id);
  clearTimeout(entry.ackTimer);
  if (entry.tries >= RESEND_TRIES) {
    showPending(entry, true);
    return false;
  }
  entry.timer = setTimeout(() => transmit(entry), RESEND_FIRST_MS * 2 ** (entry.tries - 1));
  return true;
}

// One's own: sent from this tab, or (signed in) verified under one's own username.
export function isOwn(message, verified) {
  if (outbox.ownIds.has(message.id)) return true;
  return signedIn() && verified && Boolean(ownNick()) && message.from === ownNick();
}

function rememberOwn(id) {
  outbox.ownIds.add(id);
  const kept = [...outbox.ownIds].slice(-OWN_IDS_KEPT);
  if (signedIn()) outbox.ownIds = new Set(kept);
  else store.setItem("chat.own", JSON.stringify(kept));
}

// What the history did not show as stored goes out again, under its own id.
export function resendPending() {
  for (const entry of [...outbox.pending.values()]) transmit(entry);
}

export function isPending(id) {
  return outbox.pending.has(id);
}

export function forgetOwn() {
  outbox.ownIds = new Set();
}
