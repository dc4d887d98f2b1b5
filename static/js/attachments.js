// Files and images (docs/page.md, Files and images; docs/protocol.md, Files and images).
// A file goes from the browser straight to S3 with the presigned POST that `upload`
// answers, then a message names its key. Owns the uploads in flight (one at a time, the
// others queued) and the download URLs asked for the messages shown.
import { ui } from "./dom.js";
import { shownRoom, systemLine } from "./log.js";
import { sendMessage, withdraw } from "./outbox.js";
import { currentRoom } from "./rooms.js";
import { isReady, send } from "./socket.js";

// The server's defaults (MAX_IMAGE_BYTES, MAX_FILE_BYTES): checked here first so that a
// file too big is refused in words before a byte goes anywhere; the server checks again.
const MAX_IMAGE_BYTES = 10 * 1024 * 1024;
const MAX_FILE_BYTES = 25 * 1024 * 1024;
// What an image must start with: the server checks the same first bytes.
const SIGNATURES = {
  "image/png": { label: "PNG", test: (b) => starts(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) },
  "image/jpeg": { label: "JPEG", test: (b) => starts(b, [0xff, 0xd8, 0xff]) },
  "image/gif": { label: "GIF", test: (b) => starts(b, [0x47, 0x49, 0x46, 0x38]) },
  "image/webp": { label: "WebP", test: (b) => starts(b, [0x52, 0x49, 0x46, 0x46]) && text(b, 8, 12) === "WEBP" },
};
// Previews fit this box (CSS pixels); the message's width and height give the shape.
const PREVIEW_WIDTH = 320;
const PREVIEW_HEIGHT = 240;
// Download URLs live 5 minutes (DOWNLOAD_URL_SECONDS): one older than this is asked again.
const URL_FRESH_MS = 4 * 60 * 1000;
// A download asked for and not answered yet is not asked again this soon.
const ASK_AGAIN_MS = 10 * 1000;
const SVG = "http://www.w3.org/2000/svg";
// An `upload` unanswered this long (the socket dropped meanwhile) is given up, in words.
const ANSWER_TIMEOUT_MS = 20 * 1000;

const files = {
  queue: [],
  // The upload in flight: { file, room, width, height, stage: "asking" | "sending" | "posting", id }.
  current: null,
  // Download URLs by message id: { url, at }; asks in flight by message id: the time.
  urls: new Map(),
  asked: new Map(),
  // Rows with an attachment on screen (IntersectionObserver): their URLs are kept fresh.
  visible: new Set(),
  observer: null,
  progress: null,
  progressLabel: null,
  progressBar: null,
};

function starts(bytes, prefix) {
  return prefix.every((value, index) => bytes[index] === value);
}

function text(bytes, from, to) {
  return String.fromCharCode(...bytes.slice(from, to));
}

export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} byte${bytes === 1 ? "" : "s"}`;
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

// Files picked, pasted or dropped: each checked, then uploaded in turn.
function take(list) {
  for (const file of list) files.queue.push(file);
  next();
}

async function next() {
  if (files.current || !files.queue.length) return;
  const file = files.queue.shift();
  files.current = { file, room: currentRoom() || shownRoom(), stage: "checking" };
  const problem = await check(file);
  if (problem) return finish(problem);
  if (!isReady()) return finish(`Not connected: ${file.name} was not sent`);
  const current = files.current;
  current.stage = "asking";
  showProgress(`Uploading ${file.name}…`, 0);
  send({ action: "upload", room: current.room, name: file.name, type: typeOf(file), size: file.size });
  current.timer = setTimeout(() => {
    if (files.current === current && current.stage === "asking") {
      finish(`${file.name} was not sent: the chat did not answer. Try again`);
    }
  }, ANSWER_TIMEOUT_MS);
}

function typeOf(file) {
  return (file.type || "application/octet-stream").toLowerCase();
}

// Too big, or an image that is not what its type says: the reason in words, else "".
async function check(file) {
  const type = typeOf(file);
  const image = type in SIGNATURES;
  const limit = image ? MAX_IMAGE_BYTES : MAX_FILE_BYTES;
  if (!file.size) return `${file.name} is empty: nothing was sent`;
  if (file.size > limit) {
    const kind = image ? "images" : "files";
    return `${file.name} is too big (${formatSize(file.size)}): ${kind} can be up to ${formatSize(limit)}. Nothing was sent`;
  }
  if (!image) return "";
  const signature = SIGNATURES[type];
  const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
  const wrong = `${file.name} is not the ${signature.label} image its type says: nothing was sent`;
  if (!signature.test(head)) return wrong;
  try {
    const bitmap = await createImageBitmap(file);
    files.current.width = bitmap.width;
    files.current.height = bitmap.height;
    bitmap.close();
  } catch {
    return wrong;
  }
  return "";
}

// The `upload` answer: the presigned POST, sent with upload progress.
export function receiveUpload(frame) {
  const current = files.current;
  if (!current || current.stage !== "asking") return;
  clearTimeout(current.timer);
  current.stage = "sending";
  const form = new FormData();
  for (const [name, value] of Object.entries(frame.fields || {})) form.append(name, value);
  form.append("file", current.file);
  const request = new XMLHttpRequest();
  request.open("POST", frame.url);
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) showProgress(`Uploading ${current.file.name}…`, event.loaded / event.total);
  });
  request.addEventListener("load", () => {
    if (request.status < 200 || request.status > 299) {
      finish(`Upload of ${current.file.name} failed (the file storage answered ${request.status}): nothing was sent. Try again`);
      return;
    }
    showProgress(`Posting ${current.file.name}…`, 1);
    current.stage = "posting";
    const extra = { room: current.room, attachment: frame.key };
    if (current.width && current.height) Object.assign(extra, { width: current.width, height: current.height });
    const attachment = { name: frame.name, size: current.file.size, type: typeOf(current.file) };
    current.id = sendMessage("", extra, { ...attachment, width: current.width, height: current.height });
    finish();
  });
  request.addEventListener("error", () => {
    finish(`Upload of ${current.file.name} failed: the file storage could not be reached. Nothing was sent; try again`);
  });
  request.send(form);
}

function finish(problem) {
  if (problem) systemLine(problem, "error");
  if (files.current) clearTimeout(files.current.timer);
  files.lastPosted = files.current && files.current.id ? files.current : null;
  files.current = null;
  hideProgress();
  next();
}

// An error while an upload is asked for, or just after its message went out (errors
// carry no request id: the one in flight is the one refused). True when it was ours.
export function attachmentError(frame) {
  const current = files.current;
  if (current && current.stage === "asking") {
    const words = {
      too_large: `${current.file.name} is too big for this chat: ${frame.message || ""}. Nothing was sent`,
      not_in_room: `${current.file.name} was not sent: you are not a member of this room`,
    };
    finish(words[frame.code] || `${current.file.name} was not sent: ${frame.message || frame.code}`);
    return true;
  }
  const posted = files.lastPosted;
  if (frame.code === "invalid_attachment" && posted) {
    withdraw(posted.id);
    files.lastPosted = null;
    systemLine(`${posted.file.name} was refused: ${frame.message || "not what was uploaded"}. Nothing was posted`, "error");
    return true;
  }
  const gone = frame.code === "not_found" && oldestAsk();
  if (gone) {
    files.asked.delete(gone);
    for (const box of boxesOf(gone)) {
      box.dataset.state = "gone";
      box.querySelector(".file-note").textContent = "no longer available";
    }
    return true;
  }
  return false;
}

// The oldest download still awaited (asked within ASK_AGAIN_MS); older asks are forgotten.
function oldestAsk() {
  for (const [id, at] of files.asked) {
    if (Date.now() - at < ASK_AGAIN_MS) return id;
    files.asked.delete(id);
  }
  return "";
}

function showProgress(label, fraction) {
  files.progress.hidden = false;
  files.progressLabel.textContent = label;
  files.progressBar.value = Math.round(fraction * 100);
}

function hideProgress() {
  files.progress.hidden = true;
}

// A message's attachment: a sized preview for an image, else name, size and a link.
// The URLs come later (`download`), asked for when the row is on screen.
export function renderAttachment(message, row) {
  const attachment = message.attachment;
  const box = document.createElement("div");
  box.className = "attachment";
  const link = document.createElement("a");
  link.className = "file-link";
  link.rel = "noopener";
  const image = attachment.type in SIGNATURES;
  if (image) {
    box.classList.add("image");
    link.target = "_blank";
    link.setAttribute("aria-label", `${attachment.name} (open the full image)`);
    const frame = document.createElement("span");
    frame.className = "preview";
    const [width, height] = previewSize(attachment.width, attachment.height);
    frame.style.width = `${width}px`;
    frame.style.aspectRatio = `${width} / ${height}`;
    const img = document.createElement("img");
    img.alt = attachment.name;
    img.addEventListener("error", () => {
      if (img.getAttribute("src")) ask(row.dataset.id, true);
    });
    frame.append(img);
    link.append(frame);
  } else {
    link.setAttribute("download", attachment.name);
    link.textContent = attachment.name;
  }
  const note = document.createElement("span");
  note.className = "file-note";
  note.textContent = image
    ? `${attachment.name}, ${formatSize(attachment.size)}`
    : `${formatSize(attachment.size)}, ${attachment.type}`;
  box.append(link, " ", note);
  if (files.urls.has(message.id)) fill(box, files.urls.get(message.id).url);
  files.observer.observe(row);
  return box;
}

function previewSize(width, height) {
  if (!(width > 0 && height > 0)) return [PREVIEW_WIDTH, PREVIEW_HEIGHT];
  const scale = Math.min(1, PREVIEW_WIDTH / width, PREVIEW_HEIGHT / height);
  return [Math.max(1, Math.round(width * scale)), Math.max(1, Math.round(height * scale))];
}

function boxesOf(id) {
  return ui.log.querySelectorAll(`li[data-id="${CSS.escape(id)}"] .attachment`);
}

function fill(box, url) {
  const link = box.querySelector(".file-link");
  link.href = url;
  const img = box.querySelector("img");
  if (img && img.getAttribute("src") !== url) img.src = url;
}

// Ask for a message's download URL unless a fresh one is known or one was just asked for.
function ask(id, force = false) {
  if (!id || !isReady()) return;
  const known = files.urls.get(id);
  if (!force && known && Date.now() - known.at < URL_FRESH_MS) return;
  const asked = files.asked.get(id);
  if (asked && Date.now() - asked < ASK_AGAIN_MS) return;
  files.asked.set(id, Date.now());
  send({ action: "download", room: shownRoom(), id });
}

// The `download` answer: the message's links and preview get the URL.
export function receiveDownload(frame) {
  files.asked.delete(frame.id);
  files.urls.set(frame.id, { url: frame.url, at: Date.now() });
  for (const box of boxesOf(frame.id)) fill(box, frame.url);
}

function seen(entries) {
  for (const entry of entries) {
    const row = entry.target;
    if (entry.isIntersecting && row.isConnected) {
      files.visible.add(row);
      ask(row.dataset.id);
    } else {
      files.visible.delete(row);
      if (!row.isConnected) files.observer.unobserve(row);
    }
  }
}

// URLs of rows on screen are asked again before they expire; rows gone are forgotten.
function refresh() {
  for (const row of files.visible) {
    if (row.isConnected) ask(row.dataset.id);
    else {
      files.visible.delete(row);
      files.observer.unobserve(row);
    }
  }
}

// A paperclip drawn, not an emoji: not every computer has an emoji font.
function paperclip() {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("class", "icon");
  const path = document.createElementNS(SVG, "path");
  path.setAttribute("d", "M16.5 6.5 8.6 14.4a2 2 0 0 0 2.8 2.8l8-8a4 4 0 0 0-5.6-5.6l-8 8a6 6 0 0 0 8.5 8.5l6.2-6.2");
  svg.append(path);
  return svg;
}

function attachControls() {
  const input = document.createElement("input");
  input.type = "file";
  input.multiple = true;
  input.hidden = true;
  input.id = "file-input";
  input.setAttribute("aria-label", "Files to attach");
  input.addEventListener("change", () => {
    take([...input.files]);
    input.value = "";
  });
  const button = document.createElement("button");
  button.type = "button";
  button.id = "attach";
  button.className = "icon-button attach";
  button.setAttribute("aria-label", "Attach a file");
  button.title = "Attach a file (or paste, or drop it here)";
  button.append(paperclip());
  button.addEventListener("click", () => input.click());
  ui.composer.prepend(button, input);

  const progress = document.createElement("div");
  progress.className = "upload-progress";
  progress.setAttribute("role", "status");
  progress.hidden = true;
  const label = document.createElement("span");
  label.id = "upload-label";
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  bar.setAttribute("aria-labelledby", "upload-label");
  progress.append(label, bar);
  ui.composer.before(progress);
  Object.assign(files, { progress, progressLabel: label, progressBar: bar });
}

export function initAttachments() {
  files.observer = new IntersectionObserver(seen, { root: ui.scroller, rootMargin: "200px 0px" });
  setInterval(refresh, 30 * 1000);
  attachControls();
  ui.input.addEventListener("paste", (event) => {
    const pasted = event.clipboardData ? [...event.clipboardData.files] : [];
    if (!pasted.length) return;
    event.preventDefault();
    take(pasted);
  });
  const hasFiles = (event) => event.dataTransfer && [...event.dataTransfer.types].includes("Files");
  ui.main.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    ui.main.classList.add("dropping");
  });
  ui.main.addEventListener("dragleave", (event) => {
    if (!ui.main.contains(event.relatedTarget)) ui.main.classList.remove("dropping");
  });
  ui.main.addEventListener("drop", (event) => {
    ui.main.classList.remove("dropping");
    if (!hasFiles(event)) return;
    event.preventDefault();
    take([...event.dataTransfer.files]);
  });
}
