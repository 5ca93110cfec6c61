// Unit tests of the browser client (trusted_identity/static/trusted_identity/client.js)
// with a scripted fetch: run by tests/test_client_js.py with `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

const CLIENT = process.env.TRUSTED_IDENTITY_CLIENT;
const { startSession, fetchSignature, readConfig, TrustedIdentityError, SDK_VERSION } =
  await import(CLIENT);

const CONFIG = {
  apiKey: "tik_test",
  endpoint: "https://id.example/trusted-identity/v1/sessions",
  signEndpoint: "/trusted-identity/sign/?platform=web&space=acme",
  platform: "web",
  userId: "42",
  signed: "a".repeat(64),
};

function json(status, body, headers = {}) {
  return new Response(body === undefined ? null : JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

const session = (extra = {}) => ({
  sessionId: "s1",
  anonymous: false,
  userId: "42",
  trusted: true,
  signature: "valid",
  space: "acme",
  platform: "web",
  ...extra,
});

/** A fetch answering from a script of responses, recording every call. */
function scripted(...answers) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined });
    const next = answers.shift();
    if (next === undefined) throw new Error(`unexpected request to ${url}`);
    if (next instanceof Error) throw next;
    return typeof next === "function" ? next(url, init) : next;
  };
  return { fetch, calls };
}

const error = (status, code, headers) =>
  json(status, { error: { code, message: `${code} happened` } }, headers);

test("a user's session: headers, body, credentials", async () => {
  const { fetch, calls } = scripted(json(201, session()));
  const result = await startSession({ config: CONFIG, fetch, fields: { plan: "pro" }, appVersion: "3.2.1" });
  assert.equal(result.sessionId, "s1");
  assert.equal(calls.length, 1);
  const [{ url, init, body }] = calls;
  assert.equal(url, CONFIG.endpoint);
  assert.equal(init.method, "POST");
  assert.equal(init.credentials, "omit");
  assert.deepEqual(body, { userId: "42", signed: CONFIG.signed, fields: { plan: "pro" } });
  assert.equal(init.headers["X-Api-Key"], "tik_test");
  assert.equal(init.headers["Content-Type"], "application/json");
  assert.equal(init.headers["X-Sdk-Version"], `web/${SDK_VERSION}`);
  assert.equal(init.headers["X-App-Version"], "3.2.1");
});

test("a visitor sends no user, even when the config names one", async () => {
  const { fetch, calls } = scripted(json(201, session({ anonymous: true, userId: null })));
  await startSession({ config: CONFIG, fetch, visitor: true });
  assert.deepEqual(calls[0].body, {});
  const { apiKey, endpoint } = CONFIG;
  const second = scripted(json(201, session({ anonymous: true, userId: null })));
  await startSession({ apiKey, endpoint, fetch: second.fetch });
  assert.deepEqual(second.calls[0].body, {});
});

test("an app version that is not printable ASCII (or too long) is left out", async () => {
  for (const appVersion of ["ü1", "x".repeat(33), ""]) {
    const { fetch, calls } = scripted(json(201, session()));
    await startSession({ config: CONFIG, fetch, appVersion });
    assert.equal(calls[0].init.headers["X-App-Version"], undefined);
  }
});

test("403 signature_invalid: one fresh signature from the sign endpoint, then a retry", async () => {
  const fresh = "b".repeat(64);
  const { fetch, calls } = scripted(
    error(403, "signature_invalid"),
    json(200, { userId: "42", platform: "web", signed: fresh }),
    json(201, session()),
  );
  const result = await startSession({ config: CONFIG, fetch });
  assert.equal(result.trusted, true);
  assert.equal(calls.length, 3);
  assert.equal(calls[1].url, CONFIG.signEndpoint);
  assert.equal(calls[1].init.method, "GET");
  assert.equal(calls[1].init.credentials, "same-origin");
  assert.equal(calls[2].body.signed, fresh);
});

test("403 signature_invalid again after the refresh: no second refresh", async () => {
  const { fetch, calls } = scripted(
    error(403, "signature_invalid"),
    json(200, { userId: "42", platform: "web", signed: "c".repeat(64) }),
    error(403, "signature_invalid"),
  );
  await assert.rejects(startSession({ config: CONFIG, fetch }), (e) => {
    assert.ok(e instanceof TrustedIdentityError);
    assert.equal(e.code, "signature_invalid");
    assert.equal(e.status, 403);
    assert.equal(e.message, "signature_invalid happened");
    return true;
  });
  assert.equal(calls.length, 3);
});

test("a refresh that fails keeps the 403 and says why in cause", async () => {
  const { fetch } = scripted(error(403, "signature_invalid"), error(401, "not_authenticated"));
  await assert.rejects(startSession({ config: CONFIG, fetch }), (e) => {
    assert.equal(e.code, "signature_invalid");
    assert.equal(e.cause.code, "not_authenticated");
    assert.equal(e.cause.status, 401);
    return true;
  });
});

test("a refresh for another user is refused (user_changed)", async () => {
  const { fetch, calls } = scripted(
    error(403, "signature_invalid"),
    json(200, { userId: "43", platform: "web", signed: "d".repeat(64) }),
  );
  await assert.rejects(startSession({ config: CONFIG, fetch }), (e) => {
    assert.equal(e.code, "signature_invalid");
    assert.equal(e.cause.code, "user_changed");
    return true;
  });
  assert.equal(calls.length, 2);
});

test("without a sign endpoint a 403 is thrown as it is", async () => {
  const { fetch, calls } = scripted(error(403, "signature_invalid"));
  const { signEndpoint, ...config } = CONFIG;
  await assert.rejects(startSession({ config, fetch }), { code: "signature_invalid" });
  assert.equal(calls.length, 1);
});

test("signature_required is not retried", async () => {
  const { fetch, calls } = scripted(error(403, "signature_required"));
  await assert.rejects(startSession({ config: CONFIG, fetch }), { code: "signature_required" });
  assert.equal(calls.length, 1);
});

test("a userId without signed gets its signature from the sign endpoint first", async () => {
  const { fetch, calls } = scripted(
    json(200, { userId: "7", platform: "web", signed: "e".repeat(64) }),
    json(201, session({ userId: "7" })),
  );
  await startSession({ config: CONFIG, userId: "7", fetch });
  assert.equal(calls[0].url, CONFIG.signEndpoint);
  assert.deepEqual(calls[1].body, { userId: "7", signed: "e".repeat(64) });
});

test("429: waits Retry-After and retries, a bounded number of times", async () => {
  const { fetch, calls } = scripted(
    error(429, "rate_limited", { "Retry-After": "0" }),
    error(429, "rate_limited", { "Retry-After": "0" }),
    json(201, session()),
  );
  assert.equal((await startSession({ config: CONFIG, fetch })).sessionId, "s1");
  assert.equal(calls.length, 3);

  const limited = scripted(
    ...Array.from({ length: 3 }, () => error(429, "rate_limited", { "Retry-After": "0" })),
  );
  await assert.rejects(startSession({ config: CONFIG, fetch: limited.fetch }), (e) => {
    assert.equal(e.code, "rate_limited");
    assert.equal(e.status, 429);
    assert.equal(e.retryAfter, 0);
    return true;
  });
  assert.equal(limited.calls.length, 3); // the first try and maxRetries (2) retries

  const none = scripted(error(429, "rate_limited", { "Retry-After": "5" }));
  await assert.rejects(startSession({ config: CONFIG, fetch: none.fetch, maxRetries: 0 }), {
    code: "rate_limited",
    retryAfter: 5,
  });
});

test("429: the wait is capped by maxRetryAfter", async () => {
  const { fetch } = scripted(
    error(429, "rate_limited", { "Retry-After": "3600" }),
    json(201, session()),
  );
  const started = Date.now();
  await startSession({ config: CONFIG, fetch, maxRetryAfter: 0.05 });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 40 && elapsed < 2000, `waited ${elapsed} ms`);
});

test("an abort during the wait rejects at once", async () => {
  const controller = new AbortController();
  const { fetch } = scripted(error(429, "rate_limited", { "Retry-After": "20" }));
  const started = Date.now();
  const pending = startSession({ config: CONFIG, fetch, signal: controller.signal });
  setTimeout(() => controller.abort(), 20);
  await assert.rejects(pending, { name: "AbortError" });
  assert.ok(Date.now() - started < 2000);
});

test("no answer is a network_error; an answer without JSON is invalid_response", async () => {
  const offline = scripted(new TypeError("Failed to fetch"));
  await assert.rejects(startSession({ config: CONFIG, fetch: offline.fetch }), (e) => {
    assert.equal(e.code, "network_error");
    assert.equal(e.status, 0);
    assert.ok(e.cause instanceof TypeError);
    return true;
  });
  const proxy = scripted(new Response("<html>Bad gateway</html>", { status: 502 }));
  await assert.rejects(startSession({ config: CONFIG, fetch: proxy.fetch }), {
    code: "invalid_response",
    status: 502,
  });
  const empty = scripted(json(201, { nothing: true }));
  await assert.rejects(startSession({ config: CONFIG, fetch: empty.fetch }), {
    code: "invalid_response",
  });
});

test("every contract error is thrown with its code, status and message", async () => {
  for (const [status, code] of [
    [400, "invalid_request"],
    [401, "invalid_api_key"],
    [503, "service_unavailable"],
  ]) {
    const { fetch } = scripted(error(status, code));
    await assert.rejects(startSession({ config: CONFIG, fetch }), (e) => {
      assert.ok(e instanceof TrustedIdentityError && e instanceof Error);
      assert.equal(e.name, "TrustedIdentityError");
      assert.deepEqual([e.code, e.status, e.message], [code, status, `${code} happened`]);
      return true;
    });
  }
});

test("a config without apiKey or endpoint, or a bad userId, is invalid_config", async () => {
  await assert.rejects(startSession({ endpoint: "/x" }), { code: "invalid_config" });
  await assert.rejects(startSession({ apiKey: "tik" }), { code: "invalid_config" });
  await assert.rejects(startSession({ config: CONFIG, userId: "" }), { code: "invalid_config" });
  await assert.rejects(startSession({ config: CONFIG, userId: 42 }), { code: "invalid_config" });
});

test("readConfig reads the element by kind or id", () => {
  const elements = {
    "trusted-identity-web": { id: "trusted-identity-web", textContent: JSON.stringify(CONFIG) },
    broken: { id: "broken", textContent: "{" },
  };
  const root = { getElementById: (id) => elements[id] ?? null };
  assert.deepEqual(readConfig("web", root), CONFIG);
  assert.deepEqual(readConfig("trusted-identity-web", root), CONFIG);
  assert.equal(readConfig("ios", root), null);
  assert.equal(readConfig("web", undefined), null); // no document (Node)
  assert.throws(() => readConfig("broken", root), { code: "invalid_config" });
});

test("fetchSignature answers the sign endpoint's body", async () => {
  const { fetch, calls } = scripted(json(200, { userId: "42", platform: "web", signed: "f" }));
  assert.deepEqual(await fetchSignature("/sign/", { fetch }), {
    userId: "42",
    platform: "web",
    signed: "f",
  });
  assert.equal(calls[0].init.credentials, "same-origin");
});

// ------------------------------------------------------------ the token form

const b64url = (text) => Buffer.from(text, "utf8").toString("base64url");
const realNow = Date.now;

/** A token shaped as the server makes it (the client reads its claims, never its MAC). */
function jwtFor(userId, iatSeconds, expSeconds) {
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = b64url(JSON.stringify({ sub: userId, iat: iatSeconds, exp: expSeconds }));
  return `${header}.${claims}.${"s".repeat(43)}`;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** A token config, each with its own sign endpoint (the client keeps tokens per endpoint). */
function tokenConfig(name, lifetime, age = 0) {
  const iat = nowSeconds() - age;
  return {
    ...CONFIG,
    signEndpoint: `/trusted-identity/sign/?platform=web&space=${name}&form=token`,
    form: "token",
    signed: jwtFor("42", iat, iat + lifetime),
    expiresAt: new Date((iat + lifetime) * 1000).toISOString().replace(/\.\d+Z$/, "Z"),
  };
}

const tokenAnswer = (lifetime, iat = nowSeconds()) => {
  const signed = jwtFor("42", iat, iat + lifetime);
  const expiresAt = new Date((iat + lifetime) * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  return { body: json(200, { userId: "42", platform: "web", signed, expiresAt }), signed };
};

/** Run `fn` with this machine's clock moved by `seconds`. */
async function later(seconds, fn) {
  Date.now = () => realNow() + seconds * 1000;
  try {
    return await fn();
  } finally {
    Date.now = realNow;
  }
}

test("token form: a fresh token is sent as it is, one near its end is refreshed first", async () => {
  const config = tokenConfig("fresh", 3600);
  const first = scripted(json(201, session()));
  await startSession({ config, fetch: first.fetch });
  assert.equal(first.calls.length, 1);
  assert.equal(first.calls[0].body.signed, config.signed);

  // 3,300 s later, 300 s remain: more than 10% of an hour (360 s) -> refreshed first.
  const fresh = tokenAnswer(3600, nowSeconds() + 3300);
  const second = scripted(fresh.body, json(201, session()));
  await later(3300, () => startSession({ config, fetch: second.fetch }));
  assert.equal(second.calls.length, 2);
  assert.equal(second.calls[0].url, config.signEndpoint); // form=token once, not twice
  assert.equal(second.calls[0].init.method, "GET");
  assert.equal(second.calls[1].body.signed, fresh.signed);

  // The page's config still holds the old token: the fresher one is kept and sent.
  const third = scripted(json(201, session()));
  await later(3310, () => startSession({ config, fetch: third.fetch }));
  assert.equal(third.calls.length, 1);
  assert.equal(third.calls[0].body.signed, fresh.signed);
});

test("token form: the margin is max(60 s, 10% of the lifetime)", async () => {
  for (const [lifetime, leftWhenRefreshed, leftWhenNot] of [
    [3600, 350, 370], // 10% of an hour: 360 s
    [300, 55, 65], // 10% is 30 s: 60 s
  ]) {
    const config = tokenConfig(`margin-${lifetime}`, lifetime);
    const kept = scripted(json(201, session()));
    await later(lifetime - leftWhenNot, () => startSession({ config, fetch: kept.fetch }));
    assert.equal(kept.calls.length, 1, `${lifetime} s token with ${leftWhenNot} s left`);
    const refreshed = scripted(tokenAnswer(lifetime).body, json(201, session()));
    await later(lifetime - leftWhenRefreshed, () =>
      startSession({ config, fetch: refreshed.fetch }),
    );
    assert.equal(refreshed.calls.length, 2, `${lifetime} s token with ${leftWhenRefreshed} s left`);
  }
});

test("token form: a short token is used for half its life, a refreshed one is not refreshed again", async () => {
  const config = tokenConfig("short", 60);
  const kept = scripted(json(201, session()));
  await later(25, () => startSession({ config, fetch: kept.fetch }));
  assert.equal(kept.calls.length, 1);
  const fresh = tokenAnswer(60, nowSeconds() + 35);
  const refreshed = scripted(fresh.body, json(201, session()));
  await later(35, () => startSession({ config, fetch: refreshed.fetch }));
  assert.equal(refreshed.calls.length, 2); // one fetch, then the start: no loop
  assert.equal(refreshed.calls[1].body.signed, fresh.signed);
});

test("token form: an expired token and a 403 give one fetch each, never a loop", async () => {
  const config = tokenConfig("expired", 600, 700); // ended 100 s ago
  const first = tokenAnswer(600);
  const second = tokenAnswer(600, nowSeconds() + 1);
  const { fetch, calls } = scripted(
    first.body,
    error(403, "signature_invalid"),
    second.body,
    error(403, "signature_invalid"),
  );
  await assert.rejects(startSession({ config, fetch }), { code: "signature_invalid" });
  assert.deepEqual(
    calls.map((c) => c.init.method),
    ["GET", "POST", "GET", "POST"],
  );
  assert.equal(calls[1].body.signed, first.signed);
  assert.equal(calls[3].body.signed, second.signed);
});

test("token form: 403 signature_invalid then success: one fresh token, one retry", async () => {
  const config = tokenConfig("rejected", 3600);
  const fresh = tokenAnswer(3600);
  const { fetch, calls } = scripted(error(403, "signature_invalid"), fresh.body, json(201, session()));
  const result = await startSession({ config, fetch });
  assert.equal(result.trusted, true);
  assert.equal(calls.length, 3);
  assert.equal(calls[0].body.signed, config.signed);
  assert.equal(calls[1].url, config.signEndpoint);
  assert.equal(calls[2].body.signed, fresh.signed);
});

test("token form as an option asks the sign endpoint with form=token", async () => {
  const fresh = tokenAnswer(3600);
  const { fetch, calls } = scripted(fresh.body, json(201, session()));
  const { signed, ...config } = { ...CONFIG, signEndpoint: "/sign/?platform=web&space=opt" };
  await startSession({ config, form: "token", fetch });
  assert.equal(calls[0].url, "/sign/?platform=web&space=opt&form=token");
  assert.equal(calls[1].body.signed, fresh.signed);
  const sign = scripted(json(200, { userId: "42", platform: "web", signed: "t" }));
  await fetchSignature("/sign/#top", { fetch: sign.fetch, form: "token" });
  assert.equal(sign.calls[0].url, "/sign/?form=token#top");
});

test("token form: the sign endpoint's clock, not this machine's, says when a token ends", async () => {
  // This machine is 20 minutes behind: the server's token looks 20 minutes younger.
  const config = { ...tokenConfig("skew", 3600), signed: undefined, expiresAt: undefined };
  const fresh = tokenAnswer(3600, nowSeconds() + 1200);
  const first = scripted(fresh.body, json(201, session()));
  await startSession({ config, fetch: first.fetch });
  assert.equal(first.calls.length, 2);
  // It ends at 4,800 s there, refreshed from 4,440 s there (360 s before): 3,240 s here.
  const kept = scripted(json(201, session()));
  await later(3200, () => startSession({ config, fetch: kept.fetch }));
  assert.equal(kept.calls.length, 1);
  const again = scripted(tokenAnswer(3600, nowSeconds() + 4500).body, json(201, session()));
  await later(3300, () => startSession({ config, fetch: again.fetch }));
  assert.equal(again.calls.length, 2); // by this machine's clock, 1,500 s would remain
});

test("plain form: the signature is never refreshed, whatever the time", async () => {
  const { fetch, calls } = scripted(json(201, session()));
  await later(10 * 365 * 86400, () => startSession({ config: CONFIG, fetch }));
  assert.equal(calls.length, 1);
  assert.equal(calls[0].body.signed, CONFIG.signed);
  // A token in the plain form's config (no form): sent as it is, even long expired.
  const token = jwtFor("42", 1000, 2000);
  const old = scripted(json(201, session()));
  await startSession({ config: { ...CONFIG, signed: token }, fetch: old.fetch });
  assert.equal(old.calls.length, 1);
  assert.equal(old.calls[0].body.signed, token);
});

test("plain form: a token from the sign endpoint (a platform moved to public keys) is kept fresh", async () => {
  // The page says plain; its platform now takes tokens only: the 403 refresh brings a token.
  const config = { ...CONFIG, signEndpoint: "/sign/?platform=web&space=moved" };
  const fresh = tokenAnswer(3600);
  const first = scripted(error(403, "signature_invalid"), fresh.body, json(201, session()));
  await startSession({ config, fetch: first.fetch });
  assert.equal(first.calls[1].url, "/sign/?platform=web&space=moved"); // as the page said
  assert.equal(first.calls[2].body.signed, fresh.signed);
  // Later starts send that token, not the page's plain signature, and refresh it as one.
  const kept = scripted(json(201, session()));
  await startSession({ config, fetch: kept.fetch });
  assert.equal(kept.calls.length, 1);
  assert.equal(kept.calls[0].body.signed, fresh.signed);
  const renewed = tokenAnswer(3600, nowSeconds() + 3300);
  const again = scripted(renewed.body, json(201, session()));
  await later(3300, () => startSession({ config, fetch: again.fetch }));
  assert.equal(again.calls[0].url, "/sign/?platform=web&space=moved&form=token");
  assert.equal(again.calls[1].body.signed, renewed.signed);
});
