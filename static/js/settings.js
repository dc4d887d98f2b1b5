// What the page's link and this tab's storage say: read once, never changed.
export const params = new URLSearchParams(location.search);
export const store = window.sessionStorage;
export const HISTORY_PAGE = 50;

// Served by the local gateway, the page finds beside itself what its link does not say:
// local-gateway.json names the stage and the Cognito endpoint and app client (if any).
let served = {};

export async function readServedConfig() {
  if (params.get("ws") || !location.protocol.startsWith("http")) return;
  try {
    const answer = await fetch("local-gateway.json", { cache: "no-store", credentials: "omit" });
    if (answer.ok) served = await answer.json();
  } catch {
    served = {};
  }
  if (!served || typeof served !== "object") served = {};
}

export function servedConfig() {
  return served;
}
