// Frames from the server (docs/protocol.md, Server to client): each handed to the
// module that owns what it changes. Errors are worded here, for people.
import { attachmentError, receiveDownload, receiveUpload } from "./attachments.js";
import { showAccount, signedIn } from "./auth.js";
import { lastCommand } from "./composer.js";
import {
  noteJoined,
  noteLeft,
  noteRefused,
  receiveDeleted,
  receiveEdited,
  receiveReactions,
  receiveRemoval,
  receiveRole,
} from "./conversation.js";
import { ui } from "./dom.js";
import { clearLog, receiveHistory, receiveMessage, shownRoom, showJoined, systemLine } from "./log.js";
import { notifyMessage } from "./notify.js";
import { isPending, noteServerClock, resendLater, resendPending } from "./outbox.js";
import { listMembers, memberCount, named, nickRefused, ownNick, presence, setOwnNick, verifiedSet } from "./people.js";
import {
  countRoom,
  listRoomsOnce,
  markRead,
  noteMessage,
  roomAdded,
  roomLabel,
  roomLeft,
  roomRead,
  setCurrentRoom,
  setMine,
  setRoomList,
  unreadOf,
} from "./rooms.js";
import { change, changing, online, settle } from "./socket.js";
import { forgetTyping, receiveTyping, stopTyping } from "./typing.js";

export function receive(data) {
  let frame;
  try {
    frame = JSON.parse(data);
  } catch {
    return systemLine(`unreadable frame from the server: ${String(data).slice(0, 200)}`, "error");
  }
  const handler = handlers[frame && frame.type];
  if (handler) handler(frame);
  else if (frame && frame.message) systemLine(`server: ${frame.message}`, "error");
}

const handlers = {
  message(frame) {
    receiveMessage(frame);
    if (frame.room === shownRoom()) stopTyping(frame.from);
    noteMessage(frame);
    notifyMessage(frame);
    if (frame.room === shownRoom()) markRead();
  },

  joined(frame) {
    noteServerClock(frame.server_time);
    online();
    const previous = shownRoom();
    const rejoin = frame.room === previous;
    const renamed = rejoin && ownNick() !== frame.nick;
    // Opened with unread history: the view opens at its "new messages" line.
    const unread = rejoin ? 0 : unreadOf(frame.room);
    if (!rejoin) clearLog(frame.room, frame.more);
    if (!rejoin) forgetTyping();
    noteJoined(frame.room, frame.role);
    setCurrentRoom(frame.room);
    setOwnNick(frame.nick);
    listMembers(frame.members, frame.count, frame.verified);
    if (signedIn()) showAccount(frame.nick);
    // Signed in on a guest's page: the same room, under one's own name now.
    if (renamed) systemLine(["you are now ", ...named(frame.nick)]);
    showJoined(frame, rejoin, unread);
    markRead();
    resendPending();
    // Counts stay current from joined and presence frames; the full list is asked
    // for once per connection, when the list is opened and on the refresh button.
    listRoomsOnce();
  },

  history: receiveHistory,

  upload: receiveUpload,

  download: receiveDownload,

  mine(frame) {
    if (Array.isArray(frame.rooms)) setMine(frame.rooms);
  },

  added(frame) {
    roomAdded(frame);
  },

  left(frame) {
    const label = roomLabel(frame.room);
    const next = roomLeft(frame);
    if (!next) return;
    noteLeft(label);
    change({ action: "join", room: next });
  },

  invited(frame) {
    systemLine(`${frame.user} is invited to ${roomLabel(frame.room)}`);
  },

  read(frame) {
    roomRead(frame);
  },

  presence(frame) {
    countRoom(frame.room, frame.count);
    if (frame.room !== shownRoom()) return;
    const said = presence(frame);
    const who = () => named(frame.nick, frame.verified === true);
    if (said === "joined") systemLine([...who(), " joined"]);
    else if (said === "left") {
      stopTyping(frame.nick);
      systemLine([...who(), " left"]);
    }
    else if (said === "you") {
      settle("nick");
      systemLine(`you are now ${frame.nick}`);
    } else if (said === "renamed") systemLine(`${frame.previous} is now ${frame.nick}`);
  },

  members(frame) {
    const verified = verifiedSet(frame.verified);
    if (frame.room === shownRoom()) listMembers(frame.members, frame.count, frame.verified);
    const names = frame.members.flatMap((nick, index) => [
      ...(index ? [", "] : []),
      ...named(nick, verified.has(nick)),
    ]);
    systemLine([`People in #${frame.room}: `, ...names]);
  },

  rooms(frame) {
    const line = setRoomList(frame.rooms, memberCount());
    if (line) systemLine(line);
  },

  help(frame) {
    for (const command of frame.commands) systemLine(`${command.command} — ${command.help}`);
  },

  error(frame) {
    if (attachmentError(frame)) return;
    if (frame.code === "unavailable" && frame.id && isPending(frame.id)) {
      if (resendLater(frame.id)) {
        systemLine("The chat could not save your message just now; sending it again", "system");
        return;
      }
    }
    const words = describeError(frame);
    if (["invalid_nick", "nick_taken", "forbidden"].includes(frame.code)) nickRefused();
    if (SETTLING_ERRORS.includes(frame.code)) settle(changing());
    if (frame.code === "forbidden") noteRefused(words);
    systemLine(words, "error");
  },

  edited: receiveEdited,
  deleted: receiveDeleted,
  reactions: receiveReactions,
  typing: receiveTyping,
  role: receiveRole,
  kicked: receiveRemoval,
  banned: receiveRemoval,

  unbanned(frame) {
    systemLine(`${frame.user} may join #${frame.room} again`);
  },

  pong() {},
};

// Errors that answer a pending room or nickname change: the next one may go.
const SETTLING_ERRORS = [
  "invalid_nick",
  "invalid_room",
  "nick_taken",
  "unavailable",
  "bad_request",
  "rate_limited",
  "unauthorized",
  "forbidden",
  "not_found", // a `dm` to a name that never signed in (issue 17)
];

// Error codes (docs/protocol.md) in words; an unknown code shows the server's own text.
function describeError(frame) {
  const nickMax = ui.nickInput.maxLength;
  const roomMax = ui.roomInput.maxLength;
  switch (frame.code) {
    case "invalid_nick":
      return `That nickname can't be used: 1 to ${nickMax} visible characters. Usage: /nick NAME`;
    case "nick_taken":
      return "That nickname is taken in this room";
    case "invalid_room":
      return `Room names use only letters, digits, dots, dashes and underscores, at most ${roomMax}. Usage: /join ROOM`;
    case "too_large":
      return `That message is too long: at most ${ui.input.maxLength} characters`;
    case "rate_limited":
      return `You are sending too fast; try again in ${retrySeconds(frame.retry_after_ms)} s`;
    case "unavailable":
      return "The chat could not save or read that just now; nothing changed. Try again";
    case "unknown_action":
      return `${unknownCommand()}. Type /help to see the commands`;
    case "unauthorized":
      return "You are not allowed to do that; sign in again";
    case "forbidden":
      // Signed in, the server refuses `nick`: one's name is one's username.
      if (signedIn() && changing() === "nick") {
        return `Signed in, your name is your username, ${ownNick()}: it can't be changed`;
      }
      return frame.message || "You are not allowed to do that";
    case "bad_request":
      return `The server could not take that: ${frame.message || "bad request"}`;
    default:
      return frame.message || `The server refused that (${frame.code})`;
  }
}

function unknownCommand() {
  return lastCommand() ? `There is no command ${lastCommand()}` : "Unknown command";
}

function retrySeconds(milliseconds) {
  const value = Number(milliseconds);
  return Number.isFinite(value) && value > 0 ? Math.ceil(value / 1000) : 1;
}
