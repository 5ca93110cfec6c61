// Types of the Trusted Identity browser client (client.js, an ES module).

/** "web/<version>": sent as X-Sdk-Version. */
export declare const SDK_VERSION: string;

/** Error codes of the contract (CONTRACT section 4), and the client's own. */
export type TrustedIdentityErrorCode =
  | "invalid_request"
  | "invalid_api_key"
  | "not_authenticated"
  | "signature_required"
  | "signature_invalid"
  | "platform_not_found"
  | "not_found"
  | "method_not_allowed"
  | "permission_denied"
  | "rate_limited"
  | "service_unavailable"
  | "internal_error"
  // The client's own (status 0 unless an HTTP answer was read):
  | "network_error" // no answer, or the browser refused it (CORS: origin not allowed)
  | "invalid_response" // an answer without the contract's JSON
  | "invalid_config" // no apiKey or endpoint, a userId that is not a non-empty string
  | "user_changed"; // the sign endpoint signs another user than userId

export declare class TrustedIdentityError extends Error {
  constructor(
    code: TrustedIdentityErrorCode | string,
    status: number,
    message: string,
    options?: { retryAfter?: number | null; cause?: unknown },
  );
  readonly name: "TrustedIdentityError";
  /** The contract's error code, or one of the client's own. */
  readonly code: TrustedIdentityErrorCode | string;
  /** The HTTP status; 0 when no HTTP answer was read. */
  readonly status: number;
  /** Seconds to wait, from Retry-After (rate_limited); otherwise null. */
  readonly retryAfter: number | null;
}

/**
 * The signature forms (CONTRACT sections 1, 9 and 10): 64 hex digits, or a token (HS256
 * with the platform's secret, or signed with the site's private key).
 */
export type SignatureForm = "plain" | "token";

/** What {% trusted_identity_config %} renders. userId and signed only for a logged-in user. */
export interface TrustedIdentityConfig {
  apiKey: string;
  /** The session endpoint, such as "/trusted-identity/v1/sessions" or an absolute URL. */
  endpoint: string;
  /** The sign endpoint, such as "/trusted-identity/sign/?platform=web&space=my-space". */
  signEndpoint?: string;
  platform?: string;
  space?: string;
  userId?: string;
  signed?: string;
  /** "token" with {% trusted_identity_config form="token" %}; absent for the plain form. */
  form?: SignatureForm;
  /** When the token in signed ends (ISO 8601, UTC), for the token form. */
  expiresAt?: string;
}

export interface StartSessionOptions extends Partial<TrustedIdentityConfig> {
  /** A config object, or the kind ("web") or element id to read it from. Default: the page's. */
  config?: TrustedIdentityConfig | string;
  /**
   * "token": ask the sign endpoint for tokens and refresh the one held before it is
   * sent when less than max(60 s, 10% of its lifetime) remains (never in its first half).
   * Default: the config's form, else "plain" (a signature that never expires), until the
   * sign endpoint answers a token (with expiresAt): then "token".
   */
  form?: SignatureForm;
  /** Start a visitor's session even if the config names a user. */
  visitor?: boolean;
  /** Sent as "fields" in the body. */
  fields?: Record<string, unknown>;
  /** The app's version, sent as X-App-Version (at most 32 printable ASCII characters, else left out). */
  appVersion?: string;
  /** Retries after 429 rate_limited (default 2). */
  maxRetries?: number;
  /** The longest wait honoured from Retry-After, in seconds (default 30). */
  maxRetryAfter?: number;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  signal?: AbortSignal;
}

/** The contract's 201 answer. */
export interface Session {
  sessionId: string;
  anonymous: boolean;
  userId: string | null;
  trusted: boolean;
  signature: "valid" | "invalid" | "missing" | "none";
  space: string;
  platform: string;
}

export interface Signature {
  userId: string;
  platform: string;
  signed: string;
  /** When the token ends (ISO 8601, UTC): only for form "token". */
  expiresAt?: string;
}

/**
 * Start a session for the user of the page's config (or options.userId), or for a visitor.
 * With form "token", a token near its end is refreshed from signEndpoint before it is sent.
 * On 403 signature_invalid it fetches a fresh signature from signEndpoint once and retries;
 * on 429 it waits Retry-After (at most maxRetryAfter) up to maxRetries times.
 * Rejects with a TrustedIdentityError.
 */
export declare function startSession(options?: StartSessionOptions): Promise<Session>;

/** The config rendered by {% trusted_identity_config %}, by kind or element id; null if absent. */
export declare function readConfig(
  platformOrId?: string,
  root?: Pick<Document, "getElementById">,
): TrustedIdentityConfig | null;

/**
 * The logged-in user's signature from the sign endpoint (same-origin credentials); with
 * form "token", a token and its expiresAt (the endpoint is asked with &form=token).
 */
export declare function fetchSignature(
  signEndpoint: string,
  options?: { fetch?: typeof fetch; signal?: AbortSignal; form?: SignatureForm },
): Promise<Signature>;
