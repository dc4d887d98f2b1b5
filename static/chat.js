// The demo chat page: one websocket, the protocol of docs/protocol.md, no build step.
// Every string from the server is rendered with textContent, never as HTML.
// docs/page.md describes what the page does and why.
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
  const SENT_LINES_KEPT = 50;
  const RESEND_TRIES = 5;
  const RESEND_FIRST_MS = 1000;
  // A message not acknowledged this long after it went out says "Not sent" (Retry).
  const ACK_TIMEOUT_MS = (Number(params.get("ack")) || 20) * 1000;
  // The server takes ids within 60 s of its clock: an older outbox id is made anew.
  const ID_REUSE_MS = 45000;
  const ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const HISTORY_PAGE = 50;
  // Within this distance of the end the reader counts as "at the bottom" (sub-pixel layouts).
  const BOTTOM_SLACK_PX = 8;
  // Messages from one person closer together than this share one name line.
  const GROUP_GAP_MS = 5 * 60 * 1000;
  // Sorts before every real message id: the anchor of lines shown before any message.
  const NO_MESSAGE_ID = "0".repeat(26);
  const ROOM_PATTERN = /^[A-Za-z0-9_.-]+$/;
  const store = window.sessionStorage;
  // Sign-in (docs/page.md): `?client=` names a Cognito app client and turns it on.
  // Tokens are refreshed at 80 % of their lifetime (at most a minute before they expire).
  const SIGN_IN = Boolean(params.get("client"));
  const REFRESH_AT = 0.8;
  const REFRESH_LEAD_S = 60;
  const REFRESH_RETRY_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"),
    roomTitle: $("room-title"),
    drawerToggle: $("drawer-toggle"),
    drawerClose: $("drawer-close"),
    side: $("side"),
    backdrop: $("backdrop"),
    bar: document.querySelector(".bar"),
    main: document.querySelector(".main"),
    nickForm: $("nick-form"),
    nickInput: $("nick-input"),
    roomForm: $("room-form"),
    roomInput: $("room-input"),
    members: $("members"),
    memberCount: $("member-count"),
    rooms: $("rooms"),
    refreshRooms: $("refresh-rooms"),
    scroller: $("scroller"),
    loadOlder: $("load-older"),
    historyStart: $("history-start"),
    log: $("log"),
    newMessages: $("new-messages"),
    composer: $("composer"),
    input: $("message-input"),
    layout: $("layout"),
    signin: $("signin"),
    signinForm: $("signin-form"),
    signinNote: $("signin-note"),
    signinUser: $("signin-user"),
    signinPassword: $("signin-password"),
    signinError: $("signin-error"),
    signinSubmit: $("signin-submit"),
    signinService: $("signin-service"),
    account: $("account"),
    accountName: $("account-name"),
    signOut: $("sign-out"),
  };
  const narrow = window.matchMedia("(max-width: 640px)");

  function firstRoom() {
    const asked = params.get("room");
    if (asked && ROOM_PATTERN.test(asked)) return asked;
    return store.getItem("chat.room") || "lobby";
  }

  const state = {
    socket: null,
    attempt: 0,
    retryTimer: 0,
    pingTimer: 0,
    heardSincePing: true,
    // Signed in, the nickname is the username: the server says which in `joined`.
    nick: SIGN_IN ? "" : store.getItem("chat.nick") || "",
    room: firstRoom(),
    shownRoom: null,
    members: [],
    // Members of the shown room who are signed in (the server's `verified` fields).
    verified: new Set(),
    count: 0,
    rooms: new Map(),
    roomsListed: false,
    roomsAsked: false,
    more: false,
    olderBy: null,
    lastSeenId: "",
    shownIds: new Set(),
    lineSeq: 0,
    unseen: 0,
    // The reader follows the conversation: set by reaching the bottom, the new-messages
    // button or sending; cleared only by the reader scrolling up. Never re-inferred from
    // the scroll position, which a late layout can change under the reader.
    following: true,
    // Where the page itself last scrolled to: its own scrolls do not change `following`.
    ownScrollTop: -1,
    labelledToday: "",
    catchUpPages: 0,
    catchUpTarget: undefined,
    pendingNick: null,
    lastCommand: "",
    ready: false,
    // The room or nickname change awaiting the server's answer, and those typed meanwhile:
    // the server runs frames concurrently, so sending them together could reorder them.
    changing: null,
    queued: [],
    // The outbox: messages sent and not yet acknowledged, by the id this page gave them,
    // each shown as a pending row. Sent again with that id after `unavailable` and after
    // a reconnect (the server stores one message per id); never dropped silently.
    pending: new Map(),
    clockOffset: 0,
    // The time of the newest id this page made: ids only ever grow.
    lastIdMs: 0,
    sentLines: [],
    recalled: -1,
    // Signed in, one's own messages are those verified under one's username: none kept.
    ownIds: new Set(SIGN_IN ? [] : JSON.parse(store.getItem("chat.own") || "[]")),
  };

  // Sign-in state, in memory only: never in storage or cookies (docs/page.md).
  const auth = {
    client: params.get("client") || "",
    endpoint: "",
    problem: "",
    access: "",
    refresh: "",
    expiresAt: 0,
    user: "",
    timer: 0,
    refreshing: null,
    // Bumped on sign-out: answers to requests of an earlier sign-in are dropped.
    generation: 0,
    // A socket failed to open since the last refresh: the next failure ends the sign-in.
    refused: false,
    busy: false,
  };

  // Where passwords go: Amazon Cognito's own endpoint, or one on this computer (the local
  // gateway's). No other address is taken from a link: a link must not be able to send
  // the password elsewhere. Without `cognito`, the region of a `ws` on AWS names it.
  function cognitoEndpoint() {
    const given = params.get("cognito");
    if (!given) {
      const aws = (params.get("ws") || "").match(/\.execute-api\.([a-z0-9-]+)\.amazonaws\.com/);
      if (aws) return { url: `https://cognito-idp.${aws[1]}.amazonaws.com/` };
      return { problem: "This page's link does not say where to sign in (its cognito= is missing)" };
    }
    let url;
    try {
      url = new URL(given);
    } catch {
      return { problem: "This page's link names a sign-in service that is not an address" };
    }
    const web = url.protocol === "https:" || url.protocol === "http:";
    const cognito = /^cognito-idp(-fips)?\.[a-z0-9-]+\.amazonaws\.com$/.test(url.hostname);
    const local = ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
    if ((cognito && url.protocol === "https:") || (web && local)) return { url: url.href };
    const where = url.host || given;
    return { problem: `This page sends passwords only to Amazon Cognito or this computer, not to ${where}` };
  }

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
    if (SIGN_IN && !auth.access) {
      showSignIn();
      return;
    }
    if (SIGN_IN && Date.now() >= auth.expiresAt) {
      // Asleep past the refresh (a laptop's lid closed): a new token first.
      refreshThen(connect);
      return;
    }
    const url = new URL(base);
    url.searchParams.set("room", state.room);
    // Browsers cannot set headers on a websocket: the token goes in the query string.
    if (SIGN_IN) url.searchParams.set("token", auth.access);
    else if (state.nick) url.searchParams.set("nick", state.nick);
    setStatus("connecting", state.attempt ? `reconnecting (attempt ${state.attempt + 1})…` : "connecting…");
    let socket;
    try {
      socket = new WebSocket(url.toString());
    } catch (error) {
      setStatus("offline", `bad server address: ${error.message}`);
      return;
    }
    state.socket = socket;
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      auth.refused = false;
      // Online once the server confirms the room (`joined`): until then the
      // page's own state (nickname, room, members) is not the server's.
      setStatus("connecting", "joining…");
      state.ready = false;
      state.changing = null;
      state.queued = [];
      state.roomsListed = false;
      send({ action: "join", room: state.room });
      state.heardSincePing = true;
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(() => keepAlive(socket), PING_EVERY_MS);
    });
    socket.addEventListener("message", (event) => {
      state.heardSincePing = true;
      receive(event.data);
    });
    // A refused `$connect` (401 for a token the server does not take) is a socket that
    // never opens: the page cannot see the status.
    socket.addEventListener("close", () => (SIGN_IN && !opened ? refused(socket) : drop(socket)));
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

  function requestRooms() {
    send({ action: "rooms" });
  }

  // Sign-in ------------------------------------------------------------------------------
  // Amazon Cognito's InitiateAuth over fetch, no SDK: USER_PASSWORD_AUTH with the form,
  // REFRESH_TOKEN_AUTH before the access token expires. Each new access token is a new
  // connection: the server checks the token at `$connect` only.

  const SIGNED_OUT = "You signed out";
  const EXPIRED = "Your sign-in has expired; please sign in again";
  const REFUSED = "The chat refused the connection or could not be reached; please sign in again";

  // { tokens } on success, else { failure: the exception's name, transient, message }.
  async function initiateAuth(flow, parameters) {
    let response;
    let body = {};
    try {
      response = await fetch(auth.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        },
        body: JSON.stringify({ AuthFlow: flow, ClientId: auth.client, AuthParameters: parameters }),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
      body = await response.json().catch(() => ({}));
    } catch {
      return { failure: "network", transient: true };
    }
    const result = body && body.AuthenticationResult;
    if (response.ok && result && typeof result.AccessToken === "string") return { tokens: result };
    if (response.ok && body.ChallengeName) {
      return { failure: "challenge", challenge: String(body.ChallengeName) };
    }
    // moto may put a prefix before `#`; AWS may add `:` and a link to the header's value.
    const type = String(body.__type || response.headers.get("x-amzn-errortype") || "")
      .split("#")
      .pop()
      .split(":")[0];
    const transient =
      response.status >= 500 ||
      ["TooManyRequestsException", "LimitExceededException", "InternalErrorException"].includes(type);
    return { failure: type || `HTTP ${response.status}`, transient, message: String(body.message || "") };
  }

  // A failed sign-in, for people.
  function describeAuthFailure(answer) {
    const message = answer.message || "";
    switch (answer.failure) {
      case "network":
        return "Could not reach the sign-in service; check your connection and try again";
      case "NotAuthorizedException":
        if (/attempts exceeded/i.test(message)) {
          return "Too many wrong passwords; wait a few minutes, then try again";
        }
        if (/disabled/i.test(message)) return "This account is disabled";
        return "Wrong username or password";
      case "UserNotFoundException":
        return "Wrong username or password";
      case "UserNotConfirmedException":
        return "This account is not confirmed yet; ask whoever runs this chat";
      case "PasswordResetRequiredException":
        return "This account's password must be reset first; ask whoever runs this chat";
      case "TooManyRequestsException":
      case "LimitExceededException":
        return "Too many sign-ins just now; wait a moment and try again";
      case "ResourceNotFoundException":
        return "This page's link names a sign-in client that does not exist; ask for a new link";
      case "challenge":
        if (answer.challenge === "NEW_PASSWORD_REQUIRED") {
          return "This account must choose a new password first, which this page cannot do; ask whoever runs this chat";
        }
        return `This account needs another sign-in step (${answer.challenge}) that this page does not offer`;
      default:
        return `Sign-in failed: ${message || answer.failure}`;
    }
  }

  function keepTokens(result) {
    const seconds = Number(result.ExpiresIn) > 0 ? Number(result.ExpiresIn) : 3600;
    auth.access = result.AccessToken;
    // REFRESH_TOKEN_AUTH answers without a new refresh token: the old one stays.
    if (typeof result.RefreshToken === "string" && result.RefreshToken) auth.refresh = result.RefreshToken;
    auth.expiresAt = Date.now() + seconds * 1000;
    const renewIn = Math.max(Math.min(seconds * REFRESH_AT, seconds - REFRESH_LEAD_S), seconds / 2);
    clearTimeout(auth.timer);
    auth.timer = setTimeout(renewOnTime, renewIn * 1000);
  }

  // "ok", "later" (network or a busy Cognito: keep what we have, try again), "refused"
  // (the refresh token is no good: sign in again) or "stale" (signed out meanwhile).
  function refreshTokens() {
    if (!auth.refresh) return Promise.resolve("refused");
    if (auth.refreshing) return auth.refreshing;
    const generation = auth.generation;
    auth.refreshing = initiateAuth("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: auth.refresh }).then((answer) => {
      if (generation !== auth.generation) return "stale";
      auth.refreshing = null;
      if (answer.tokens) {
        keepTokens(answer.tokens);
        return "ok";
      }
      return answer.transient ? "later" : "refused";
    });
    return auth.refreshing;
  }

  // The refresh timer: a new token, then a new connection that carries it.
  async function renewOnTime() {
    const outcome = await refreshTokens();
    if (outcome === "ok") reconnectNow();
    else if (outcome === "later") auth.timer = setTimeout(renewOnTime, REFRESH_RETRY_MS);
    else if (outcome === "refused") signOut(EXPIRED);
  }

  async function refreshThen(next) {
    setStatus("connecting", "renewing your sign-in…");
    const outcome = await refreshTokens();
    if (outcome === "ok") next();
    else if (outcome === "later") scheduleReconnect();
    else if (outcome === "refused") signOut(EXPIRED);
  }

  // Close the socket (if any) and open one with the current token right away. The room
  // sees a leave and a join; history and the reader's place survive as on any reconnect.
  function reconnectNow() {
    clearTimeout(state.retryTimer);
    clearInterval(state.pingTimer);
    const old = state.socket;
    state.socket = null;
    if (old) old.close(1000, "new token");
    connect();
  }

  // A socket that never opened: the server refused the token (401), or it is down.
  // One refresh and one more try; then the sign-in form, never a loop on a dead token.
  async function refused(socket) {
    if (state.socket !== socket) return;
    clearInterval(state.pingTimer);
    state.socket = null;
    if (auth.refused) {
      signOut(REFUSED);
      return;
    }
    auth.refused = true;
    setStatus("connecting", "renewing your sign-in…");
    const outcome = await refreshTokens();
    if (outcome === "ok") {
      connect();
    } else if (outcome === "later") {
      // Cognito unreachable too: offline, not refused. Back off and try both again.
      auth.refused = false;
      scheduleReconnect();
    } else if (outcome === "refused") {
      signOut(EXPIRED);
    }
  }

  // Forget the tokens, close the socket (1000: a normal close) and show the form.
  function signOut(note) {
    auth.generation += 1;
    clearTimeout(auth.timer);
    Object.assign(auth, { access: "", refresh: "", expiresAt: 0, refused: false, refreshing: null });
    clearTimeout(state.retryTimer);
    clearTimeout(state.changeTimer);
    clearInterval(state.pingTimer);
    const socket = state.socket;
    state.socket = null;
    if (socket) socket.close(1000, "signed out");
    Object.assign(state, { attempt: 0, ready: false, changing: null, queued: [] });
    Object.assign(state, { nick: "", pendingNick: null, ownIds: new Set() });
    forgetRoom();
    showSignIn(note);
  }

  // What the last person saw stays out of sight of the next one.
  function forgetRoom() {
    emptyOutbox();
    ui.log.replaceChildren();
    Object.assign(state, { shownRoom: null, shownIds: new Set(), lastSeenId: "", more: false });
    Object.assign(state, { olderBy: null, catchUpPages: 0, catchUpTarget: undefined, roomsListed: false });
    state.verified = new Set();
    state.rooms = new Map();
    setMembers([], 0);
    renderRooms();
    clearUnseen();
    showHistoryEdge();
    ui.roomTitle.textContent = "";
  }

  function showSignIn(note = "") {
    closeDrawer();
    document.body.classList.add("signed-out");
    ui.layout.hidden = true;
    ui.signin.hidden = false;
    ui.account.hidden = true;
    ui.roomTitle.textContent = "";
    setStatus("signed-out", "signed out");
    ui.signinNote.textContent = note;
    // Where the password goes, in plain sight.
    ui.signinService.replaceChildren();
    if (auth.endpoint) {
      const host = document.createElement("span");
      host.className = "host";
      host.textContent = new URL(auth.endpoint).host;
      ui.signinService.append("Your password goes only to Cognito at ", host);
    }
    signInError(auth.problem);
    signInBusy(false);
    ui.signinPassword.value = "";
    (ui.signinUser.value ? ui.signinPassword : ui.signinUser).focus();
  }

  function hideSignIn() {
    document.body.classList.remove("signed-out");
    ui.signin.hidden = true;
    ui.layout.hidden = false;
    showAccount();
  }

  // Signed in, the name is the username (the server's, once joined): no nickname form.
  function showAccount() {
    const name = state.nick || auth.user;
    ui.nickForm.hidden = true;
    ui.account.hidden = false;
    ui.accountName.replaceChildren(...named(name, state.verified.has(name)));
  }

  function signInError(text) {
    ui.signinError.textContent = text;
    ui.signinError.hidden = !text;
  }

  function signInBusy(busy) {
    auth.busy = busy;
    ui.signinSubmit.disabled = busy;
    ui.signinSubmit.textContent = busy ? "Signing in…" : "Sign in";
    ui.signinForm.setAttribute("aria-busy", String(busy));
  }

  async function signIn() {
    if (auth.busy) return;
    if (auth.problem) {
      signInError(auth.problem);
      return;
    }
    const username = ui.signinUser.value.trim();
    const password = ui.signinPassword.value;
    if (!username || !password) {
      signInError("Enter your username and password");
      (username ? ui.signinPassword : ui.signinUser).focus();
      return;
    }
    signInError("");
    signInBusy(true);
    const generation = auth.generation;
    const answer = await initiateAuth("USER_PASSWORD_AUTH", { USERNAME: username, PASSWORD: password });
    signInBusy(false);
    if (generation !== auth.generation) return;
    if (!answer.tokens) {
      signInError(describeAuthFailure(answer));
      ui.signinPassword.select();
      ui.signinPassword.focus();
      return;
    }
    ui.signinPassword.value = "";
    ui.signinNote.textContent = "";
    auth.user = username;
    auth.refused = false;
    keepTokens(answer.tokens);
    hideSignIn();
    ui.input.focus();
    connect();
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
      // One still on its way from the room just left.
      if (state.shownRoom && frame.room !== state.shownRoom) return;
      noteMessageClock(frame.ts);
      const own = claimOwn(frame);
      const reading = !state.following;
      const newest = frame.id > state.lastSeenId;
      const added = changeLog(() => addMessages([frame]));
      if (own) scrollToEnd();
      else if (reading && newest && added) countUnseen(added);
    },

    joined(frame) {
      noteServerClock(frame.server_time);
      state.ready = true;
      setStatus("online", "online");
      settle("join");
      const previous = state.shownRoom;
      const rejoin = frame.room === previous;
      state.room = frame.room;
      state.nick = frame.nick;
      state.attempt = 0;
      store.setItem("chat.room", state.room);
      if (!SIGN_IN) store.setItem("chat.nick", state.nick);
      ui.nickInput.value = state.nick;
      ui.roomInput.value = state.room;
      ui.roomTitle.textContent = `#${state.room}`;
      if (!rejoin) {
        if (previous) countRoom(previous, (state.rooms.get(previous) ?? 1) - 1);
        clearLog(frame);
      }
      state.verified = verifiedSet(frame.verified);
      setMembers(frame.members, frame.count);
      if (SIGN_IN) showAccount();
      state.olderBy = null;
      ui.loadOlder.disabled = false;
      const seenBefore = state.lastSeenId;
      changeLog(() => {
        addMessages(frame.history);
        if (!rejoin) systemLine([`you joined #${frame.room} as `, ...named(frame.nick)]);
        showHistoryEdge();
      });
      catchUp(seenBefore, frame.history, frame.more);
      if (!rejoin) scrollToEnd();
      // What the history did not show as stored goes out again, under its own id.
      for (const entry of [...state.pending.values()]) transmit(entry);
      // Counts stay current from joined and presence frames; the full list is asked
      // for once per connection, when the list is opened and on the refresh button.
      if (!state.roomsListed) {
        state.roomsListed = true;
        requestRooms();
      }
    },

    history(frame) {
      if (frame.room !== state.shownRoom) return;
      const seenBefore = state.catchUpTarget;
      const asked = state.olderBy;
      const added = changeLog(() => {
        const count = addMessages(frame.messages);
        if (seenBefore === undefined) state.more = frame.more;
        showHistoryEdge();
        return count;
      });
      if (seenBefore !== undefined) {
        catchUp(seenBefore, frame.messages, frame.more);
        return;
      }
      state.olderBy = null;
      ui.loadOlder.disabled = false;
      if (asked === "command") systemLine(olderAnswer(added));
      else if (asked === "button" && !added) systemLine("No older messages");
    },

    presence(frame) {
      countRoom(frame.room, frame.count);
      if (frame.room !== state.shownRoom) return;
      if (frame.event === "join") {
        state.members.push(frame.nick);
        if (frame.verified === true) state.verified.add(frame.nick);
        else state.verified.delete(frame.nick);
        systemLine([...named(frame.nick, frame.verified === true), " joined"]);
      } else if (frame.event === "leave") {
        // Our own name leaving is our previous connection (a reload, a new token): the
        // name is unique in the room and we are still here, so it stays listed once.
        const own = frame.nick === state.nick;
        if (!own || state.members.filter((nick) => nick === frame.nick).length > 1) {
          removeOne(state.members, frame.nick);
        }
        if (!own) {
          systemLine([...named(frame.nick, frame.verified === true), " left"]);
          state.verified.delete(frame.nick);
        }
      } else if (frame.event === "nick") {
        const mine = frame.previous === state.nick && frame.nick === state.pendingNick;
        replaceOne(state.members, frame.previous, frame.nick);
        state.verified.delete(frame.previous);
        if (frame.verified === true) state.verified.add(frame.nick);
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
      const verified = verifiedSet(frame.verified);
      if (frame.room === state.shownRoom) {
        state.verified = verified;
        setMembers(frame.members, frame.count);
      }
      const names = frame.members.flatMap((nick, index) => [
        ...(index ? [", "] : []),
        ...named(nick, verified.has(nick)),
      ]);
      systemLine([`People in #${frame.room}: `, ...names]);
    },

    rooms(frame) {
      state.rooms = new Map(frame.rooms.map((room) => [room.name, room.members]));
      // Our own room's count comes from presence frames, which are newer than this list.
      if (state.shownRoom) state.rooms.set(state.shownRoom, state.count);
      renderRooms();
      if (state.roomsAsked) {
        state.roomsAsked = false;
        const listed = [...state.rooms].map(([name, count]) => `#${name} (${count})`);
        systemLine(listed.length ? `Rooms: ${listed.join(", ")}` : "No rooms have members");
      }
    },

    help(frame) {
      for (const command of frame.commands) systemLine(`${command.command} — ${command.help}`);
    },

    error(frame) {
      if (frame.code === "unavailable" && frame.id && state.pending.has(frame.id)) {
        if (resendLater(frame.id)) {
          systemLine("The chat could not save your message just now; sending it again", "system");
          return;
        }
      }
      const words = describeError(frame);
      if (["invalid_nick", "nick_taken", "forbidden"].includes(frame.code)) state.pendingNick = null;
      if (SETTLING_ERRORS.includes(frame.code)) settle(state.changing);
      systemLine(words, "error");
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
        if (SIGN_IN && state.changing === "nick") {
          return `Signed in, your name is your username, ${state.nick}: it can't be changed`;
        }
        return frame.message || "You are not allowed to do that";
      case "bad_request":
        return `The server could not take that: ${frame.message || "bad request"}`;
      default:
        return frame.message || `The server refused that (${frame.code})`;
    }
  }

  function unknownCommand() {
    return state.lastCommand ? `There is no command ${state.lastCommand}` : "Unknown command";
  }

  function retrySeconds(milliseconds) {
    const value = Number(milliseconds);
    return Number.isFinite(value) && value > 0 ? Math.ceil(value / 1000) : 1;
  }

  function olderAnswer(added) {
    if (!added) return "No older messages";
    return `${added} older message${added === 1 ? "" : "s"} loaded above`;
  }

  // After a reconnect, page back until the last message seen before the drop.
  function catchUp(seenBefore, page, more) {
    const oldest = page.length ? page[0].id : "";
    if (seenBefore && more && oldest > seenBefore && state.catchUpPages < CATCH_UP_PAGES) {
      state.catchUpPages += 1;
      state.catchUpTarget = seenBefore;
      send({ action: "history", before: oldest, limit: HISTORY_PAGE });
    } else {
      state.catchUpPages = 0;
      state.catchUpTarget = undefined;
    }
  }

  // A message of ours came back (its echo, or a history that has it): out of the outbox.
  function claimOwn(message) {
    const entry = state.pending.get(message.id);
    if (!entry) return false;
    clearTimeout(entry.timer);
    clearTimeout(entry.ackTimer);
    entry.row.remove();
    state.pending.delete(message.id);
    rememberOwn(message.id);
    return true;
  }

  function emptyOutbox() {
    for (const entry of state.pending.values()) {
      clearTimeout(entry.timer);
      clearTimeout(entry.ackTimer);
    }
    state.pending.clear();
  }

  // Message ids carry a time the server checks against its own clock (docs/protocol.md):
  // a computer whose clock is off would have every message refused, so ids use the
  // server's time, learnt from `joined`. That answer is late by its trip (seconds on a
  // busy server), so every message seen also says the server's clock is at least its ts.
  function noteServerClock(serverTime) {
    const server = Date.parse(serverTime);
    if (Number.isFinite(server)) state.clockOffset = server - Date.now();
  }

  function noteMessageClock(ts) {
    const stamped = Date.parse(ts);
    if (Number.isFinite(stamped)) state.clockOffset = Math.max(state.clockOffset, stamped - Date.now());
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
    const estimate = Date.now() + state.clockOffset;
    const newest = Math.max(state.lastIdMs, state.lastSeenId ? idTime(state.lastSeenId) : 0) + 1;
    const ms = newest > estimate && newest - estimate < ID_REUSE_MS ? newest : estimate;
    state.lastIdMs = Math.max(state.lastIdMs, ms);
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
  function sendMessage(data) {
    const entry = { frame: { action: "sendmessage", data, id: newMessageId() }, tries: 0, timer: 0, ackTimer: 0 };
    entry.row = pendingRow(entry.frame);
    state.pending.set(entry.frame.id, entry);
    changeLog(() => placeRow(entry.row));
    scrollToEnd();
    transmit(entry);
    return true;
  }

  function transmit(entry) {
    clearTimeout(entry.timer);
    clearTimeout(entry.ackTimer);
    if (Date.now() + state.clockOffset - idTime(entry.frame.id) > ID_REUSE_MS) renewId(entry);
    showPending(entry, false);
    if (!send(entry.frame)) return; // a reconnect's `joined` sends it
    entry.tries += 1;
    entry.ackTimer = setTimeout(() => showPending(entry, true), ACK_TIMEOUT_MS);
  }

  // An id too old for the server's clock check: a new one (this one was never stored,
  // or the history would have shown it), and the row moves to its new place.
  function renewId(entry) {
    state.pending.delete(entry.frame.id);
    entry.frame.id = newMessageId();
    state.pending.set(entry.frame.id, entry);
    entry.row.dataset.key = entry.frame.id;
    entry.row.remove();
    changeLog(() => placeRow(entry.row));
  }

  // A pending row: the message as it will look, marked "Sending…" or "Not sent" + Retry.
  function pendingRow(frame) {
    const ts = new Date(Date.now() + state.clockOffset).toISOString();
    const row = renderMessage({ id: frame.id, from: state.nick, text: frame.data, ts });
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
  function resendLater(id) {
    const entry = state.pending.get(id);
    clearTimeout(entry.ackTimer);
    if (entry.tries >= RESEND_TRIES) {
      showPending(entry, true);
      return false;
    }
    entry.timer = setTimeout(() => transmit(entry), RESEND_FIRST_MS * 2 ** (entry.tries - 1));
    return true;
  }

  // The log ----------------------------------------------------------------------------
  // Every row has a sort key. A message's key is its id (a ULID: sorts by time); a line
  // of the page's own (joined, left, errors) is keyed after the newest message shown when
  // it happened, so a late message lands above it only if it is older than that one.
  // Day separators sit before the first row of each day and carry no key.

  function clearLog(frame) {
    emptyOutbox();
    ui.log.replaceChildren();
    state.shownRoom = frame.room;
    state.shownIds = new Set();
    state.lastSeenId = "";
    state.more = frame.more;
    clearUnseen();
  }

  function addMessages(messages) {
    let added = 0;
    for (const message of messages) {
      if (state.shownIds.has(message.id)) continue;
      claimOwn(message);
      state.shownIds.add(message.id);
      placeRow(renderMessage(message));
      if (message.id > state.lastSeenId) state.lastSeenId = message.id;
      added += 1;
    }
    return added;
  }

  function renderMessage(message) {
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
    return item;
  }

  // One's own: sent from this tab, or (signed in) verified under one's own username.
  function isOwn(message, verified) {
    if (state.ownIds.has(message.id)) return true;
    return SIGN_IN && verified && Boolean(state.nick) && message.from === state.nick;
  }

  // A line of the page's own: text, or a list of strings and elements (verified marks).
  function systemLine(content, kind = "system") {
    const item = document.createElement("li");
    state.lineSeq += 1;
    item.dataset.key = `${state.lastSeenId || NO_MESSAGE_ID}~${String(state.lineSeq).padStart(9, "0")}`;
    item.dataset.day = dayOf(new Date());
    item.className = kind;
    if (kind === "error") item.setAttribute("role", "alert");
    if (Array.isArray(content)) item.append(...content);
    else item.textContent = content;
    changeLog(() => placeRow(item));
  }

  // A name as text, followed by the verified mark when its holder is signed in.
  function named(nick, verified = state.verified.has(nick)) {
    return verified ? [String(nick), verifiedMark()] : [String(nick)];
  }

  function verifiedMark() {
    const mark = document.createElement("span");
    mark.className = "verified";
    mark.setAttribute("role", "img");
    mark.setAttribute("aria-label", "verified");
    mark.title = "verified: signed in";
    mark.textContent = "✓";
    return mark;
  }

  // The server's list of verified nicknames; anything else counts as none.
  function verifiedSet(list) {
    return new Set(Array.isArray(list) ? list.filter((nick) => typeof nick === "string") : []);
  }

  // Most rows are the newest or the oldest: those are found without a search.
  function placeRow(item) {
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
    if (today === state.labelledToday) return;
    state.labelledToday = today;
    for (const separator of ui.log.querySelectorAll(":scope > li.day")) {
      separator.firstElementChild.textContent = dayLabel(separator.dataset.day);
    }
  }

  // Reading position -------------------------------------------------------------------
  // Every change to the log goes through changeLog: a reader at the bottom stays at the
  // bottom; anyone else keeps the row they are looking at exactly where it was.

  function changeLog(mutate) {
    const stick = state.following;
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
    state.ownScrollTop = ui.scroller.scrollTop;
  }

  // A message's text, not its row: the row's name line folds away when the message
  // joins a group of older ones from the same person.
  function readAt(row) {
    return row ? row.querySelector(".text") || row : null;
  }

  function atBottom() {
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

  function scrollToEnd() {
    scrollTo(ui.scroller.scrollHeight);
    state.following = true;
    clearUnseen();
  }

  function countUnseen(count) {
    state.unseen += count;
    const label = document.createElement("span");
    label.textContent = `${state.unseen} new message${state.unseen === 1 ? "" : "s"}`;
    const arrow = document.createElement("span");
    arrow.setAttribute("aria-hidden", "true");
    arrow.textContent = " ↓";
    ui.newMessages.replaceChildren(label, arrow);
    ui.newMessages.hidden = false;
  }

  function clearUnseen() {
    state.unseen = 0;
    ui.newMessages.hidden = true;
  }

  function showHistoryEdge() {
    ui.loadOlder.hidden = !state.more;
    ui.historyStart.hidden = state.more || !state.shownRoom;
  }

  // Older messages: by the button at the top of the log or by /history [N] typed.
  function loadOlder(by, limit = HISTORY_PAGE) {
    if (!state.more) {
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
    state.olderBy = by;
    ui.loadOlder.disabled = true;
  }

  // People and rooms --------------------------------------------------------------------

  // Sorted as the server sorts them (case-folded), also after joins and renames.
  function byFoldedNick(a, b) {
    const [x, y] = [a.toLowerCase(), b.toLowerCase()];
    return x < y ? -1 : x > y ? 1 : 0;
  }

  function setMembers(nicks, count) {
    state.members = [...nicks].sort(byFoldedNick);
    state.count = count ?? nicks.length;
    ui.memberCount.textContent = `(${state.count})`;
    if (state.shownRoom) countRoom(state.shownRoom, state.count);
    let youMarked = false;
    ui.members.replaceChildren(
      ...state.members.map((nick) => {
        const item = document.createElement("li");
        item.append(...named(nick));
        if (!youMarked && nick === state.nick) {
          youMarked = true;
          item.append(" (you)");
        }
        return item;
      }),
    );
  }

  function countRoom(room, count) {
    if (count > 0) state.rooms.set(room, count);
    else state.rooms.delete(room);
    renderRooms();
  }

  function renderRooms() {
    const ordered = [...state.rooms].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
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
    if (name === state.shownRoom) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => pickRoom(name));
    item.append(button);
    return item;
  }

  // Picking a room is navigation: on a phone the drawer gives the view back to the chat.
  function pickRoom(name) {
    closeDrawer();
    if (name === state.shownRoom) return;
    if (!change({ action: "join", room: name })) systemLine("Not connected: room not changed", "error");
  }

  function rememberOwn(id) {
    state.ownIds.add(id);
    const kept = [...state.ownIds].slice(-OWN_IDS_KEPT);
    if (SIGN_IN) state.ownIds = new Set(kept);
    else store.setItem("chat.own", JSON.stringify(kept));
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

  // The drawer (narrow screens) ---------------------------------------------------------
  // Open, it is modal: the rest of the page is inert until it closes.

  function drawerOpen() {
    return document.body.classList.contains("drawer-open");
  }

  function openDrawer() {
    document.body.classList.add("drawer-open");
    ui.drawerToggle.setAttribute("aria-expanded", "true");
    ui.backdrop.hidden = false;
    ui.bar.inert = true;
    ui.main.inert = true;
    ui.drawerClose.focus();
    requestRooms();
  }

  function closeDrawer() {
    if (!drawerOpen()) return;
    document.body.classList.remove("drawer-open");
    ui.drawerToggle.setAttribute("aria-expanded", "false");
    ui.backdrop.hidden = true;
    ui.bar.inert = false;
    ui.main.inert = false;
    if (narrow.matches) ui.drawerToggle.focus();
  }

  // Typed lines ---------------------------------------------------------------------------

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
    if (!state.ready) return false;
    if (line.server) {
      state.lastCommand = text.split(/\s/, 1)[0];
      if (text === "/rooms") state.roomsAsked = true;
      return send(line.server) && "sent";
    }
    return sendMessage(line.send.data) && "sent";
  }

  function remember(text) {
    state.sentLines.push(text);
    state.sentLines.splice(0, state.sentLines.length - SENT_LINES_KEPT);
    state.recalled = -1;
  }

  // Up in an empty composer (or on a recalled line) steps back through what was sent.
  function recall(step) {
    const lines = state.sentLines;
    const showing = state.recalled === -1 ? "" : lines[state.recalled];
    if (!lines.length || ui.input.value !== showing) return false;
    const from = state.recalled === -1 ? lines.length : state.recalled;
    const next = from + step;
    if (next < 0) return true;
    state.recalled = next >= lines.length ? -1 : next;
    ui.input.value = state.recalled === -1 ? "" : lines[state.recalled];
    const end = ui.input.value.length;
    ui.input.setSelectionRange(end, end);
    return true;
  }

  // Controls --------------------------------------------------------------------------

  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.input.value.trim();
    if (!text) return;
    const outcome = submitLine(text);
    if (!outcome) {
      systemLine("Not connected: not sent", "error");
      return;
    }
    remember(text);
    if (outcome === "sent") ui.input.value = "";
  });

  ui.input.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
    if (recall(event.key === "ArrowUp" ? -1 : 1)) event.preventDefault();
  });

  ui.nickForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = ui.nickInput.value.trim();
    if (!name || name === state.nick) return;
    if (!change({ action: "nick", name })) systemLine("Not connected: nickname not changed", "error");
  });

  ui.roomForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = ui.roomInput.value.trim();
    if (room && !change({ action: "join", room })) {
      systemLine("Not connected: room not changed", "error");
    }
  });

  ui.signinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    signIn();
  });
  ui.signOut.addEventListener("click", () => signOut(SIGNED_OUT));

  ui.loadOlder.addEventListener("click", () => loadOlder("button"));
  ui.refreshRooms.addEventListener("click", requestRooms);
  ui.newMessages.addEventListener("click", () => {
    scrollToEnd();
    ui.input.focus();
  });

  // Reaching the bottom follows; only the reader's own scroll elsewhere stops following.
  ui.scroller.addEventListener("scroll", () => {
    if (atBottom()) {
      state.following = true;
      clearUnseen();
    } else if (Math.abs(ui.scroller.scrollTop - state.ownScrollTop) > 1) {
      state.following = false;
    }
  });
  // A reader following stays at the bottom when the view shrinks (a phone's keyboard
  // opens) or the log grows after the fact (fonts, a late layout).
  const stayAtEnd = new ResizeObserver(() => {
    if (state.following) scrollToEnd();
  });
  stayAtEnd.observe(ui.scroller);
  stayAtEnd.observe(ui.log);

  ui.drawerToggle.addEventListener("click", () => (drawerOpen() ? closeDrawer() : openDrawer()));
  ui.drawerClose.addEventListener("click", closeDrawer);
  ui.backdrop.addEventListener("click", closeDrawer);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && drawerOpen()) {
      event.preventDefault();
      closeDrawer();
    }
  });
  narrow.addEventListener("change", closeDrawer);

  setInterval(relabelDays, 60 * 1000);
  state.labelledToday = dayOf(new Date());
  ui.nickInput.value = state.nick;
  ui.roomInput.value = state.room;
  if (SIGN_IN) {
    const cognito = cognitoEndpoint();
    auth.endpoint = cognito.url || "";
    auth.problem = cognito.problem || "";
    showSignIn();
  } else {
    connect();
  }
})();
