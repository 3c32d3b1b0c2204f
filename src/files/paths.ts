/** The attachment routes' paths, also needed by the body parser (which leaves uploads alone). */
export const UPLOAD_PATH = "/api/uploads";
export const attachmentPath = (id: string) => `/api/attachments/${id}`;
