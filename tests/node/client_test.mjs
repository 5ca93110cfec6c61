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
