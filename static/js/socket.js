// The connection: one websocket, reconnected with backoff, kept alive by pings, and
// room or nickname changes sent one at a time. Owns the socket and its timers.
import { guestRefused, refused, socketOpened, tokenForSocket } from "./auth.js";
import { ui } from "./dom.js";
import { receive } from "./frames.js";
import { expectNick, ownNick } from "./people.js";
import { chooseRoom, currentRoom, relistRooms } from "./rooms.js";
import { params, servedConfig } from "./settings.js";

// API Gateway closes connections idle for 10 minutes; protocol pings do not count.
const PING_EVERY_MS = (Number(params.get("ping")) || 240) * 1000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 30000;
const CHANGE_TIMEOUT_MS = 10000;

const conn = {
  socket: null,
  attempt: 0,
  retryTimer: 0,
  pingTimer: 0,
  heardSincePing: true,
  // A socket of this page has opened: a later failure to open is the network's.
  everOpened: false,
  ready: false,
  // The room or nickname change awaiting the server's answer, and those typed meanwhile:
  // the server runs frames concurrently, so sending them together could reorder them.
  changing: null,
  queued: [],
  changeTimer: 0,
};

function endpoint() {
  const explicit = params.get("ws");
  if (explicit) return explicit;
  if (location.protocol !== "http:" && location.protocol !== "https:") return null;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const { stage: servedStage } = servedConfig();
  const stage = params.get("stage") || (typeof servedStage === "string" && servedStage) || "api";
  return `${scheme}//${location.host}/${stage}`;
}

export function setStatus(name, text) {
  ui.status.dataset.state = name;
  ui.status.textContent = text;
}

export function connect() {
  const base = endpoint();
  if (!base) {
    setStatus("offline", "no server: open this page with ?ws=wss://…/api");
    return;
  }
  if (!currentRoom()) {
    setStatus("offline", "removed from your only room: join a room to go on");
    return;
  }
  const token = tokenForSocket();
  if (token === null) return;
  const url = new URL(base);
  url.searchParams.set("room", currentRoom());
  // Browsers cannot set headers on a websocket: the token goes in the query string.
  if (token) url.searchParams.set("token", token);
  else if (ownNick()) url.searchParams.set("nick", ownNick());
  setStatus("connecting", conn.attempt ? `reconnecting (attempt ${conn.attempt + 1})…` : "connecting…");
  let socket;
  try {
    socket = new WebSocket(url.toString());
  } catch (error) {
    setStatus("offline", `bad server address: ${error.message}`);
    return;
  }
  conn.socket = socket;
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    conn.everOpened = true;
    socketOpened();
    // Online once the server confirms the room (`joined`): until then the
    // page's own state (nickname, room, members) is not the server's.
    setStatus("connecting", "joining…");
    conn.ready = false;
    conn.changing = null;
    conn.queued = [];
    relistRooms();
    send({ action: "join", room: currentRoom() });
    conn.heardSincePing = true;
    clearInterval(conn.pingTimer);
    conn.pingTimer = setInterval(() => keepAlive(socket), PING_EVERY_MS);
  });
  socket.addEventListener("message", (event) => {
    conn.heardSincePing = true;
    receive(event.data);
  });
  // A refused `$connect` (401 for a token the server does not take) is a socket that
  // never opens: the page cannot see the status.
  socket.addEventListener("close", () => {
    if (opened) drop(socket);
    else if (token) refused(socket);
    else if (!conn.everOpened && guestRefused()) abandon(socket);
    else drop(socket);
  });
}

// A ping that got no answer by the next one means a dead link that never closed.
function keepAlive(socket) {
  if (!conn.heardSincePing) {
    drop(socket);
    return;
  }
  conn.heardSincePing = false;
  send({ action: "ping" });
}

function drop(socket) {
  if (conn.socket !== socket) return;
  clearInterval(conn.pingTimer);
  conn.socket = null;
  socket.close();
  scheduleReconnect();
}

// Exponential backoff with full jitter: spreads a crowd of reconnecting pages.
export function scheduleReconnect() {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** conn.attempt);
  const delay = Math.round(Math.random() * ceiling);
  conn.attempt += 1;
  setStatus("reconnecting", `disconnected; reconnecting in ${Math.ceil(delay / 1000)} s`);
  clearTimeout(conn.retryTimer);
  conn.retryTimer = setTimeout(connect, delay);
}

export function send(frame) {
  const socket = conn.socket;
  if (!socket || socket.readyState !== WebSocket.OPEN) return false;
  socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  return true;
}

// The server confirmed the room (`joined`): online, and the next change may go.
export function online() {
  conn.ready = true;
  conn.attempt = 0;
  setStatus("online", "online");
  if (["join", "create", "dm"].includes(conn.changing)) settle(conn.changing);
}

export function hasSocket() {
  return conn.socket !== null;
}

export function isReady() {
  return conn.ready;
}

// The change awaiting its answer ("join", "nick"), or null.
export function changing() {
  return conn.changing;
}

// Room and nickname changes go one at a time: each waits for the answer to the last.
export function change(frame) {
  if (frame.action === "join" && !conn.socket && !currentRoom()) return openInto(frame.room);
  if (!conn.ready) return false;
  if (conn.changing) {
    conn.queued.push(frame);
    return true;
  }
  if (frame.action === "nick") expectNick(frame.name);
  conn.changing = frame.action;
  clearTimeout(conn.changeTimer);
  conn.changeTimer = setTimeout(() => settle(conn.changing), CHANGE_TIMEOUT_MS);
  return send(frame);
}

// Removed from our only room, the page has no socket: a room picked opens one into it.
function openInto(room) {
  if (!chooseRoom(room)) return false;
  clearTimeout(conn.retryTimer);
  connect();
  return true;
}

export function settle(action) {
  if (!action || conn.changing !== action) return;
  conn.changing = null;
  clearTimeout(conn.changeTimer);
  const next = conn.queued.shift();
  if (next) change(next);
}

// A socket that failed to open (refused or unreachable) is no longer ours: true if
// `socket` was the current one.
export function abandon(socket) {
  if (conn.socket !== socket) return false;
  clearInterval(conn.pingTimer);
  conn.socket = null;
  return true;
}

// Close the socket (if any) and open one with the current token right away. The room
// sees a leave and a join; history and the reader's place survive as on any reconnect.
export function reconnectNow() {
  clearTimeout(conn.retryTimer);
  clearInterval(conn.pingTimer);
  const old = conn.socket;
  conn.socket = null;
  if (old) old.close(1000, "new token");
  connect();
}

// Signed out: the socket closes normally (1000) and nothing reconnects.
export function disconnect(reason) {
  clearTimeout(conn.retryTimer);
  clearTimeout(conn.changeTimer);
  clearInterval(conn.pingTimer);
  const socket = conn.socket;
  conn.socket = null;
  if (socket) socket.close(1000, reason);
  Object.assign(conn, { attempt: 0, ready: false, changing: null, queued: [] });
}
