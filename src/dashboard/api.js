// The admin API client: the token lives in this tab's session storage and travels only as an
// `Authorization: Bearer` header to the same origin (never in a URL or a cookie); every failure
// becomes an ApiError carrying the relay's own message, for the page to show.
import { errorMessage } from './shape.js';

const TOKEN_KEY = 'llm-relay.admin-token';

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  },
  signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** One admin API call; resolves to the parsed JSON answer or throws an ApiError. */
export async function api(method, path, body, token = session.token) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch (e) {
    throw new ApiError(0, `Could not reach the relay: ${e.message}.`);
  }
  const text = await res.text();
  if (!res.ok) throw new ApiError(res.status, errorMessage(res.status, text));
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiError(res.status, `The relay answered ${path} with something that is not JSON.`);
  }
}
