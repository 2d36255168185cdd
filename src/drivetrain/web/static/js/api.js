// The console's one door to the API: sign-in, authenticated JSON calls, change streams.
// The bearer token lives in this tab's sessionStorage and goes only in the Authorization
// header: the console holds no cookie, so no other site can act with it.

const TOKEN_KEY = 'drivetrain.console.token';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const session = {
  get token() {
    const raw = sessionStorage.getItem(TOKEN_KEY);
    if (!raw) return null;
    const saved = JSON.parse(raw);
    if (Date.now() >= saved.expiresAtMs) {
      sessionStorage.removeItem(TOKEN_KEY);
      return null;
    }
    return saved.accessToken;
  },
  save(response) {
    // Renew a little early so a request never races the expiry.
    const expiresAtMs = Date.now() + Math.max(0, response.expires_in - 30) * 1000;
    sessionStorage.setItem(TOKEN_KEY, JSON.stringify({ accessToken: response.access_token, expiresAtMs }));
  },
  clear() { sessionStorage.removeItem(TOKEN_KEY); },
};

async function problemOf(response) {
  try { return await response.json(); } catch { return { detail: `${response.status} ${response.statusText}` }; }
}

/** Exchange client credentials for a token (the OAuth2 client-credentials grant). */
export async function signIn(clientId, clientSecret) {
  const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret });
  const response = await fetch('/v1/auth/token', { method: 'POST', body });
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  session.save(await response.json());
}

/** `?a=1&b=x` from an object, leaving out null, undefined and '' (arrays repeat the key). */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== null && one !== undefined && one !== '') search.append(key, String(one));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function authHeaders(extra = {}) {
  const token = session.token;
  if (!token) {
    window.dispatchEvent(new Event('drivetrain:signed-out'));
    throw new ApiError(401, { detail: 'not signed in' });
  }
  return { Authorization: `Bearer ${token}`, ...extra };
}

/** Call the API; returns the JSON body, or the Response with `raw`. Throws ApiError. */
export async function api(path, { method = 'GET', body, headers = {}, raw = false, signal } = {}) {
  const init = { method, headers: authHeaders({ Accept: 'application/json', ...headers }), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers['Content-Type'] = 'application/json';
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    session.clear();
    window.dispatchEvent(new Event('drivetrain:signed-out'));
  }
  if (!response.ok) throw new ApiError(response.status, await problemOf(response));
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/**
 * Follow a server-sent event stream of the API until `signal` aborts, reconnecting when the
 * server ends it. EventSource cannot send a bearer token, so this reads the stream with fetch.
 * `onEvent(kind, data)` gets each event; `onState('live' | 'reconnecting' | message)`.
 */
export function follow(path, onEvent, { signal, onState = () => {} } = {}) {
  async function once() {
    const response = await fetch(path, { headers: authHeaders({ Accept: 'text/event-stream' }), signal });
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    onState('live');
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let kind = 'message';
        const data = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event:')) kind = line.slice(6).trim();
          else if (line.startsWith('data:')) data.push(line.slice(5).trim());
        }
        if (data.length) onEvent(kind, JSON.parse(data.join('\n')));
      }
    }
  }
  (async () => {
    while (!signal.aborted) {
      try {
        await once();
      } catch (error) {
        if (signal.aborted) return;
        onState(error instanceof ApiError ? error.message : 'reconnecting');
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return;
      }
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();
}
