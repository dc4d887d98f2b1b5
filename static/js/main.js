// The demo chat page: one websocket, the protocol of docs/protocol.md, no build step.
// Every string from the server is rendered with textContent, never as HTML.
// docs/page.md describes what the page does and why. This module only wires the others:
// each owns its part of the page's state and changes it through its own functions.
import { initAttachments } from "./attachments.js";
import { discoverSignIn, initSignIn } from "./auth.js";
import { initComposer } from "./composer.js";
import { initMentions } from "./mentions.js";
import { initConversation } from "./conversation.js";
import { initDrawer } from "./drawer.js";
import { initLog } from "./log.js";
import { initNotify } from "./notify.js";
import { initPeople } from "./people.js";
import { initRooms } from "./rooms.js";
import { readServedConfig } from "./settings.js";
import { connect } from "./socket.js";
import { initSwitcher } from "./switcher.js";

initLog();
initPeople();
initRooms();
// Before the composer: while the list of names is open, its keys pick a name.
initMentions();
initComposer();
initConversation();
initDrawer();
initSwitcher();
initNotify();
initAttachments();
initSignIn();
await readServedConfig();
discoverSignIn();
connect();
