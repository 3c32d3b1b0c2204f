/**
 * How a WebSocket connection ends (PROTOCOL §7.6): the one table of close codes that the
 * server closes by and the reference client decides by. Dependency-free, so the client can
 * import it.
 *
 * Terminal (`retry: false`): connecting again would be refused the same way, or the client
 * asked to leave; a client stops and reports. Temporary (`retry: true`): reconnect with
 * backoff and resume with `since` and `epoch`. Before a close that it chooses, the server
 * sends `alert {kind, message, retry, retry_after_ms?}` whose `retry` is this table's.
 */
export const CLOSE_CODES = {
  1000: { name: "normal", retry: false, when: "the client sent `disconnect`" },
  1001: { name: "going_away", retry: true, when: "the server is shutting down (alert shutdown)" },
  1006: { name: "abnormal", retry: true, when: "no close frame: the network dropped, or a dead peer was cut off (never sent as a code)" },
  1008: { name: "rate_limited", retry: true, when: "kept sending frames past the rate limit (alert rate_limited with retry_after_ms)" },
  1009: { name: "too_big", retry: true, when: "a frame over 64 KiB (alert too_big; past 128 KiB the frame is not read and no alert comes)" },
  1011: { name: "internal_error", retry: true, when: "the server failed unexpectedly, or could not open the connection (alert unavailable: cluster mode, a backing service is down)" },
  1012: { name: "restarting", retry: true, when: "a server or proxy is restarting" },
  1013: { name: "try_again_later", retry: true, when: "a slow consumer (alert slow_consumer)" },
  4001: { name: "unauthorized", retry: false, when: "the token expired while connected, or the user no longer exists (alert unauthorized)" },
  4003: { name: "forbidden", retry: false, when: "the user may no longer connect (reserved: this server does not send it yet)" },
} as const;

export type CloseCode = keyof typeof CLOSE_CODES;

/**
 * Whether to reconnect after a close with `code`. Codes not in the table (a proxy's, a
 * later server's) count as temporary: backoff bounds the cost of being wrong.
 */
export function retryAfterClose(code: number): boolean {
  return (CLOSE_CODES as Record<number, { retry: boolean }>)[code]?.retry ?? true;
}

/**
 * Whether to try again after an HTTP refusal of the upgrade or of `POST /api/ws/ticket`:
 * only 401 (a missing, refused or expired token, a deleted user) is terminal; 429 and
 * 5xx (and anything else) are temporary.
 */
export function retryAfterStatus(status: number): boolean {
  return status !== 401;
}
