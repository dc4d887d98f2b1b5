// The drawer (narrow screens): the sidebar slid over the chat. Open, it is modal: the
// rest of the page is inert until it closes. Its state is the body's class.
import { narrow, ui } from "./dom.js";
import { requestRooms } from "./rooms.js";

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

export function closeDrawer() {
  if (!drawerOpen()) return;
  document.body.classList.remove("drawer-open");
  ui.drawerToggle.setAttribute("aria-expanded", "false");
  ui.backdrop.hidden = true;
  ui.bar.inert = false;
  ui.main.inert = false;
  if (narrow.matches) ui.drawerToggle.focus();
}

export function initDrawer() {
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
}
