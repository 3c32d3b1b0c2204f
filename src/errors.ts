/**
 * One error type for the whole app. Services throw it; the HTTP layer renders it as
 * `{error:{code,message,details}}` with its status, the WebSocket layer as an `error` frame.
 */
const STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_friends: 403,
  quota_exceeded: 403,
  not_found: 404,
  conflict: 409,
  sync_reset: 410,
  payload_too_large: 413,
  validation_failed: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
  storage_full: 507,
} as const;

export type ErrorCode = keyof typeof STATUS;
export const ERROR_CODES = Object.keys(STATUS) as ErrorCode[];
/** The HTTP status that answers an error code. */
export const statusOf = (code: ErrorCode): number => STATUS[code];

export class AppError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    /** For 429 and 503: how long the client should wait (Retry-After). */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.status = STATUS[code];
  }

  toBody() {
    const error: { code: ErrorCode; message: string; details?: unknown } = { code: this.code, message: this.message };
    if (this.details !== undefined) error.details = this.details;
    return { error };
  }
}

export const notFound = (what = "resource") => new AppError("not_found", `${what} not found`);
export const forbidden = (message: string) => new AppError("forbidden", message);
export const conflict = (message: string) => new AppError("conflict", message);
export const invalid = (field: string, message: string) =>
  new AppError("validation_failed", `${field}: ${message}`, [{ field, message }]);
