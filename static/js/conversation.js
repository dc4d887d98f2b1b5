// Messages as a conversation (docs/page.md, Conversation): a menu on each message (edit
// and delete one's own, react; a moderator's delete, kick and ban on others'), the
// "edited" mark, tombstones, reactions, mentions of you, and editing in the composer.
// Owns the message being edited and the rooms this page knows it moderates.
import { accessGroups, signedIn } from "./auth.js";
import { ui } from "./dom.js";
import { changeLog, shownRoom, systemLine } from "./log.js";
import { ownNick } from "./people.js";
import { send } from "./socket.js";

// The picker's emoji: the common ones of Slack and Zulip.
const PICKER = ["👍", "❤️", "😂", "🎉", "😮", "😢", "👀", "✅"];
const LONG_PRESS_MS = 500;
// A finger that moves this far is scrolling, not pressing.
const PRESS_SLOP_PX = 10;

const convo = {
  // The message being edited in the composer: {room, id}, or null.
  editing: null,
  // Rooms this page knows it moderates: by `joined.role`, created here, or named
  // moderator in a `role`.
  moderates: new Set(),
  // A room asked for with `create`: its `joined` makes us its owner.
  creating: "",
  press: null,
  // Why the shown room went, said again in the room opened next (its `joined` clears
  // the log): a kick or a ban refused just before `left`, or leaving it.
  refusal: { words: "", at: 0 },
  leftNote: "",
};
// The roles (`joined.role`, `role.role`) that moderate a room.
const MODERATING = new Set(["owner", "moderator"]);
// A `forbidden` this recent, then `left`: the room was taken away, and this is why.
const REMOVAL_WINDOW_MS = 5000;

// Called by log.js for every message row it renders.
export function decorateMessage(item, message) {
  if (message.deleted === true) {
    tombstone(item, message.by);
    return;
  }
  setText(item, message.text, message.mentions);
  if (typeof message.edited === "string") markEdited(item, message.edited);
  if (Array.isArray(message.reactions)) showReactions(item, message.reactions);
  const more = document.createElement("button");
  more.type = "button";
  more.className = "actions";
  more.setAttribute("aria-label", "Message actions");
  more.setAttribute("aria-haspopup", "menu");
  more.textContent = "⋯";
  item.append(more);
}

// The text, with `@name` of a mentioned member marked (and of oneself, highlighted).
function setText(item, text, mentions) {
  const holder = item.querySelector(".text");
  const named = new Set(Array.isArray(mentions) ? mentions : []);
  const me = signedIn() && named.has(ownNick());
  item.classList.toggle("mentions-me", me);
  if (!named.size) {
    holder.textContent = text;
    return;
  }
  holder.replaceChildren();
  for (const part of String(text).split(/(@[^\s@]+)/)) {
    const name = part.startsWith("@") ? part.slice(1).replace(/[.,:;!?)]+$/, "") : "";
    if (!name || !named.has(name)) {
      holder.append(part);
      continue;
    }
    const mark = document.createElement("mark");
    mark.className = name === ownNick() ? "mention me" : "mention";
    mark.textContent = `@${name}`;
    holder.append(mark, part.slice(name.length + 1));
  }
}

// At the end of the text: a grouped message's name line is hidden.
function markEdited(item, when) {
  item.querySelector(".edited")?.remove();
  const mark = document.createElement("span");
  mark.className = "edited meta";
  item.querySelector(".text").append(" ", mark);
  const stamp = new Date(when);
  mark.textContent = "(edited)";
  mark.title = Number.isNaN(stamp.getTime()) ? "edited" : `edited ${stamp.toLocaleString()}`;
}

function tombstone(item, by) {
  item.classList.add("deleted");
  for (const part of item.querySelectorAll(".edited, .reactions, .actions, .attachment")) part.remove();
  item.classList.remove("mentions-me");
  item.querySelector(".text").textContent = by ? `message deleted by ${by}` : "message deleted";
  if (convo.editing && convo.editing.id === item.dataset.id) cancelEdit();
}

function showReactions(item, reactions) {
  let list = item.querySelector(".reactions");
  const shown = reactions.filter((reaction) => reaction && reaction.count > 0);
  if (!shown.length) {
    if (list) list.remove();
    return;
  }
  if (!list) {
    list = document.createElement("ul");
    list.className = "reactions";
    list.setAttribute("aria-label", "Reactions");
    item.append(list);
  }
  list.replaceChildren(
    ...shown.map((reaction) => {
      const who = Array.isArray(reaction.who) ? reaction.who.map(String) : [];
      const entry = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "reaction";
      button.dataset.emoji = String(reaction.emoji);
      button.setAttribute("aria-pressed", String(who.includes(ownNick())));
      button.title = who.join(", ");
      button.setAttribute("aria-label", `${reaction.emoji} ${reaction.count}: ${who.join(", ")}`);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(reaction.count);
      button.append(String(reaction.emoji), " ", count);
      entry.append(button);
      return entry;
    }),
  );
}

function rowOf(frame) {
  if (frame.room !== shownRoom() || typeof frame.id !== "string") return null;
  return ui.log.querySelector(`li.message[data-id="${CSS.escape(frame.id)}"]:not(.deleted)`);
}

export function receiveEdited(frame) {
  const row = rowOf(frame);
  if (!row || typeof frame.text !== "string") return;
  changeLog(() => {
    setText(row, frame.text, frame.mentions);
    markEdited(row, frame.edited);
  });
}

export function receiveDeleted(frame) {
  const row = rowOf(frame);
  if (row) changeLog(() => tombstone(row, frame.by));
}

export function receiveReactions(frame) {
  const row = rowOf(frame);
  if (row && Array.isArray(frame.reactions)) changeLog(() => showReactions(row, frame.reactions));
}

// `role`: a moderator named (or no longer) in a room. Said in the room shown, and to
// the person named wherever they are; about oneself it changes what the menu offers.
export function receiveRole(frame) {
  const mine = frame.user === ownNick() && signedIn();
  if (mine) setRole(frame.room, frame.role);
  const now = MODERATING.has(frame.role) ? "is now" : "is no longer";
  if (mine || frame.room === shownRoom()) systemLine(`${frame.user} ${now} a moderator of #${frame.room}`);
}

// What the server says one is in a room (`joined` or `role`): an owner and a moderator
// moderate it, a member does not.
function setRole(room, role) {
  if (MODERATING.has(role)) convo.moderates.add(room);
  else convo.moderates.delete(room);
}

export function receiveRemoval(frame) {
  const who = frame.user || frame.nick;
  const did = frame.type === "banned" ? "banned" : "removed";
  if (frame.room === shownRoom()) systemLine(`${who} was ${did} from #${frame.room} by ${frame.by}`);
}

export function noteRefused(words) {
  convo.refusal = { words, at: Date.now() };
}

export function noteLeft(label) {
  const removed = Date.now() - convo.refusal.at < REMOVAL_WINDOW_MS;
  convo.leftNote = removed ? convo.refusal.words : `you left ${label}`;
  convo.refusal = { words: "", at: 0 };
}

// A room came back `joined`: its `role` (a server that sends one) says whether we
// moderate it, across reloads; without one, a room we asked to create is ours. Why the
// last room went is said here.
export function noteJoined(room, role) {
  if (convo.leftNote) systemLine(convo.leftNote);
  convo.leftNote = "";
  if (typeof role === "string" && signedIn()) setRole(room, role);
  else if (room === convo.creating && signedIn()) convo.moderates.add(room);
  convo.creating = "";
  if (convo.editing && convo.editing.room !== room) cancelEdit();
}

// The server decides; the page offers moderation where it knows it may.
function moderates(room) {
  return signedIn() && (accessGroups().includes("admins") || convo.moderates.has(room));
}

// The menu of one message: the emoji picker, then what this person may do with it.
function openMenu(row) {
  closeMenu();
  if (row.classList.contains("deleted") || row.classList.contains("pending")) return;
  const own = row.classList.contains("own");
  const menu = document.createElement("div");
  menu.className = "message-menu";
  menu.setAttribute("role", "menu");
  menu.setAttribute("aria-label", "Message actions");
  const picker = document.createElement("div");
  picker.className = "picker";
  for (const emoji of PICKER) picker.append(menuItem(emoji, `React ${emoji}`, () => react(row, emoji)));
  menu.append(picker);
  const from = row.dataset.from;
  const verified = row.dataset.verified === "true";
  if (own) menu.append(menuItem("Edit", "", () => startEdit(row)));
  if (own || moderates(shownRoom())) menu.append(menuItem("Delete", "", () => remove(row)));
  if (!own && moderates(shownRoom())) {
    const whom = verified ? { user: from } : { nick: from };
    menu.append(menuItem(`Kick ${from}`, "", () => moderate("kick", whom)));
    if (verified) menu.append(menuItem(`Ban ${from}`, "", () => moderate("ban", whom)));
  }
  // Low in the view it opens upwards, staying on screen.
  const view = ui.scroller.getBoundingClientRect();
  if (row.getBoundingClientRect().top > view.top + view.height / 2) menu.classList.add("up");
  row.append(menu);
  row.classList.add("menu-open");
  menu.querySelector("button").focus();
}

function menuItem(label, name, act) {
  const button = document.createElement("button");
  button.type = "button";
  button.setAttribute("role", "menuitem");
  if (name) button.setAttribute("aria-label", name);
  button.textContent = label;
  button.addEventListener("click", () => {
    closeMenu();
    act();
  });
  return button;
}

function closeMenu() {
  for (const menu of ui.log.querySelectorAll(".message-menu")) {
    menu.parentElement.classList.remove("menu-open");
    menu.remove();
  }
}

function sent(frame, what) {
  if (!send(frame)) systemLine(`Not connected: ${what}`, "error");
}

function react(row, emoji) {
  sent({ action: "react", room: shownRoom(), id: row.dataset.id, emoji }, "no reaction sent");
}

function remove(row) {
  sent({ action: "delete", room: shownRoom(), id: row.dataset.id }, "not deleted");
}

function moderate(action, whom) {
  sent({ action, room: shownRoom(), ...whom }, `nobody ${action === "ban" ? "banned" : "removed"}`);
}

// Editing happens in the composer: its text becomes the message's, Escape cancels.
function startEdit(row) {
  convo.editing = { room: shownRoom(), id: row.dataset.id };
  for (const other of ui.log.querySelectorAll("li.editing")) other.classList.remove("editing");
  row.classList.add("editing");
  const parts = [...row.querySelector(".text").childNodes];
  const text = parts.filter((part) => !part.classList || !part.classList.contains("edited"));
  ui.input.value = text.map((part) => part.textContent).join("").trimEnd();
  ui.editing.hidden = false;
  ui.input.focus();
}

export function editing() {
  return convo.editing !== null;
}

export function cancelEdit() {
  if (!convo.editing) return;
  convo.editing = null;
  for (const row of ui.log.querySelectorAll("li.editing")) row.classList.remove("editing");
  ui.editing.hidden = true;
  ui.input.value = "";
}

// The composer's text as the edited message: true when it went.
export function submitEdit(text) {
  const { room, id } = convo.editing;
  if (!send({ action: "edit", room, id, text })) return false;
  cancelEdit();
  return true;
}

// Up in an empty composer: edit one's newest message shown.
export function editLast() {
  const mine = ui.log.querySelectorAll("li.message.own:not(.deleted):not(.pending)");
  if (!mine.length) return false;
  startEdit(mine[mine.length - 1]);
  return true;
}

function cancelPress() {
  if (convo.press) clearTimeout(convo.press.timer);
  convo.press = null;
}

export function initConversation() {
  ui.log.addEventListener("click", (event) => {
    const row = event.target.closest("li.message");
    if (!row) return;
    if (event.target.closest(".actions")) {
      if (row.classList.contains("menu-open")) closeMenu();
      else openMenu(row);
      return;
    }
    const reaction = event.target.closest(".reaction");
    if (reaction) react(row, reaction.dataset.emoji);
  });
  // A phone has no hover: a long press on a message opens its menu.
  ui.log.addEventListener("pointerdown", (event) => {
    const row = event.target.closest("li.message");
    if (event.pointerType === "mouse" || !row || event.target.closest("button")) return;
    cancelPress();
    const timer = setTimeout(() => {
      convo.press = null;
      openMenu(row);
    }, LONG_PRESS_MS);
    convo.press = { timer, x: event.clientX, y: event.clientY };
  });
  ui.log.addEventListener("pointermove", (event) => {
    const press = convo.press;
    if (press && Math.hypot(event.clientX - press.x, event.clientY - press.y) > PRESS_SLOP_PX) cancelPress();
  });
  for (const end of ["pointerup", "pointercancel"]) ui.log.addEventListener(end, cancelPress);
  ui.scroller.addEventListener("scroll", cancelPress);
  // The browser's own long-press menu would cover ours.
  ui.log.addEventListener("contextmenu", (event) => {
    const row = event.target.closest("li.message");
    if (row && (convo.press || row.classList.contains("menu-open"))) event.preventDefault();
  });
  // The menu's keys: arrows move between its items, Escape closes it (the focus goes
  // back to its button when it was in the menu).
  document.addEventListener("keydown", (event) => {
    const menu = ui.log.querySelector(".message-menu");
    if (!menu) return;
    const items = [...menu.querySelectorAll('[role="menuitem"]')];
    const at = items.indexOf(document.activeElement);
    const step = { ArrowDown: 1, ArrowRight: 1, ArrowUp: -1, ArrowLeft: -1 }[event.key];
    if (event.key === "Escape") {
      const button = menu.parentElement.querySelector(".actions");
      closeMenu();
      if (at >= 0) button.focus();
    } else if (step && at >= 0) {
      items[(at + step + items.length) % items.length].focus();
      event.preventDefault();
    }
  });
  document.addEventListener("pointerdown", (event) => {
    if (!event.target.closest(".message-menu, .actions")) closeMenu();
  });
  ui.cancelEdit.addEventListener("click", () => {
    cancelEdit();
    ui.input.focus();
  });
  // Before rooms.js's own listener empties the field.
  ui.createForm.addEventListener("submit", () => (convo.creating = ui.createInput.value.trim()), {
    capture: true,
  });
}
