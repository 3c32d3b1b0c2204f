/** The attachment routes' paths, also needed by the body parser (which leaves uploads alone). */
export const UPLOAD_PATH = "/api/uploads";
export const ATTACHMENT_PATH_PREFIX = "/api/attachments/";
export const attachmentPath = (id: string) => `${ATTACHMENT_PATH_PREFIX}${id}`;
/** An uploaded profile picture, public (an <img> of anyone who sees the user): the profile_image_url it sets. */
export const AVATAR_PATH_PREFIX = "/api/avatars/";
export const avatarPath = (id: string) => `${AVATAR_PATH_PREFIX}${id}`;
