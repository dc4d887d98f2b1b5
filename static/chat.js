// The demo chat page: one websocket, the protocol of docs/protocol.md, no build step.
// Every string from the server is rendered with textContent, never as HTML.
"use strict";

(() => {
  const params = new URLSearchParams(location.search);
  // API Gateway closes connections idle for 10 minutes; protocol pings do not count.
  const PING_EVERY_MS = (Number(params.get("ping")) || 240) * 1000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const CATCH_UP_PAGES = 20;
  const CHANGE_TIMEOUT_MS = 10000;
  const OWN_IDS_KEPT = 500;
  const store = window.sessionStorage;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    roomTitle: $("room-title"),
    nickForm: $("nick-form"),
    nickInput: $("nick-input"),
    roomForm: $("room-form"),
    roomInput: $("room-input"),
    members: $("members"),
    memberCount: $("member-count"),
    rooms: $("rooms"),
    refreshRooms: $("refresh-rooms"),
    loadOlder: $("load-older"),
    log: $("log"),
    composer: $("composer"),
    input: $("message-input"),
  };

  const state = {
    socket: null,
    attempt: 0,
    retryTimer: 0,
    pingTimer: 0,
    heardSincePing: true,
    nick: store.getItem("chat.nick") || "",
    room: store.getItem("chat.room") || "lobby",
    shownRoom: null,
    members: [],
    count: 0,
    more: false,
    lastSeenId: "",
    catchUpPages: 0,
    catchUpTarget: undefined,
    pendingNick: null,
    ready: false,
    // The room or nickname change awaiting the server's answer, and those typed meanwhile:
    // the server runs frames concurrently, so sending them together could reorder them.
    changing: null,
    queued: [],
    pendingTexts: [],
    ownIds: new Set(JSON.parse(store.getItem("chat.own") || "[]")),
  };

  function endpoint() {
    const explicit = params.get("ws");
    if (explicit) return explicit;
    if (location.protocol !== "http:" && location.protocol !== "https:") return null;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/${params.get("stage") || "api"}`;
  }

  function setStatus(name, text) {
    ui.status.dataset.state = name;
    ui.status.textContent = text;
  }

  // Connection ------------------------------------------------------------------

  function connect() {
    const base = endpoint();
    if (!base) {
      setStatus("offline", "no server: open this page with ?ws=wss://…/api");
      return;
    }
    const url = new URL(base);
    url.searchParams.set("room", state.room);
    if (state.nick) url.searchParams.set("nick", state.nick);
    setStatus("connecting", state.attempt ? `reconnecting (attempt ${state.attempt + 1})…` : "connecting…");
    let socket;
    try {
      socket = new WebSocket(url.toString());
    } catch (error) {
      setStatus("offline", `bad server address: ${error.message}`);
      return;
    }
    state.socket = socket;
    socket.addEventListener("open", () => {
      // Online once the server confirms the room (`joined`): until then the
      // page's own state (nickname, room, members) is not the server's.
      setStatus("connecting", "joining…");
      state.ready = false;
      state.changing = null;
      state.queued = [];
      send({ action: "join", room: state.room });
      state.heardSincePing = true;
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(() => keepAlive(socket), PING_EVERY_MS);
    });
    socket.addEventListener("message", (event) => {
      state.heardSincePing = true;
      receive(event.data);
    });
    socket.addEventListener("close", () => drop(socket));
  }

  // A ping that got no answer by the next one means a dead link that never closed.
  function keepAlive(socket) {
    if (!state.heardSincePing) {
      drop(socket);
      return;
    }
    state.heardSincePing = false;
    send({ action: "ping" });
  }

  function drop(socket) {
    if (state.socket !== socket) return;
    clearInterval(state.pingTimer);
    state.socket = null;
    socket.close();
    scheduleReconnect();
  }

  // Exponential backoff with full jitter: spreads a crowd of reconnecting pages.
  function scheduleReconnect() {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
    const delay = Math.round(Math.random() * ceiling);
    state.attempt += 1;
    setStatus("reconnecting", `disconnected; reconnecting in ${Math.ceil(delay / 1000)} s`);
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(connect, delay);
  }

  function send(frame) {
    const socket = state.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    return true;
  }

  // Room and nickname changes go one at a time: each waits for the answer to the last.
  function change(frame) {
    if (!state.ready) return false;
    if (state.changing) {
      state.queued.push(frame);
      return true;
    }
    if (frame.action === "nick") state.pendingNick = frame.name;
    state.changing = frame.action;
    clearTimeout(state.changeTimer);
    state.changeTimer = setTimeout(() => settle(state.changing), CHANGE_TIMEOUT_MS);
    return send(frame);
  }

  function settle(action) {
    if (!action || state.changing !== action) return;
    state.changing = null;
    clearTimeout(state.changeTimer);
    const next = state.queued.shift();
    if (next) change(next);
  }

  // Frames from the server ---------------------------------------------------------

  function receive(data) {
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
      const index = state.pendingTexts.indexOf(frame.text);
      if (frame.from === state.nick && index !== -1) {
        state.pendingTexts.splice(index, 1);
        rememberOwn(frame.id);
      }
      addMessages([frame]);
      scrollToEnd();
    },

    joined(frame) {
      state.ready = true;
      setStatus("online", "online");
      settle("join");
      const rejoin = frame.room === state.shownRoom;
      state.room = frame.room;
      state.nick = frame.nick;
      state.attempt = 0;
      store.setItem("chat.room", state.room);
      store.setItem("chat.nick", state.nick);
      ui.nickInput.value = state.nick;
      ui.roomInput.value = state.room;
      ui.roomTitle.textContent = `#${state.room}`;
      setMembers(frame.members, frame.count);
      if (!rejoin) {
        ui.log.replaceChildren();
        state.shownRoom = frame.room;
        state.lastSeenId = "";
        state.more = frame.more;
      }
      const seenBefore = state.lastSeenId;
      addMessages(frame.history);
      catchUp(seenBefore, frame.history, frame.more);
      if (!rejoin) systemLine(`you joined #${frame.room} as ${frame.nick}`);
      showLoadOlder();
      scrollToEnd();
      send({ action: "rooms" });
    },

    history(frame) {
      if (frame.room !== state.shownRoom) return;
      const seenBefore = state.catchUpTarget;
      addMessages(frame.messages);
      if (seenBefore !== undefined) {
        catchUp(seenBefore, frame.messages, frame.more);
      } else {
        state.more = frame.more;
      }
      ui.loadOlder.disabled = false;
      showLoadOlder();
    },

    presence(frame) {
      if (frame.room !== state.shownRoom) return;
      if (frame.event === "join") {
        state.members.push(frame.nick);
        systemLine(`${frame.nick} joined`);
      } else if (frame.event === "leave") {
        removeOne(state.members, frame.nick);
        systemLine(`${frame.nick} left`);
      } else if (frame.event === "nick") {
        const mine = frame.previous === state.nick && frame.nick === state.pendingNick;
        replaceOne(state.members, frame.previous, frame.nick);
        if (mine) {
          settle("nick");
          state.nick = frame.nick;
          state.pendingNick = null;
          store.setItem("chat.nick", state.nick);
          ui.nickInput.value = state.nick;
          systemLine(`you are now ${frame.nick}`);
        } else {
          systemLine(`${frame.previous} is now ${frame.nick}`);
        }
      }
      setMembers(state.members, frame.count);
    },

    members(frame) {
      setMembers(frame.members, frame.count);
      systemLine(`in #${frame.room}: ${frame.members.join(", ")}`);
    },

    rooms(frame) {
      ui.rooms.replaceChildren(
        ...frame.rooms.map((room) => {
          const item = document.createElement("li");
          const button = document.createElement("button");
          button.type = "button";
          button.textContent = `#${room.name} (${room.members})`;
          button.addEventListener("click", () => change({ action: "join", room: room.name }));
          item.append(button);
          return item;
        }),
      );
    },

    help(frame) {
      for (const command of frame.commands) systemLine(`${command.command} — ${command.help}`);
    },

    error(frame) {
      if (frame.code === "invalid_nick") state.pendingNick = null;
      if (["invalid_nick", "invalid_room", "unavailable", "bad_request"].includes(frame.code)) {
        settle(state.changing);
      }
      systemLine(`${frame.code}: ${frame.message}`, "error");
    },

    pong() {},
  };

  // After a reconnect, page back until the last message seen before the drop.
  function catchUp(seenBefore, page, more) {
    const oldest = page.length ? page[0].id : "";
    if (seenBefore && more && oldest > seenBefore && state.catchUpPages < CATCH_UP_PAGES) {
      state.catchUpPages += 1;
      state.catchUpTarget = seenBefore;
      send({ action: "history", before: oldest, limit: 50 });
    } else {
      state.catchUpPages = 0;
      state.catchUpTarget = undefined;
    }
  }

  // Rendering ------------------------------------------------------------------------

  function addMessages(messages) {
    for (const message of messages) {
      if (ui.log.querySelector(`li[data-id="${CSS.escape(message.id)}"]`)) continue;
      const item = renderMessage(message);
      if (message.id > state.lastSeenId) {
        ui.log.append(item);
        state.lastSeenId = message.id;
      } else {
        insertInOrder(item, message.id);
      }
    }
  }

  function renderMessage(message) {
    const item = document.createElement("li");
    item.dataset.id = message.id;
    item.className = state.ownIds.has(message.id) ? "message own" : "message";
    const time = document.createElement("time");
    time.className = "meta";
    time.dateTime = message.ts;
    time.title = message.ts;
    time.textContent = new Date(message.ts).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
    });
    const from = document.createElement("span");
    from.className = "from";
    from.textContent = message.from;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = message.text;
    item.append(time, from, text);
    return item;
  }

  // Older messages (history, catch-up) go between the ones shown, by id: ULIDs sort by time.
  function insertInOrder(item, id) {
    const messages = ui.log.querySelectorAll("li[data-id]");
    for (let i = messages.length - 1; i >= 0; i -= 1) {
      if (messages[i].dataset.id < id) {
        messages[i].after(item);
        return;
      }
    }
    ui.log.prepend(item);
  }

  function systemLine(text, kind = "system") {
    const item = document.createElement("li");
    item.className = kind;
    if (kind === "error") item.setAttribute("role", "alert");
    item.textContent = text;
    ui.log.append(item);
    scrollToEnd();
  }

  function setMembers(nicks, count) {
    state.members = [...nicks];
    state.count = count ?? nicks.length;
    ui.memberCount.textContent = `(${state.count})`;
    let youMarked = false;
    ui.members.replaceChildren(
      ...state.members.map((nick) => {
        const item = document.createElement("li");
        item.textContent = nick;
        if (!youMarked && nick === state.nick) {
          youMarked = true;
          item.append(" (you)");
        }
        return item;
      }),
    );
  }

  function showLoadOlder() {
    ui.loadOlder.hidden = !state.more;
  }

  function scrollToEnd() {
    ui.log.scrollTop = ui.log.scrollHeight;
  }

  function rememberOwn(id) {
    state.ownIds.add(id);
    const kept = [...state.ownIds].slice(-OWN_IDS_KEPT);
    store.setItem("chat.own", JSON.stringify(kept));
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

  // Controls --------------------------------------------------------------------------

  // A typed `/nick NAME` or `/join ROOM` is a change like the forms' (one at a time).
  function typed(text) {
    const command = text.match(/^\/(nick|join)\s+(.+)$/);
    if (command) {
      const value = command[2].trim();
      return command[1] === "nick" ? { action: "nick", name: value } : { action: "join", room: value };
    }
    if (text.startsWith("/") && !text.startsWith("//")) return text;
    const data = text.startsWith("//") ? text.slice(1) : text;
    return { action: "sendmessage", data };
  }

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    const frame = typed(text);
    const isChange = typeof frame === "object" && frame.action !== "sendmessage";
    const sent = isChange ? change(frame) : state.ready && send(frame);
    if (!sent) {
      systemLine("not connected: not sent", "error");
      return;
    }
    if (frame.action === "sendmessage") state.pendingTexts.push(frame.data);
    ui.input.value = "";
  });

  ui.nickForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.nickInput.value.trim();
    if (!name || name === state.nick) return;
    if (!change({ action: "nick", name })) systemLine("not connected: nickname not changed", "error");
  });

  ui.roomForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = ui.roomInput.value.trim();
    if (room && !change({ action: "join", room })) {
      systemLine("not connected: room not changed", "error");
    }
  });

  ui.loadOlder.addEventListener("click", () => {
    const first = ui.log.querySelector("li[data-id]");
    const request = { action: "history", limit: 50 };
    if (first) request.before = first.dataset.id;
    ui.loadOlder.disabled = send(request);
  });

  ui.refreshRooms.addEventListener("click", () => send({ action: "rooms" }));

  ui.nickInput.value = state.nick;
  ui.roomInput.value = state.room;
  connect();
})();
