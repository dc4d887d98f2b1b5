// The message log and the reader's place in it (docs/page.md, The message list). Owns
// what the log shows: the room, the ids shown, the history's edge, and whether the
// reader follows the bottom.
//
// Every row has a sort key. A message's key is its id (a ULID: sorts by time); a line
// of the page's own (joined, left, errors) is keyed after the newest message shown when
// it happened, so a late message lands above it only if it is older than that one.
// Day separators sit before the first row of each day and carry no key.
//
// Every change to the log goes through changeLog: a reader at the bottom stays at the
// bottom; anyone else keeps the row they are looking at exactly where it was.
import { renderAttachment } from "./attachments.js";
import { decorateMessage } from "./conversation.js";
import { ui } from "./dom.js";
import { claimOwn, emptyOutbox, isOwn, noteMessageClock } from "./outbox.js";
import { named, verifiedMark } from "./people.js";
import { HISTORY_PAGE } from "./settings.js";
import { markRead, roomLabel } from "./rooms.js";
import { send } from "./socket.js";

// Sorts before every real message id: the anchor of lines shown before any message.
const NO_MESSAGE_ID = "0".repeat(26);
// Messages from one person closer together than this share one name line.
const GROUP_GAP_MS = 5 * 60 * 1000;
// Within this distance of the end the reader counts as "at the bottom" (sub-pixel layouts).
const BOTTOM_SLACK_PX = 8;
const CATCH_UP_PAGES = 20;

const view = {
  shownRoom: null,
  shownIds: new Set(),
  lastSeenId: "",
  lineSeq: 0,
  // Older messages exist before the oldest shown.
  more: false,
  // Who asked for older messages ("button", "command"), while the answer is awaited.
  olderBy: null,
  catchUpPages: 0,
  catchUpTarget: undefined,
  unseen: 0,
  // The reader follows the conversation: set by reaching the bottom, the new-messages
  // button or sending; cleared only by the reader scrolling up. Never re-inferred from
  // the scroll position, which a late layout can change under the reader.
  following: true,
  // Where the page itself last scrolled to: its own scrolls do not change `following`.
  ownScrollTop: -1,
  labelledToday: "",
};

export function shownRoom() {
  return view.shownRoom;
}

export function lastSeenId() {
  return view.lastSeenId;
}

// A `joined` frame: a new room's log (cleared first by clearLog), or a rejoin (after a
// reconnect) that keeps the log and the reader's place and fetches what was missed.
export function showJoined(frame, rejoin, unread = 0) {
  view.olderBy = null;
  ui.loadOlder.disabled = false;
  const seenBefore = view.lastSeenId;
  changeLog(() => {
    addMessages(frame.history);
    if (!rejoin) systemLine([`you joined ${roomLabel(frame.room)} as `, ...named(frame.nick)]);
    showHistoryEdge();
  });
  catchUp(seenBefore, frame.history, frame.more);
  if (!rejoin && unread) openAtUnread(unread);
  else if (!rejoin) scrollToEnd();
}

// A "new messages" line above the first of the `unread` newest messages of others (all
// of the history when there are more), and the view opens with it at the top.
function openAtUnread(unread) {
  const rows = [...ui.log.querySelectorAll(":scope > li.message")];
  const theirs = rows.filter((row) => !row.classList.contains("own"));
  const first = unread === "99+" || unread > theirs.length ? rows[0] : theirs[theirs.length - unread];
  if (!first) {
    scrollToEnd();
    return;
  }
  const line = document.createElement("li");
  line.className = "unread-line";
  const label = document.createElement("span");
  label.textContent = "New messages";
  line.append(label);
  const before = first.previousElementSibling;
  (before && before.classList.contains("day") ? before : first).before(line);
  const top = line.getBoundingClientRect().top - ui.scroller.getBoundingClientRect().top;
  scrollTo(ui.scroller.scrollTop + top - 8);
  view.following = atBottom();
  if (view.following) clearUnseen();
}

export function receiveMessage(frame) {
  // Another of our rooms: its badge counts it (rooms.js).
  if (view.shownRoom && frame.room !== view.shownRoom) return;
  noteMessageClock(frame.ts);
  const own = claimOwn(frame);
  const reading = !view.following;
  const newest = frame.id > view.lastSeenId;
  const added = changeLog(() => addMessages([frame]));
  if (own) scrollToEnd();
  else if (reading && newest && added) countUnseen(added);
}

export function receiveHistory(frame) {
  if (frame.room !== view.shownRoom) return;
  const seenBefore = view.catchUpTarget;
  const asked = view.olderBy;
  const added = changeLog(() => {
    const count = addMessages(frame.messages);
    if (seenBefore === undefined) view.more = frame.more;
    showHistoryEdge();
    return count;
  });
  if (seenBefore !== undefined) {
    catchUp(seenBefore, frame.messages, frame.more);
    return;
  }
  view.olderBy = null;
  ui.loadOlder.disabled = false;
  if (asked === "command") systemLine(olderAnswer(added));
  else if (asked === "button" && !added) systemLine("No older messages");
}

function olderAnswer(added) {
  if (!added) return "No older messages";
  return `${added} older message${added === 1 ? "" : "s"} loaded above`;
}

// After a reconnect, page back until the last message seen before the drop.
function catchUp(seenBefore, page, more) {
  const oldest = page.length ? page[0].id : "";
  if (seenBefore && more && oldest > seenBefore && view.catchUpPages < CATCH_UP_PAGES) {
    view.catchUpPages += 1;
    view.catchUpTarget = seenBefore;
    send({ action: "history", before: oldest, limit: HISTORY_PAGE });
  } else {
    view.catchUpPages = 0;
    view.catchUpTarget = undefined;
  }
}

// What the last person saw stays out of sight of the next one (sign-out).
export function forgetView() {
  ui.log.replaceChildren();
  Object.assign(view, { shownRoom: null, shownIds: new Set(), lastSeenId: "", more: false });
  Object.assign(view, { olderBy: null, catchUpPages: 0, catchUpTarget: undefined });
  clearUnseen();
  showHistoryEdge();
}

export function clearLog(room, more) {
  emptyOutbox();
  ui.log.replaceChildren();
  Object.assign(view, { shownRoom: room, shownIds: new Set(), lastSeenId: "", more });
  clearUnseen();
}

function addMessages(messages) {
  let added = 0;
  for (const message of messages) {
    if (view.shownIds.has(message.id)) continue;
    claimOwn(message);
    view.shownIds.add(message.id);
    placeRow(renderMessage(message));
    if (message.id > view.lastSeenId) view.lastSeenId = message.id;
    added += 1;
  }
  return added;
}

export function renderMessage(message) {
  const item = document.createElement("li");
  const when = new Date(message.ts);
  const stamp = Number.isNaN(when.getTime()) ? new Date() : when;
  item.dataset.key = message.id;
  item.dataset.id = message.id;
  const verified = message.verified === true;
  item.dataset.from = message.from;
  if (verified) item.dataset.verified = "true";
  item.dataset.ms = String(stamp.getTime());
  item.dataset.day = dayOf(stamp);
  item.className = isOwn(message, verified) ? "message own" : "message";
  const head = document.createElement("p");
  head.className = "head";
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = message.from;
  if (verified) from.append(verifiedMark());
  const time = document.createElement("time");
  time.className = "meta";
  time.dateTime = message.ts;
  time.title = stamp.toLocaleString();
  time.textContent = stamp.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
  head.append(from, " ", time);
  const text = document.createElement("p");
  text.className = "text";
  text.textContent = message.text;
  item.append(head, text);
  if (message.attachment) item.append(renderAttachment(message, item));
  decorateMessage(item, message);
  return item;
}

// A line of the page's own: text, or a list of strings and elements (verified marks).
export function systemLine(content, kind = "system") {
  const item = document.createElement("li");
  view.lineSeq += 1;
  item.dataset.key = `${view.lastSeenId || NO_MESSAGE_ID}~${String(view.lineSeq).padStart(9, "0")}`;
  item.dataset.day = dayOf(new Date());
  item.className = kind;
  // An error is announced at once; the alert sits inside the row, which stays a list item.
  const body = kind === "error" ? document.createElement("span") : item;
  if (body !== item) {
    body.setAttribute("role", "alert");
    item.append(body);
  }
  if (Array.isArray(content)) body.append(...content);
  else body.textContent = content;
  changeLog(() => placeRow(item));
}

// Most rows are the newest or the oldest: those are found without a search.
export function placeRow(item) {
  const key = item.dataset.key;
  const last = ui.log.lastElementChild;
  if (!last || last.dataset.key < key) {
    ui.log.append(item);
  } else {
    const rows = ui.log.querySelectorAll(":scope > li[data-key]");
    let low = 0;
    let high = rows.length;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (rows[middle].dataset.key < key) low = middle + 1;
      else high = middle;
    }
    if (low === 0) ui.log.prepend(item);
    else rows[low - 1].after(item);
  }
  tidy(item);
  const next = nextRow(item);
  if (next) tidy(next);
}

function nextRow(row) {
  let next = row.nextElementSibling;
  while (next && !next.dataset.key) next = next.nextElementSibling;
  return next;
}

function previousRow(row) {
  let previous = row.previousElementSibling;
  while (previous && !previous.dataset.key) previous = previous.previousElementSibling;
  return previous;
}

// A row's day separator and its grouping depend only on the row before it.
function tidy(row) {
  const previous = previousRow(row);
  const before = row.previousElementSibling;
  const separator = before && before.classList.contains("day") ? before : null;
  const newDay = !previous || previous.dataset.day !== row.dataset.day;
  if (separator && !newDay) separator.remove();
  if (newDay && !separator) row.before(daySeparator(row.dataset.day));
  if (newDay && separator && separator.dataset.day !== row.dataset.day) {
    separator.replaceWith(daySeparator(row.dataset.day));
  }
  row.classList.toggle("continued", continues(previous, row));
}

function continues(previous, row) {
  return (
    Boolean(previous) &&
    previous.classList.contains("message") &&
    row.classList.contains("message") &&
    previous.dataset.from === row.dataset.from &&
    previous.dataset.verified === row.dataset.verified &&
    previous.dataset.day === row.dataset.day &&
    Number(row.dataset.ms) - Number(previous.dataset.ms) < GROUP_GAP_MS
  );
}

function daySeparator(day) {
  const item = document.createElement("li");
  item.className = "day";
  item.dataset.day = day;
  const label = document.createElement("span");
  label.textContent = dayLabel(day);
  item.append(label);
  return item;
}

// Days in the reader's time zone, as YYYY-MM-DD (sorts and compares as text).
function dayOf(date) {
  const month = String(date.getMonth() + 1).padStart(2, "0");
  const day = String(date.getDate()).padStart(2, "0");
  return `${date.getFullYear()}-${month}-${day}`;
}

function dayLabel(day) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (day === dayOf(today)) return "Today";
  if (day === dayOf(yesterday)) return "Yesterday";
  const [year, month, date] = day.split("-").map(Number);
  const shown = new Date(year, month - 1, date);
  const format = { weekday: "long", month: "long", day: "numeric" };
  if (year !== today.getFullYear()) format.year = "numeric";
  return shown.toLocaleDateString([], format);
}

// "Today" becomes "Yesterday" at midnight, for a page left open.
function relabelDays() {
  const today = dayOf(new Date());
  if (today === view.labelledToday) return;
  view.labelledToday = today;
  for (const separator of ui.log.querySelectorAll(":scope > li.day")) {
    separator.firstElementChild.textContent = dayLabel(separator.dataset.day);
  }
}

export function changeLog(mutate) {
  const stick = view.following;
  const anchor = stick ? null : readAt(topVisibleRow());
  const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;
  const result = mutate();
  if (stick) scrollToEnd();
  else if (anchor) scrollTo(ui.scroller.scrollTop + anchor.getBoundingClientRect().top - anchorTop);
  return result;
}

// The page's own scrolling, told apart from the reader's in the scroll listener.
function scrollTo(top) {
  ui.scroller.scrollTop = top;
  view.ownScrollTop = ui.scroller.scrollTop;
}

// A message's text, not its row: the row's name line folds away when the message
// joins a group of older ones from the same person.
function readAt(row) {
  return row ? row.querySelector(".text") || row : null;
}

export function atBottom() {
  const view = ui.scroller;
  return view.scrollHeight - view.scrollTop - view.clientHeight <= BOTTOM_SLACK_PX;
}

// The first row not scrolled out above the view. Only keyed rows: a day separator can be
// replaced by the change. Rows are in vertical order, so a binary search finds it.
function topVisibleRow() {
  const top = ui.scroller.getBoundingClientRect().top;
  const rows = ui.log.querySelectorAll(":scope > li[data-key]");
  let low = 0;
  let high = rows.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if (rows[middle].getBoundingClientRect().bottom > top) high = middle;
    else low = middle + 1;
  }
  return rows[low] || null;
}

export function scrollToEnd() {
  scrollTo(ui.scroller.scrollHeight);
  view.following = true;
  clearUnseen();
}

function countUnseen(count) {
  view.unseen += count;
  const label = document.createElement("span");
  label.textContent = `${view.unseen} new message${view.unseen === 1 ? "" : "s"}`;
  const arrow = document.createElement("span");
  arrow.setAttribute("aria-hidden", "true");
  arrow.textContent = " ↓";
  ui.newMessages.replaceChildren(label, arrow);
  ui.newMessages.hidden = false;
}

function clearUnseen() {
  view.unseen = 0;
  ui.newMessages.hidden = true;
}

function showHistoryEdge() {
  ui.loadOlder.hidden = !view.more;
  ui.historyStart.hidden = view.more || !view.shownRoom;
}

// Older messages: by the button at the top of the log or by /history [N] typed.
export function loadOlder(by, limit = HISTORY_PAGE) {
  if (!view.more) {
    systemLine("No older messages");
    return;
  }
  const first = ui.log.querySelector("li[data-id]");
  const request = { action: "history", limit };
  if (first) request.before = first.dataset.id;
  if (!send(request)) {
    systemLine("Not connected: older messages not loaded", "error");
    return;
  }
  view.olderBy = by;
  ui.loadOlder.disabled = true;
}

export function initLog() {
  ui.loadOlder.addEventListener("click", () => loadOlder("button"));
  ui.newMessages.addEventListener("click", () => {
    scrollToEnd();
    ui.input.focus();
  });
  // Reaching the bottom follows; only the reader's own scroll elsewhere stops following.
  ui.scroller.addEventListener("scroll", () => {
    if (atBottom()) {
      view.following = true;
      clearUnseen();
      markRead();
    } else if (Math.abs(ui.scroller.scrollTop - view.ownScrollTop) > 1) {
      view.following = false;
    }
  });
  // A reader following stays at the bottom when the view shrinks (a phone's keyboard
  // opens) or the log grows after the fact (fonts, a late layout).
  const stayAtEnd = new ResizeObserver(() => {
    if (view.following) scrollToEnd();
  });
  stayAtEnd.observe(ui.scroller);
  stayAtEnd.observe(ui.log);
  setInterval(relabelDays, 60 * 1000);
  view.labelledToday = dayOf(new Date());
}
