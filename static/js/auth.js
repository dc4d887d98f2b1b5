// Sign-in with Amazon Cognito (docs/page.md, Sign-in): InitiateAuth over fetch, no SDK:
// USER_PASSWORD_AUTH with the form, REFRESH_TOKEN_AUTH before the access token expires.
// Each new access token is a new connection: the server checks the token at `$connect`
// only. Owns the tokens, in memory only.
import { ui } from "./dom.js";
import { closeDrawer } from "./drawer.js";
import { forgetView } from "./log.js";
import { emptyOutbox, forgetOwn } from "./outbox.js";
import { forgetPeople, named } from "./people.js";
import { forgetRooms } from "./rooms.js";
import { params, servedConfig } from "./settings.js";
import {
  abandon,
  connect,
  disconnect,
  hasSocket,
  reconnectNow,
  scheduleReconnect,
  setStatus,
} from "./socket.js";

// Tokens are refreshed at 80 % of their lifetime (at most a minute before they expire).
const REFRESH_AT = 0.8;
const REFRESH_LEAD_S = 60;
const REFRESH_RETRY_MS = 30000;

// Sign-in state, in memory only: never in storage or cookies (docs/page.md).
const auth = {
  // "none" (no sign-in offered), "optional" (a guest chats at once; "Sign in" upgrades
  // the page) or "required" (the form first: a link's `client`, or a chat that refused
  // a guest).
  mode: "none",
  client: "",
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

const GUEST_REFUSED = "This chat asks you to sign in";

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
  return checkedEndpoint(given);
}

function checkedEndpoint(given) {
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

// A socket that never opened: the server refused the token (401), or it is down.
// One refresh and one more try; then the sign-in form, never a loop on a dead token.
export async function refused(socket) {
  if (!abandon(socket)) return;
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
  disconnect("signed out");
  forgetPeople();
  forgetOwn();
  forgetRoom();
  showSignIn(note);
}

// What the last person saw stays out of sight of the next one.
function forgetRoom() {
  emptyOutbox();
  forgetView();
  forgetRooms();
  ui.roomTitle.textContent = "";
}

// The form: in place of the chat (signed out), or `over` it while a guest's page signs in
// (the chat stays as it is beneath, connected, and comes back where it was).
function showSignIn(note = "", over = false) {
  closeDrawer();
  if (over) {
    document.body.classList.add("signing-in");
    ui.layout.inert = true;
    ui.bar.inert = true;
  } else {
    document.body.classList.add("signed-out");
    ui.layout.hidden = true;
    ui.account.hidden = true;
    ui.guest.hidden = true;
    ui.roomTitle.textContent = "";
    setStatus("signed-out", "signed out");
  }
  ui.signin.hidden = false;
  ui.signinGuest.hidden = auth.mode !== "optional";
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
  document.body.classList.remove("signed-out", "signing-in");
  ui.signin.hidden = true;
  ui.layout.hidden = false;
  ui.layout.inert = false;
  ui.bar.inert = false;
}

// Signed in, the name is the username (the server's, once joined): no nickname form. A
// guest where sign-in is offered sees "Sign in" instead.
export function showAccount(name = auth.user) {
  const signedInNow = signedIn();
  ui.guest.hidden = signedInNow || auth.mode === "none";
  ui.nickForm.hidden = signedInNow;
  ui.account.hidden = !signedInNow;
  if (!signedInNow) return;
  ui.accountName.replaceChildren(...named(name));
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
  showAccount();
  ui.input.focus();
  // A guest's socket makes way for one that carries the token: same room, same log.
  reconnectNow();
}

// The token a new socket carries, or "" (a guest); null: none yet, the form is shown.
// A token past its time is renewed first (a laptop's lid closed past the refresh).
export function tokenForSocket() {
  if (!auth.access) {
    if (auth.mode !== "required") return "";
    showSignIn();
    return null;
  }
  if (Date.now() >= auth.expiresAt) {
    refreshThen(connect);
    return null;
  }
  return auth.access;
}

// A socket opened: the token was taken, so the next refusal is a new story.
export function socketOpened() {
  auth.refused = false;
}

export function initSignIn() {
  ui.signinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    signIn();
  });
  ui.signOut.addEventListener("click", () => signOut(SIGNED_OUT));
  ui.signInOpen.addEventListener("click", () => showSignIn("", true));
  ui.signinGuest.addEventListener("click", continueAsGuest);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("signing-in")) {
      event.preventDefault();
      continueAsGuest();
    }
  });
}

// How this page signs in: a link's `client` (and `cognito`) asks for sign-in first, as
// `make deploy` and the banner's `sign-in page` link it; served by the local gateway, its
// `local-gateway.json` names the Cognito endpoint and app client, and a guest may chat.
export function discoverSignIn() {
  if (params.get("client")) {
    const cognito = cognitoEndpoint();
    Object.assign(auth, { mode: "required", client: params.get("client") });
    auth.endpoint = cognito.url || "";
    auth.problem = cognito.problem || "";
    return;
  }
  const cognito = servedConfig().cognito;
  if (!cognito || typeof cognito.client !== "string" || typeof cognito.endpoint !== "string") return;
  const checked = checkedEndpoint(cognito.endpoint);
  if (!checked.url) return;
  Object.assign(auth, { mode: "optional", client: cognito.client, endpoint: checked.url });
  showAccount();
}

// The Cognito groups of the access token (`admins` moderate every room): only what the
// page offers; the server checks the token itself.
export function accessGroups() {
  try {
    const payload = auth.access.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const groups = JSON.parse(atob(payload))["cognito:groups"];
    return Array.isArray(groups) ? groups : [];
  } catch {
    return [];
  }
}

export function signedIn() {
  return Boolean(auth.access);
}

// A guest's socket that never opened, on a page that never got in: a chat that takes
// only signed-in people (AUTH=cognito) refuses guests at `$connect`. With sign-in at
// hand the page shows the form instead of reconnecting in vain; true if it did.
export function guestRefused() {
  if (auth.mode !== "optional") return false;
  auth.mode = "required";
  showSignIn(GUEST_REFUSED);
  return true;
}

// The form put away: the guest chats on (or again, after a sign-out).
function continueAsGuest() {
  document.body.classList.remove("signed-out", "signing-in");
  ui.signin.hidden = true;
  ui.layout.hidden = false;
  ui.layout.inert = false;
  ui.bar.inert = false;
  showAccount();
  if (hasSocket()) {
    ui.drawerToggle.focus();
    return;
  }
  ui.input.focus();
  connect();
}
