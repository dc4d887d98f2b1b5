// People: one's own name, and the members of the shown room with their verified marks.
// Owns the names; the members list and its count follow `joined` and `presence` frames.
import { ui } from "./dom.js";
import { shownRoom, systemLine } from "./log.js";
import { countRoom, startDm } from "./rooms.js";
import { signedIn } from "./auth.js";
import { store } from "./settings.js";
import { change } from "./socket.js";

const people = {
  // A guest's, kept in this tab; signed in, the nickname is the username: the server
  // says which in `joined`.
  nick: store.getItem("chat.nick") || "",
  // The nickname asked for and not yet confirmed.
  pendingNick: null,
  members: [],
  // Members of the shown room who are signed in (the server's `verified` fields).
  verified: new Set(),
  count: 0,
};

export function ownNick() {
  return people.nick;
}

// The server named us (`joined`, or our own `nick` presence).
export function setOwnNick(nick) {
  people.nick = nick;
  if (!signedIn()) store.setItem("chat.nick", nick);
  ui.nickInput.value = nick;
}

// The shown room's members who can be mentioned: the signed-in ones, oneself aside.
export function mentionable() {
  return people.members.filter((nick) => people.verified.has(nick) && nick !== people.nick);
}

export function memberCount() {
  return people.count;
}

export function expectNick(name) {
  people.pendingNick = name;
}

export function nickRefused() {
  people.pendingNick = null;
}

export function forgetPeople() {
  Object.assign(people, { nick: "", pendingNick: null });
  people.verified = new Set();
  setMembers([], 0);
}

// A name as text, followed by the verified mark when its holder is signed in.
export function named(nick, verified = people.verified.has(nick)) {
  return verified ? [String(nick), verifiedMark()] : [String(nick)];
}

export function verifiedMark() {
  const mark = document.createElement("span");
  mark.className = "verified";
  mark.setAttribute("role", "img");
  mark.setAttribute("aria-label", "verified");
  mark.title = "verified: signed in";
  mark.textContent = "✓";
  return mark;
}

// The server's list of verified nicknames; anything else counts as none.
export function verifiedSet(list) {
  return new Set(Array.isArray(list) ? list.filter((nick) => typeof nick === "string") : []);
}

// Sorted as the server sorts them (case-folded), also after joins and renames.
function byFoldedNick(a, b) {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()];
  return x < y ? -1 : x > y ? 1 : 0;
}

// The shown room's members as `joined` or `members` lists them.
export function listMembers(nicks, count, verified) {
  people.verified = verifiedSet(verified);
  setMembers(nicks, count);
}

function setMembers(nicks, count) {
  people.members = [...nicks].sort(byFoldedNick);
  people.count = count ?? nicks.length;
  ui.memberCount.textContent = `(${people.count})`;
  if (shownRoom()) countRoom(shownRoom(), people.count);
  let youMarked = false;
  ui.members.replaceChildren(
    ...people.members.map((nick) => {
      const item = document.createElement("li");
      // Signed in, another signed-in member's name opens a direct message with them.
      if (signedIn() && nick !== people.nick && people.verified.has(nick)) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "person";
        button.title = `Direct message with ${nick}`;
        button.append(...named(nick));
        button.addEventListener("click", () => startDm(nick));
        item.append(button);
        return item;
      }
      item.append(...named(nick));
      if (!youMarked && nick === people.nick) {
        youMarked = true;
        item.append(" (you)");
      }
      return item;
    }),
  );
}

// A `presence` frame of the shown room: the list follows it. Returns what happened for
// the log: "joined", "left", "renamed", "you" (our own rename confirmed) or "" (nothing
// to say: the leave of our own previous connection).
export function presence(frame) {
  let said = "";
  if (frame.event === "join") {
    people.members.push(frame.nick);
    if (frame.verified === true) people.verified.add(frame.nick);
    else people.verified.delete(frame.nick);
    said = "joined";
  } else if (frame.event === "leave") {
    // Our own name leaving is our previous connection (a reload, a new token): the
    // name is unique in the room and we are still here, so it stays listed once.
    const own = frame.nick === people.nick;
    if (!own || people.members.filter((nick) => nick === frame.nick).length > 1) {
      removeOne(people.members, frame.nick);
    }
    if (!own) {
      people.verified.delete(frame.nick);
      said = "left";
    }
  } else if (frame.event === "nick") {
    const mine = frame.previous === people.nick && frame.nick === people.pendingNick;
    replaceOne(people.members, frame.previous, frame.nick);
    people.verified.delete(frame.previous);
    if (frame.verified === true) people.verified.add(frame.nick);
    if (mine) {
      people.pendingNick = null;
      setOwnNick(frame.nick);
    }
    said = mine ? "you" : "renamed";
  }
  // A leave's count can be older than our own arrival (the server counted it before our
  // first frame, and sent it after our `joined`): the list of names we hold is at least
  // as many people.
  setMembers(people.members, Math.max(Number(frame.count) || 0, people.members.length));
  return said;
}

function removeOne(list, value) {
  const index = list.indexOf(value);
  if (index !== -1) list.splice(index, 1);
}

function replaceOne(list, previous, value) {
  const index = list.indexOf(previous);
  if (index !== -1) list[index] = value;
  else list.push(value);
}

export function initPeople() {
  ui.nickInput.value = people.nick;
  ui.nickForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.nickInput.value.trim();
    if (!name || name === people.nick) return;
    if (!change({ action: "nick", name })) systemLine("Not connected: nickname not changed", "error");
  });
}
