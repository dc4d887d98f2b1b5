// Rooms: the current room and the list of rooms with their member counts. Owns both.
import { ui } from "./dom.js";
import { closeDrawer } from "./drawer.js";
import { shownRoom, systemLine } from "./log.js";
import { params, store } from "./settings.js";
import { change, send } from "./socket.js";

const ROOM_PATTERN = /^[A-Za-z0-9_.-]+$/;

const roomState = {
  room: firstRoom(),
  rooms: new Map(),
  // The full list was asked for on this connection.
  roomsListed: false,
  // `/rooms` was typed: the answer is printed in the log too.
  roomsAsked: false,
};

function firstRoom() {
  const asked = params.get("room");
  if (asked && ROOM_PATTERN.test(asked)) return asked;
  return store.getItem("chat.room") || "lobby";
}

export function currentRoom() {
  return roomState.room;
}

// The server put us in `room` (`joined`).
export function setCurrentRoom(room) {
  roomState.room = room;
  store.setItem("chat.room", room);
  ui.roomInput.value = room;
  ui.roomTitle.textContent = `#${room}`;
}

export function requestRooms() {
  send({ action: "rooms" });
}

// A new connection asks for the full list once, after its first `joined`.
export function relistRooms() {
  roomState.roomsListed = false;
}

export function listRoomsOnce() {
  if (roomState.roomsListed) return;
  roomState.roomsListed = true;
  requestRooms();
}

export function expectRoomsLine() {
  roomState.roomsAsked = true;
}

export function roomCount(room) {
  return roomState.rooms.get(room);
}

export function countRoom(room, count) {
  if (count > 0) roomState.rooms.set(room, count);
  else roomState.rooms.delete(room);
  renderRooms();
}

// The server's `rooms` list; our own room's count comes from presence frames, which are
// newer than this list. Returns the line for the log when `/rooms` asked for it.
export function setRoomList(list, ownCount) {
  roomState.rooms = new Map(list.map((room) => [room.name, room.members]));
  if (shownRoom()) roomState.rooms.set(shownRoom(), ownCount);
  renderRooms();
  if (!roomState.roomsAsked) return "";
  roomState.roomsAsked = false;
  const listed = [...roomState.rooms].map(([name, count]) => `#${name} (${count})`);
  return listed.length ? `Rooms: ${listed.join(", ")}` : "No rooms have members";
}

export function forgetRooms() {
  roomState.rooms = new Map();
  roomState.roomsListed = false;
  renderRooms();
}

function renderRooms() {
  const ordered = [...roomState.rooms].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  ui.rooms.replaceChildren(...ordered.map(([name, count]) => roomItem(name, count)));
}

function roomItem(name, count) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  const label = document.createElement("span");
  label.className = "room-name";
  label.textContent = `#${name}`;
  const members = document.createElement("span");
  members.className = "count";
  members.textContent = ` (${count})`;
  button.append(label, members);
  if (name === shownRoom()) button.setAttribute("aria-current", "true");
  button.addEventListener("click", () => pickRoom(name));
  item.append(button);
  return item;
}

// Picking a room is navigation: on a phone the drawer gives the view back to the chat.
function pickRoom(name) {
  closeDrawer();
  if (name === shownRoom()) return;
  if (!change({ action: "join", room: name })) systemLine("Not connected: room not changed", "error");
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
}
