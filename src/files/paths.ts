/** The attachment routes' paths, also needed by the body parser (which leaves uploads alone). */
export const UPLOAD_PATH = "/api/uploads";
export const ATTACHMENT_PATH_PREFIX = "/api/attachments/";
export const attachmentPath = (id: string) => `${ATTACHMENT_PATH_PREFIX}${id}`;
