// Trusted Identity browser client: starts a session for a user or a visitor.
//
// A static ES module, no build step:
//
//   import { startSession, TrustedIdentityError } from "/static/trusted_identity/client.js";
//   const session = await startSession();   // reads {% trusted_identity_config "web" %}
//
// It POSTs to the session endpoint (CONTRACT section 4) with the platform's API
// key; on 403 signature_invalid it fetches a fresh signature from the sign
// endpoint once (same-origin credentials) and retries; on 429 it waits
// Retry-After (capped) and retries a bounded number of times. Every failure is a
// TrustedIdentityError carrying the contract's error code. Types: client.d.ts.
//
// The expiring form (CONTRACT sections 9 and 10): with `form: "token"` (an option, or
// the config of {% trusted_identity_config form="token" %}, which a platform that takes
// the site's public-key tokens gets by default) the sign endpoint is asked for tokens
// (`&form=token`: HS256 with the secret, or signed with the site's private key; the
// client reads neither signature), and so is it once the sign endpoint has answered a
// token with its `expiresAt` (a page rendered before its platform moved to public
// keys only). A token is refreshed before it is sent when
// less than max(60 s, 10% of its lifetime) of it remains, but never in its first
// half (a token shorter than two minutes is used for half its life). Its times come
// from its own `iat`/`exp` (else `expiresAt`); for a token the sign endpoint gave,
// the difference between its `iat` and this machine's clock is taken as the
// server's clock offset, so a wrong local clock neither sends expired tokens nor
// refreshes at every start. The freshest token per sign endpoint and user is kept
// in memory for the page's later starts. No timer runs: an idle page asks nothing.

export const SDK_VERSION = "0.1.0";

const DEFAULT_PLATFORM = "web";
const DEFAULT_MAX_RETRIES = 2;
const DEFAULT_MAX_RETRY_AFTER = 30; // seconds
const PRINTABLE_ASCII_32 = /^[\x20-\x7e]{1,32}$/;
const TOKEN = "token";
const REFRESH_MARGIN_MIN = 60_000; // ms: refresh when less than this remains...
const REFRESH_MARGIN_SHARE = 0.1; // ...or this share of the lifetime, whichever is larger
const TOKEN_SHAPE = /^[A-Za-z0-9_-]+\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]+$/;

/** The freshest token known per sign endpoint and user: {signed, exp, refreshAt, offset}. */
const tokens = new Map();

/** An error of the session or sign endpoint, or of the client itself. */
export class TrustedIdentityError extends Error {
  constructor(code, status, message, { retryAfter = null, cause = undefined } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "TrustedIdentityError";
    this.code = code; // the contract's code, or network_error, invalid_response, ...
    this.status = status; // the HTTP status; 0 when there was no HTTP answer
    this.retryAfter = retryAfter; // seconds, for rate_limited
  }
}

/** The JSON config {% trusted_identity_config %} rendered, by platform kind or element id. */
export function readConfig(platformOrId = DEFAULT_PLATFORM, root = globalThis.document) {
  if (!root || typeof root.getElementById !== "function") return null;
  const element =
    root.getElementById(`trusted-identity-${platformOrId}`) || root.getElementById(platformOrId);
  if (!element) return null;
  try {
    const config = JSON.parse(element.textContent);
    return config && typeof config === "object" ? config : null;
  } catch (error) {
    throw new TrustedIdentityError(
      "invalid_config",
      0,
      `the element #${element.id} does not hold JSON`,
      { cause: error },
    );
  }
}

function resolveOptions(options) {
  let config = options.config;
  if (config === undefined || typeof config === "string") {
    config = readConfig(config ?? options.platform ?? DEFAULT_PLATFORM) || {};
  }
  const merged = { ...config };
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined && name !== "config") merged[name] = value;
  }
  if (options.userId !== undefined && options.signed === undefined && config.userId !== options.userId) {
    delete merged.signed; // the page's signature is for another user
  }
  if (merged.visitor) {
    delete merged.userId;
    delete merged.signed;
  }
  if (typeof merged.apiKey !== "string" || !merged.apiKey) {
    throw new TrustedIdentityError(
      "invalid_config",
      0,
      "no apiKey: render {% trusted_identity_config %} in the page or pass apiKey",
    );
  }
  if (typeof merged.endpoint !== "string" || !merged.endpoint) {
    throw new TrustedIdentityError(
      "invalid_config",
      0,
      "no endpoint: render {% trusted_identity_config %} in the page or pass endpoint",
    );
  }
  if (merged.userId !== undefined && merged.userId !== null) {
    if (typeof merged.userId !== "string" || !merged.userId) {
      throw new TrustedIdentityError(
        "invalid_config",
        0,
        "userId must be a non-empty string (leave it out for a visitor)",
      );
    }
  } else {
    delete merged.userId;
    delete merged.signed;
  }
  return merged;
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

async function errorFrom(response, what) {
  const body = await readJson(response);
  const error = body && typeof body === "object" ? body.error : null;
  if (error && typeof error.code === "string") {
    return new TrustedIdentityError(error.code, response.status, String(error.message ?? ""), {
      retryAfter: retryAfterOf(response),
    });
  }
  return new TrustedIdentityError(
    "invalid_response",
    response.status,
    `${what} answered HTTP ${response.status} without the contract's JSON error`,
  );
}

function retryAfterOf(response) {
  const header = response.headers.get("Retry-After");
  if (header === null) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds;
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

async function send(fetchImpl, url, init, what) {
  try {
    return await fetchImpl(url, init);
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw new TrustedIdentityError(
      "network_error",
      0,
      `${what} could not be reached (offline, or refused by CORS: is this page's origin ` +
        `allowed for the platform?)`,
      { cause: error },
    );
  }
}

function sleep(seconds, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(resolve, seconds * 1000);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/** The sign endpoint's URL asking for `form`, unless it already names a form. */
function withForm(signEndpoint, form) {
  if (!form || /[?&]form=/.test(signEndpoint)) return signEndpoint;
  const hash = signEndpoint.indexOf("#");
  const path = hash === -1 ? signEndpoint : signEndpoint.slice(0, hash);
  const fragment = hash === -1 ? "" : signEndpoint.slice(hash);
  return `${path}${path.includes("?") ? "&" : "?"}form=${encodeURIComponent(form)}${fragment}`;
}

function tokenClaims(signed) {
  const match = TOKEN_SHAPE.exec(signed);
  if (!match) return null;
  try {
    const base64 = match[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/**
 * When a token must be refreshed: {signed, exp, refreshAt, offset} in milliseconds of the
 * server's clock (offset: server minus local), or null for what is not a token with an end.
 * `receivedAt` is the local time a sign endpoint answered, to measure the offset.
 */
function tokenTiming(signed, expiresAt, receivedAt = null) {
  if (typeof signed !== "string") return null;
  const claims = tokenClaims(signed);
  if (!claims) return null;
  const exp = Number.isFinite(claims.exp) ? claims.exp * 1000 : Date.parse(expiresAt ?? "");
  if (!Number.isFinite(exp)) return null;
  const iat = Number.isFinite(claims.iat) ? claims.iat * 1000 : null;
  const offset = receivedAt !== null && iat !== null ? iat - receivedAt : 0;
  let margin = REFRESH_MARGIN_MIN;
  if (iat !== null && exp > iat) {
    const lifetime = exp - iat;
    margin = Math.min(Math.max(REFRESH_MARGIN_MIN, lifetime * REFRESH_MARGIN_SHARE), lifetime / 2);
  }
  return { signed, exp, refreshAt: exp - margin, offset };
}

const stale = (timing) => !timing || Date.now() + timing.offset >= timing.refreshAt;

/**
 * The signed-in user's signature from the sign endpoint: {userId, platform, signed}, and
 * expiresAt for a token (`form: "token"` asks for one).
 */
export async function fetchSignature(signEndpoint, { fetch: fetchImpl, signal, form } = {}) {
  const doFetch = fetchImpl ?? globalThis.fetch.bind(globalThis);
  const response = await send(
    doFetch,
    withForm(signEndpoint, form),
    {
      method: "GET",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
      signal,
    },
    "the sign endpoint",
  );
  if (response.status !== 200) throw await errorFrom(response, "the sign endpoint");
  const body = await readJson(response);
  if (!body || typeof body.userId !== "string" || typeof body.signed !== "string") {
    throw new TrustedIdentityError(
      "invalid_response",
      response.status,
      "the sign endpoint's answer has no userId and signed",
    );
  }
  return body;
}

/**
 * Start a session: for the user in the page's config or in `options.userId`, or for a
 * visitor (no userId, or `visitor: true`). Resolves to the contract's 201 answer.
 */
export async function startSession(options = {}) {
  const settings = resolveOptions(options);
  const doFetch = settings.fetch ?? globalThis.fetch.bind(globalThis);
  const maxRetries = settings.maxRetries ?? DEFAULT_MAX_RETRIES;
  const maxRetryAfter = settings.maxRetryAfter ?? DEFAULT_MAX_RETRY_AFTER;
  const { signal } = settings;
  const userId = settings.userId;
  let signed = settings.signed ?? null;
  const memoKey = `${settings.signEndpoint ?? ""}\u0000${userId}`;
  // A token is kept fresh: asked for, or known to be what the sign endpoint answers.
  let tokenForm =
    settings.form === TOKEN || typeof settings.expiresAt === "string" || tokens.has(memoKey);

  const refreshSignature = async () => {
    const form = tokenForm ? TOKEN : undefined;
    const fresh = await fetchSignature(settings.signEndpoint, { fetch: doFetch, signal, form });
    if (fresh.userId !== userId) {
      throw new TrustedIdentityError(
        "user_changed",
        0,
        "the sign endpoint signs another user than userId (did someone else log in?)",
      );
    }
    if (typeof fresh.expiresAt === "string") tokenForm = true; // a token: keep it fresh
    if (tokenForm) {
      const timing = tokenTiming(fresh.signed, fresh.expiresAt, Date.now());
      if (timing) tokens.set(memoKey, timing);
    }
    return fresh.signed;
  };

  if (tokenForm && userId !== undefined) {
    // The freshest token known for this user: the page's, or one fetched since.
    let timing = tokenTiming(signed, settings.expiresAt);
    const kept = tokens.get(memoKey);
    if (kept && (!timing || kept.exp > timing.exp)) timing = kept;
    if (timing) signed = timing.signed;
    if (settings.signEndpoint && stale(timing)) {
      signed = await refreshSignature(); // before it ends, not after a refusal
    }
  } else if (userId !== undefined && !signed && settings.signEndpoint) {
    signed = await refreshSignature();
  }

  const headers = {
    "Content-Type": "application/json",
    "X-Api-Key": settings.apiKey,
    "X-Sdk-Version": `web/${SDK_VERSION}`,
  };
  if (settings.appVersion !== undefined && PRINTABLE_ASCII_32.test(String(settings.appVersion))) {
    headers["X-App-Version"] = String(settings.appVersion);
  }

  let refreshed = false;
  let retries = 0;
  for (;;) {
    const body = {};
    if (userId !== undefined) {
      body.userId = userId;
      if (signed) body.signed = signed;
    }
    if (settings.fields !== undefined) body.fields = settings.fields;
    const response = await send(
      doFetch,
      settings.endpoint,
      {
        method: "POST",
        headers,
        body: JSON.stringify(body),
        credentials: "omit", // the session endpoint uses no cookies, and CORS allows none
        cache: "no-store",
        signal,
      },
      "the session endpoint",
    );
    if (response.status === 201) {
      const session = await readJson(response);
      if (!session || typeof session.sessionId !== "string") {
        throw new TrustedIdentityError(
          "invalid_response",
          201,
          "the session endpoint's answer has no sessionId",
        );
      }
      return session;
    }
    const error = await errorFrom(response, "the session endpoint");
    if (
      error.code === "signature_invalid" &&
      !refreshed &&
      userId !== undefined &&
      settings.signEndpoint
    ) {
      refreshed = true;
      if (tokenForm) tokens.delete(memoKey); // refused: not to be sent again
      try {
        signed = await refreshSignature();
      } catch (cause) {
        if (cause && cause.name === "AbortError") throw cause;
        throw new TrustedIdentityError(error.code, error.status, error.message, { cause });
      }
      continue;
    }
    if (error.code === "rate_limited" && retries < maxRetries) {
      retries += 1;
      await sleep(Math.min(error.retryAfter ?? 1, maxRetryAfter), signal);
      continue;
    }
    throw error;
  }
}
