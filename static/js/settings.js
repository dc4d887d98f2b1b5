// What the page's link and this tab's storage say: read once, never changed.
export const params = new URLSearchParams(location.search);
export const store = window.sessionStorage;
export const HISTORY_PAGE = 50;
// Sign-in (docs/page.md): `?client=` names a Cognito app client and turns it on.
export const SIGN_IN = Boolean(params.get("client"));
