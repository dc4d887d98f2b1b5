// Rooms: the current room; one's rooms (`mine`) with unread badges, direct messages, and
// the public rooms to browse; the read marker of the room being read. Owns all of them.
import { signedIn } from "./auth.js";
import { noteLeft } from "./conversation.js";
import { ui } from "./dom.js";
import { closeDrawer } from "./drawer.js";
import { atBottom, lastSeenId, shownRoom, systemLine } from "./log.js";
import { isOwn } from "./outbox.js";
import { ownNick } from "./people.js";
import { params, store } from "./settings.js";
import { change, send } from "./socket.js";

const ROOM_PATTERN = /^[A-Za-z0-9_.-]+$/;
// The server's default room (DEFAULT_ROOM), where a page goes that has no room of its own.
const DEFAULT_ROOM = "lobby";
// The server counts unread messages exactly up to 99, then says "99+".
const UNREAD_MAX = 99;
const TITLE = document.title;

const roomState = {
  room: firstRoom(),
  // One's rooms, by name: { private, dm, with, unread (a number or "99+"), last, read
  // (the newest id a `read` frame marked) }.
  mine: new Map(),
  // Member counts, by room: from `rooms`, `joined` and `presence` frames.
  counts: new Map(),
  // The public rooms with members, as the server last listed them.
  listed: [],
  // The full list was asked for on this connection.
  roomsListed: false,
  // `/rooms` was typed: the answer is printed in the log too.
  roomsAsked: false,
  // The newest id sent in `read`, by room: each is sent once.
  readSent: new Map(),
  // A `dm` or a private `create` asked for: its `joined` names the room only.
  dmWith: "",
  creatingPrivate: "",
};

function firstRoom() {
  const asked = params.get("room");
  if (asked && ROOM_PATTERN.test(asked)) return asked;
  return store.getItem("chat.room") || DEFAULT_ROOM;
}

export function currentRoom() {
  return roomState.room;
}

// How a room is named to people: `#room`, or `@user` for a direct message.
export function roomLabel(room) {
  const entry = roomState.mine.get(room);
  return entry && entry.dm && entry.with ? `@${entry.with}` : `#${room}`;
}

// The server put us in `room` (`joined`): it is one of ours and the current one.
export function setCurrentRoom(room) {
  roomState.room = room;
  store.setItem("chat.room", room);
  if (!roomState.mine.has(room)) {
    const dm = room.startsWith("dm-") && Boolean(roomState.dmWith);
    const made = room === roomState.creatingPrivate;
    roomState.mine.set(room, entry({ dm, private: dm || made, with: dm ? roomState.dmWith : undefined }));
  }
  roomState.dmWith = "";
  roomState.creatingPrivate = "";
  ui.roomInput.value = room;
  ui.roomTitle.textContent = roomLabel(room);
  showRoomControls();
  renderRooms();
}

function entry(fields) {
  const blank = { private: false, dm: false, with: undefined, unread: 0, mentions: 0 };
  return { ...blank, last: null, read: "", ...fields };
}

// The unread count a room had when it was opened: where its "new messages" line goes.
export function unreadOf(room) {
  const known = roomState.mine.get(room);
  return known ? known.unread : 0;
}

export function requestRooms() {
  send({ action: "rooms" });
}

// A new connection asks for the full list once, after its first `joined`.
export function relistRooms() {
  roomState.roomsListed = false;
}

// After a connection's first `joined`: the public rooms, and (a guest: a signed-in
// connection is sent them unasked) one's rooms.
export function listRoomsOnce() {
  if (roomState.roomsListed) return;
  roomState.roomsListed = true;
  requestRooms();
  if (!signedIn()) send({ action: "mine" });
}

export function expectRoomsLine() {
  roomState.roomsAsked = true;
}

export function countRoom(room, count) {
  if (count > 0) roomState.counts.set(room, count);
  else roomState.counts.delete(room);
  renderRooms();
}

// The server's `rooms` list; our own room's count comes from presence frames, which are
// newer than this list. Returns the line for the log when `/rooms` asked for it.
export function setRoomList(list, ownCount) {
  roomState.listed = list.map((room) => room.name);
  for (const room of list) roomState.counts.set(room.name, room.members);
  if (shownRoom()) roomState.counts.set(shownRoom(), ownCount);
  renderRooms();
  if (!roomState.roomsAsked) return "";
  roomState.roomsAsked = false;
  const listed = list.map((room) => `#${room.name} (${roomState.counts.get(room.name)})`);
  return listed.length ? `Rooms: ${listed.join(", ")}` : "No rooms have members";
}

// `mine`: one's rooms with their unread counts, as the server keeps them.
export function setMine(rooms) {
  const before = roomState.mine;
  roomState.mine = new Map();
  for (const room of rooms) {
    const known = before.get(room.room) || {};
    roomState.mine.set(
      room.room,
      entry({
        private: room.private === true,
        dm: room.dm === true,
        with: typeof room.with === "string" ? room.with : known.with,
        unread: signedIn() ? unreadValue(room.unread) : known.unread || 0,
        mentions: signedIn() ? unreadValue(room.mentions) : 0,
        last: typeof room.last === "string" ? room.last : null,
        read: known.read || "",
      }),
    );
  }
  if (!roomState.mine.has(roomState.room)) roomState.mine.set(roomState.room, entry({}));
  ui.roomTitle.textContent = roomLabel(roomState.room);
  renderRooms();
  markRead();
}

function unreadValue(value) {
  if (value === "99+") return value;
  const count = Number(value);
  return Number.isInteger(count) && count > 0 ? count : 0;
}

// `added`: a room given to us (an invitation, a DM, a room joined on another device).
export function roomAdded(frame) {
  const known = roomState.mine.get(frame.room);
  roomState.mine.set(
    frame.room,
    entry({
      ...known,
      private: frame.private === true,
      dm: frame.dm === true,
      with: typeof frame.with === "string" ? frame.with : known && known.with,
    }),
  );
  renderRooms();
}

// `left`: the room is no longer ours. Returns the room now current when it was the shown
// one (the page opens it), else "".
export function roomLeft(frame) {
  if (frame.current === null && frame.room === roomState.room) lostOnlyRoom(frame.room);
  roomState.mine.delete(frame.room);
  roomState.counts.delete(frame.room);
  renderRooms();
  return frame.room === shownRoom() && typeof frame.current === "string" ? frame.current : "";
}

// A kick or ban took our only room (`left` without `current`), and the server closes the
// socket. The next one goes to the default room, never back to the room we lost, which
// may refuse us (a ban: 403); the default room lost, none opens until a room is picked.
// The next `joined` says why.
function lostOnlyRoom(room) {
  noteLeft(roomLabel(room));
  roomState.room = room === DEFAULT_ROOM ? "" : DEFAULT_ROOM;
  store.setItem("chat.room", roomState.room);
  if (roomState.room) return;
  ui.roomTitle.textContent = "";
  ui.roomInput.value = "";
}

// Roomless: `room`, if it is a room name, is the one the next socket goes to.
export function chooseRoom(room) {
  if (!ROOM_PATTERN.test(room) || room.length > ui.roomInput.maxLength) return false;
  roomState.room = room;
  return true;
}

// A message of one of our rooms arrived: one more unread unless it is our own or we are
// reading it (the shown room, its bottom on screen, the tab visible).
export function noteMessage(message) {
  const known = roomState.mine.get(message.room);
  if (!known) return;
  known.last = message.id;
  if (isOwn(message, message.verified === true)) return;
  // Read already on another device, whose `read` overtook this message on its way here.
  if (message.id <= known.read) return;
  if (message.room === shownRoom() && readingNow()) return;
  known.unread = plusOne(known.unread);
  // The server counts every message of a DM as a mention.
  if (known.dm || mentionsMe(message)) known.mentions = plusOne(known.mentions);
  renderRooms();
}

function plusOne(count) {
  if (count === "99+") return count;
  return count >= UNREAD_MAX ? "99+" : count + 1;
}

export function mentionsMe(message) {
  return signedIn() && Array.isArray(message.mentions) && message.mentions.includes(ownNick());
}

export function isDm(room) {
  const known = roomState.mine.get(room);
  return Boolean(known && known.dm);
}

// `read` from the server, for every device of ours: the room's count after its marker.
export function roomRead(frame) {
  const known = roomState.mine.get(frame.room);
  const id = typeof frame.id === "string" ? frame.id : "";
  // An older marker's answer that came late says nothing new.
  if (!known || id < known.read) return;
  known.unread = unreadValue(frame.unread);
  // `read` says how many are unread, not which: mentions beyond that were read.
  if (!known.unread) known.mentions = 0;
  else if (known.unread !== "99+" && known.mentions !== "99+") {
    known.mentions = Math.min(known.mentions, known.unread);
  }
  known.read = id;
  renderRooms();
}

function readingNow() {
  return document.visibilityState === "visible" && atBottom();
}

// The shown room is read as far as its bottom while the bottom is on screen and the tab
// visible: its badge goes, and (signed in) the server's marker moves for every device.
export function markRead() {
  const room = shownRoom();
  const known = room && roomState.mine.get(room);
  if (!known || !readingNow()) return;
  if (known.unread !== 0 || known.mentions !== 0) {
    known.unread = 0;
    known.mentions = 0;
    renderRooms();
  }
  const id = lastSeenId();
  if (!signedIn() || !id || (roomState.readSent.get(room) || "") >= id) return;
  roomState.readSent.set(room, id);
  send({ action: "read", room, id });
}

export function forgetRooms() {
  roomState.mine = new Map();
  roomState.counts = new Map();
  roomState.listed = [];
  roomState.readSent = new Map();
  roomState.roomsListed = false;
  renderRooms();
}

// Rooms in the order the sidebar shows them: one's rooms, then direct messages.
function sidebarRooms() {
  const mine = [...roomState.mine].sort((a, b) => a[0].localeCompare(b[0]));
  return [...mine.filter(([, about]) => !about.dm), ...mine.filter(([, about]) => about.dm)].map(
    ([name]) => name,
  );
}

// Every room one may open: one's rooms, DMs, then the public ones to join.
export function switchableRooms() {
  const browse = roomState.listed.filter((name) => !roomState.mine.has(name));
  return [...sidebarRooms(), ...browse].map((name) => ({ name, label: roomLabel(name) }));
}

function renderRooms() {
  const mine = sidebarRooms();
  ui.myRooms.replaceChildren(
    ...mine.filter((name) => !roomState.mine.get(name).dm).map((name) => roomItem(name)),
  );
  const dms = mine.filter((name) => roomState.mine.get(name).dm);
  ui.dms.replaceChildren(...dms.map((name) => roomItem(name)));
  ui.dmsSection.hidden = !dms.length;
  const browse = roomState.listed.filter((name) => !roomState.mine.has(name));
  ui.browse.replaceChildren(...browse.map((name) => roomItem(name)));
  ui.browseEmpty.hidden = browse.length > 0;
  showRoomControls();
  showUnreadElsewhere();
  showUnreadInTitle();
}

// The tab's title counts the unread messages of all one's rooms: "(3) chalice-chat".
function showUnreadInTitle() {
  let unread = 0;
  for (const about of roomState.mine.values()) {
    unread += about.unread === "99+" ? UNREAD_MAX + 1 : about.unread;
  }
  const label = unread > UNREAD_MAX ? "99+" : String(unread);
  document.title = unread ? `(${label}) ${TITLE}` : TITLE;
}

// On a phone the sidebar is out of sight: the menu button says how many messages wait in
// the other rooms (a dot, and in its name).
function showUnreadElsewhere() {
  let waiting = 0;
  for (const [name, about] of roomState.mine) {
    if (name !== shownRoom()) waiting += about.unread === "99+" ? UNREAD_MAX + 1 : about.unread;
  }
  const label = waiting > UNREAD_MAX ? "99+" : String(waiting);
  ui.drawerToggle.toggleAttribute("data-unread", waiting > 0);
  ui.drawerToggle.setAttribute("aria-label", waiting ? `Rooms and people, ${label} unread` : "Rooms and people");
}

function roomItem(name) {
  const about = roomState.mine.get(name);
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  const label = document.createElement("span");
  label.className = "room-name";
  label.textContent = roomLabel(name);
  button.append(label);
  if (about && about.private && !about.dm) {
    const lock = document.createElement("span");
    lock.className = "private";
    lock.textContent = " (private)";
    button.append(lock);
  }
  const count = roomState.counts.get(name);
  if (count !== undefined && !(about && about.dm)) {
    const members = document.createElement("span");
    members.className = "count";
    members.textContent = ` (${count})`;
    button.append(members);
  }
  if (about && about.unread) {
    button.classList.add("unread");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = String(about.unread);
    badge.setAttribute("aria-label", `${about.unread} unread`);
    button.append(" ", badge);
  }
  if (about && about.mentions) {
    const mentions = document.createElement("span");
    mentions.className = "mention-count";
    mentions.textContent = `@${about.mentions}`;
    mentions.setAttribute("aria-label", `${about.mentions} mention${about.mentions === 1 ? "" : "s"}`);
    button.append(" ", mentions);
  }
  if (name === shownRoom()) button.setAttribute("aria-current", "true");
  button.dataset.room = name;
  button.addEventListener("click", () => pickRoom(name));
  item.append(button);
  return item;
}

// Picking a room is navigation: on a phone the drawer gives the view back to the chat.
export function pickRoom(name) {
  closeDrawer();
  if (name === shownRoom()) return;
  if (!change({ action: "join", room: name })) systemLine("Not connected: room not changed", "error");
}

// Alt+Up and Alt+Down: the room before or after the shown one in the sidebar.
export function stepRoom(step) {
  const rooms = sidebarRooms();
  if (rooms.length < 2) return;
  const at = rooms.indexOf(shownRoom());
  pickRoom(rooms[(at + step + rooms.length) % rooms.length]);
}

// Leave, invite: for the shown room; invite only in a private room that is not a DM, and
// only signed in (the server lets the owner alone).
function showRoomControls() {
  const about = roomState.mine.get(roomState.room) || {};
  ui.inviteForm.hidden = !(signedIn() && about.private && !about.dm);
  ui.leaveRoom.textContent = `Leave ${roomLabel(roomState.room)}`;
  ui.leaveRoom.hidden = !roomState.room;
}

export function startDm(user) {
  closeDrawer();
  roomState.dmWith = user;
  if (!change({ action: "dm", to: user })) systemLine("Not connected: no message opened", "error");
}

export function initRooms() {
  ui.roomInput.value = roomState.room;
  ui.refreshRooms.addEventListener("click", requestRooms);
  ui.roomForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = ui.roomInput.value.trim();
    if (room && !change({ action: "join", room })) {
      systemLine("Not connected: room not changed", "error");
    }
  });
  ui.createForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = ui.createInput.value.trim();
    if (!room) return;
    const frame = { action: "create", room, private: ui.createPrivate.checked };
    roomState.creatingPrivate = frame.private ? room : "";
    if (!change(frame)) systemLine("Not connected: room not created", "error");
    else ui.createInput.value = "";
  });
  ui.inviteForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const user = ui.inviteInput.value.trim();
    if (!user) return;
    if (!send({ action: "invite", room: shownRoom(), user })) {
      systemLine("Not connected: nobody invited", "error");
    } else ui.inviteInput.value = "";
  });
  ui.leaveRoom.addEventListener("click", () => {
    if (!send({ action: "leave", room: shownRoom() })) systemLine("Not connected: room not left", "error");
  });
  document.addEventListener("visibilitychange", markRead);
  window.addEventListener("focus", markRead);
}
