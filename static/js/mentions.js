// `@` in the composer offers the shown room's signed-in members (the ones the server
// can mention): arrow keys move, Enter or Tab picks, Escape closes. Owns the list shown.
import { ui } from "./dom.js";
import { mentionable } from "./people.js";

const SHOWN_MAX = 8;

const offer = { names: [], active: 0, start: -1 };

// The `@word` just before the caret, if any: where it starts and what is typed.
function typedMention() {
  const caret = ui.input.selectionStart ?? ui.input.value.length;
  const match = ui.input.value.slice(0, caret).match(/(?:^|\s)@([^\s@]*)$/);
  return match ? { start: caret - match[1].length - 1, typed: match[1].toLowerCase() } : null;
}

function update() {
  const typed = typedMention();
  const names = typed
    ? mentionable().filter((nick) => nick.toLowerCase().startsWith(typed.typed)).slice(0, SHOWN_MAX)
    : [];
  offer.names = names;
  offer.active = 0;
  offer.start = typed ? typed.start : -1;
  render();
}

function render() {
  const open = offer.names.length > 0;
  ui.mentionList.hidden = !open;
  ui.input.setAttribute("aria-expanded", String(open));
  ui.mentionList.replaceChildren(
    ...offer.names.map((nick, index) => {
      const item = document.createElement("li");
      item.id = `mention-${index}`;
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", String(index === offer.active));
      item.textContent = `@${nick}`;
      item.addEventListener("pointerdown", (event) => {
        event.preventDefault(); // the composer keeps the focus
        pick(index);
      });
      return item;
    }),
  );
  if (open) ui.input.setAttribute("aria-activedescendant", `mention-${offer.active}`);
  else ui.input.removeAttribute("aria-activedescendant");
}

function close() {
  offer.names = [];
  render();
}

function pick(index) {
  const value = ui.input.value;
  const caret = ui.input.selectionStart ?? value.length;
  const inserted = `@${offer.names[index]} `;
  ui.input.value = value.slice(0, offer.start) + inserted + value.slice(caret);
  const end = offer.start + inserted.length;
  ui.input.setSelectionRange(end, end);
  close();
}

export function initMentions() {
  ui.input.addEventListener("input", update);
  ui.input.addEventListener("blur", close);
  ui.input.addEventListener("keydown", (event) => {
    if (!offer.names.length) return;
    const step = { ArrowDown: 1, ArrowUp: -1 }[event.key];
    if (step) offer.active = (offer.active + step + offer.names.length) % offer.names.length;
    else if (event.key === "Enter" || event.key === "Tab") pick(offer.active);
    else if (event.key === "Escape") close();
    else return;
    if (step) render();
    // The composer does not also send, recall or cancel an edit.
    event.preventDefault();
    event.stopImmediatePropagation();
  });
}
