// REST client: JSON in and out, the API key from this tab's session storage, errors as
// the API words them.

const KEY_STORAGE = "matching.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || `HTTP_${status}`;
    this.fields = error.fields || {};
  }

  /** "message" then one "field: rule" line per field, exactly as the API sent them. */
  lines() {
    const lines = [];
    for (const [field, problems] of Object.entries(this.fields)) {
      for (const problem of [].concat(problems)) {
        lines.push(typeof problem === "string" ? `${field}: ${problem}`
          : `${field}: ${JSON.stringify(problem)}`);
      }
    }
    return [this.message, ...lines];
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** Listeners told about every 401 (the page then shows the API-key field). */
export const onUnauthorized = [];

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = apiKey();
  if (key) headers["X-API-Key"] = key;
  const response = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401) onUnauthorized.forEach((fn) => fn(error));
    throw error;
  }
  return data;
}

export const get = (path) => api("GET", path);

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) search.set(name, value);
  }
  return search.toString();
}
