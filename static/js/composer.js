// The composer: what a typed line does (a message, a change, a command), and Up and Down
// recalling the lines sent. Owns the lines sent and the last command typed.
import { cancelEdit, editLast, editing, submitEdit } from "./conversation.js";
import { ui } from "./dom.js";
import { loadOlder, systemLine } from "./log.js";
import { sendMessage } from "./outbox.js";
import { expectRoomsLine } from "./rooms.js";
import { HISTORY_PAGE } from "./settings.js";
import { change, isReady, send } from "./socket.js";
import { noteTyped } from "./typing.js";

const SENT_LINES_KEPT = 50;

const composer = {
  sentLines: [],
  recalled: -1,
  lastCommand: "",
};

// The last /command sent to the server, for the words of `unknown_action`.
export function lastCommand() {
  return composer.lastCommand;
}

const USAGE = {
  nick: "Usage: /nick NAME",
  join: "Usage: /join ROOM",
  history: `Usage: /history [N], N from 1 to ${HISTORY_PAGE}`,
};

// What a typed line does: a change (one at a time), a message, a command the page runs
// itself, a usage line, or a command the server answers.
function typed(text) {
  const command = text.match(/^\/(nick|join|history)(?:\s+(.*))?$/);
  if (command) return pageCommand(command[1], (command[2] || "").trim());
  if (text.startsWith("//")) return { send: { action: "sendmessage", data: text.slice(1) } };
  if (text.startsWith("/")) return { server: text };
  return { send: { action: "sendmessage", data: text } };
}

function pageCommand(name, argument) {
  if (name === "history") {
    if (!argument) return { run: () => loadOlder("command") };
    const count = /^\d{1,2}$/.test(argument) ? Number(argument) : 0;
    if (count < 1 || count > HISTORY_PAGE) return { usage: USAGE.history };
    return { run: () => loadOlder("command", count) };
  }
  if (!argument) return { usage: USAGE[name] };
  return { change: name === "nick" ? { action: "nick", name: argument } : { action: "join", room: argument } };
}

// "sent", "kept" (an incomplete command stays in the composer to be finished) or false.
function submitLine(text) {
  const line = typed(text);
  if (line.usage) {
    systemLine(line.usage, "error");
    return "kept";
  }
  if (line.run) {
    line.run();
    return "sent";
  }
  if (line.change) return change(line.change) && "sent";
  if (!isReady()) return false;
  if (line.server) {
    composer.lastCommand = text.split(/\s/, 1)[0];
    if (text === "/rooms") expectRoomsLine();
    return send(line.server) && "sent";
  }
  return sendMessage(line.send.data) && "sent";
}

function remember(text) {
  composer.sentLines.push(text);
  composer.sentLines.splice(0, composer.sentLines.length - SENT_LINES_KEPT);
  composer.recalled = -1;
}

// Up in an empty composer (or on a recalled line) steps back through what was sent.
function recall(step) {
  const lines = composer.sentLines;
  const showing = composer.recalled === -1 ? "" : lines[composer.recalled];
  if (!lines.length || ui.input.value !== showing) return false;
  const from = composer.recalled === -1 ? lines.length : composer.recalled;
  const next = from + step;
  if (next < 0) return true;
  composer.recalled = next >= lines.length ? -1 : next;
  ui.input.value = composer.recalled === -1 ? "" : lines[composer.recalled];
  const end = ui.input.value.length;
  ui.input.setSelectionRange(end, end);
  return true;
}

export function initComposer() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    if (editing()) {
      if (!submitEdit(text)) systemLine("Not connected: not edited", "error");
      return;
    }
    const outcome = submitLine(text);
    if (!outcome) {
      systemLine("Not connected: not sent", "error");
      return;
    }
    remember(text);
    if (outcome === "sent") ui.input.value = "";
  });
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && editing()) {
      cancelEdit();
      event.preventDefault();
      return;
    }
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    // Up in an empty composer edits one's newest message; the lines sent come back
    // (commands) when there is none shown.
    const editsLast = event.key === "ArrowUp" && !ui.input.value && !editing() && editLast();
    if (editsLast || (!editing() && recall(event.key === "ArrowUp" ? -1 : 1))) event.preventDefault();
  });
  ui.input.addEventListener("input", () => {
    if (!editing()) noteTyped(ui.input.value.trim());
  });
}
