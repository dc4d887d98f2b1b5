// Keyboard between rooms: Alt+Up and Alt+Down step through the sidebar's rooms, Ctrl+K
// (Cmd+K) opens a quick switcher over every room one may open. Owns the switcher's
// filter and selection.
import { ui } from "./dom.js";
import { pickRoom, stepRoom, switchableRooms } from "./rooms.js";

const switcher = { matches: [], selected: 0 };

function openSwitcher() {
  if (ui.switcher.open) return;
  ui.switcherInput.value = "";
  filter();
  ui.switcher.showModal();
  ui.switcherInput.focus();
}

// Rooms whose name (or a DM's person) holds what was typed, case-folded.
function filter() {
  const typed = ui.switcherInput.value.trim().replace(/^[#@]/, "").toLowerCase();
  switcher.matches = switchableRooms().filter(
    (room) => room.name.toLowerCase().includes(typed) || room.label.toLowerCase().includes(typed),
  );
  switcher.selected = 0;
  render();
}

function render() {
  ui.switcherList.replaceChildren(
    ...switcher.matches.map((room, index) => {
      const option = document.createElement("li");
      option.id = `switch-${index}`;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", String(index === switcher.selected));
      option.textContent = room.label;
      option.addEventListener("click", () => choose(index));
      return option;
    }),
  );
  ui.switcherEmpty.hidden = switcher.matches.length > 0;
  const selected = switcher.matches.length ? `switch-${switcher.selected}` : "";
  ui.switcherInput.setAttribute("aria-activedescendant", selected);
}

function choose(index) {
  const room = switcher.matches[index];
  ui.switcher.close();
  if (room) pickRoom(room.name);
  ui.input.focus();
}

export function initSwitcher() {
  ui.switcherInput.addEventListener("input", filter);
  ui.switcherInput.addEventListener("keydown", (event) => {
    const count = switcher.matches.length;
    if ((event.key === "ArrowDown" || event.key === "ArrowUp") && count) {
      event.preventDefault();
      switcher.selected = (switcher.selected + (event.key === "ArrowDown" ? 1 : -1) + count) % count;
      render();
    } else if (event.key === "Enter") {
      event.preventDefault();
      choose(switcher.selected);
    }
  });
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && !event.altKey && event.key.toLowerCase() === "k") {
      event.preventDefault();
      openSwitcher();
    } else if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      if (ui.switcher.open) return;
      event.preventDefault();
      stepRoom(event.key === "ArrowUp" ? -1 : 1);
    }
  });
}
