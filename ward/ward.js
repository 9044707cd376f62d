// What the ward board's pages share: signing in, the API, the ward's event stream and the NEWS2
// colours (doc/ward.md). No framework: a few functions the browser has, and oidc-client-ts to sign in.

const TOKEN_KEY = "painkiller.token";
let current = null;

// Who is signed in, as a bearer token; signs in first when needed. Two ways (doc/ward.md):
// - OpenID Connect, authorization code with PKCE (oidc-client-ts, vendored), against the
//   provider /ward/config.json names; the tokens stay in this tab's sessionStorage.
// - For development, `make up` prints /ward/#access_token=...: the token is kept in
//   sessionStorage and taken out of the address bar. A fragment never reaches the server.
// Resolves to null when neither is possible; never resolves while the browser leaves to sign in.
export async function signIn() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const given = fragment.get("access_token");
  if (given) {
    sessionStorage.setItem(TOKEN_KEY, given);
    history.replaceState(null, "", location.pathname + location.search);
  }
  current = sessionStorage.getItem(TOKEN_KEY);
  if (current) return current;
  const manager = await openId();
  if (!manager) return null;
  const user = await manager.getUser();
  if (user && !user.expired) return (current = user.access_token);
  await manager.signinRedirect({ state: location.pathname + location.search });
  return new Promise(() => {}); // the browser is on its way to the provider
}

export function token() {
  return current;
}

// The OpenID provider's client, if one is configured (else null: development sign-in only).
export async function openId() {
  const response = await fetch("/ward/config.json");
  const config = response.ok ? await response.json() : {};
  if (!config.issuer) return null;
  return new globalThis.oidc.UserManager({
    authority: config.issuer,
    client_id: config.client_id,
    redirect_uri: `${location.origin}/ward/callback.html`,
    response_type: "code",
    scope: config.scope,
    userStore: new globalThis.oidc.WebStorageStateStore({ store: sessionStorage }),
  });
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `HTTP ${status}`);
    this.status = status;
  }
}

export async function api(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${token()}` } });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
  return response.json();
}

export const BANDS = { high: "High", medium: "Medium", low_medium: "Low-medium", low: "Low" };

// The NEWS2 parameters in the RCP chart's order, with the field of the reading each scores.
export const PARAMETERS = [
  ["respiration_rate", "respiratory_rate_bpm", "Resp. rate"],
  ["spo2", "spo2_percent", "SpO2"],
  ["air_or_oxygen", "on_oxygen", "Air or O2"],
  ["systolic_bp", "systolic_mmhg", "Systolic BP"],
  ["pulse", "heart_rate_bpm", "Pulse"],
  ["consciousness", "consciousness", "ACVPU"],
  ["temperature", "temperature_c", "Temp."],
];

const ACVPU = { alert: "A", confusion: "C", voice: "V", pain: "P", unresponsive: "U" };

export function shown(field, value) {
  if (value === undefined || value === null) return "–";
  if (field === "on_oxygen") return value ? "O2" : "Air";
  if (field === "consciousness") return ACVPU[value] || value;
  return String(value);
}

// A cell coloured by its sub-score, the score also written for those who cannot tell colours.
export function scored(cell, score) {
  cell.className = score === undefined || score === null ? "score-none" : `score-${score}`;
  if (score) cell.title = `NEWS2 sub-score ${score}`;
}

// The page's message to the nurse (its role=alert element), or none.
export function say(text) {
  const message = document.querySelector("#message");
  message.textContent = text;
  message.hidden = !text;
}

export function element(tag, attributes = {}, ...children) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  made.append(...children);
  return made;
}

// A ward's server-sent events, read with fetch (EventSource cannot send the Authorization
// header), resumed with Last-Event-ID; `live(false)` when the stream drops or goes silent past
// its heartbeats, then it reconnects.
export function listen(path, onEvent, live) {
  let lastId = null;
  const connect = async () => {
    const aborter = new AbortController();
    let watchdog = null;
    const quiet = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => aborter.abort(), 40000);
    };
    try {
      const headers = { Authorization: `Bearer ${token()}` };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(path, { headers, signal: aborter.signal });
      if (!response.ok) throw new ApiError(response.status, {});
      live(true);
      quiet();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        quiet();
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const event = parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (event.id) lastId = event.id;
          if (event.data) onEvent(event);
        }
      }
    } catch (error) {
      // dropped, refused or silent: said by the banner, then tried again
    } finally {
      clearTimeout(watchdog);
    }
    live(false);
    setTimeout(connect, 2000);
  };
  connect();
}

function parse(block) {
  const event = {};
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, "");
    if (name === "id") event.id = value;
    if (name === "event") event.kind = value;
    if (name === "data") event.data = JSON.parse(value);
  }
  return event;
}

export function since(moment) {
  const minutes = Math.round((Date.now() - new Date(moment).getTime()) / 60000);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.floor(hours / 24)} days ago`;
}

export function clock(moment) {
  return new Date(moment).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
