/** The attachment routes' paths, also needed by the body parser (which leaves uploads alone), and what the web client checks before sending. */
export const UPLOAD_PATH = "/api/uploads";
export const ATTACHMENT_PATH_PREFIX = "/api/attachments/";
export const attachmentPath = (id: string) => `${ATTACHMENT_PATH_PREFIX}${id}`;
/** An uploaded profile picture, public (an <img> of anyone who sees the user): the profile_image_url it sets. */
export const AVATAR_PATH_PREFIX = "/api/avatars/";
export const avatarPath = (id: string) => `${AVATAR_PATH_PREFIX}${id}`;
/** Files a message may carry (a send's attachment_ids). */
export const MAX_ATTACHMENTS = 10;
