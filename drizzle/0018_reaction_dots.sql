-- Reactions "." and ".." are refused since 2026-12-01: a reaction is removed by naming it
-- in the URL, where every URL parser resolves "." and ".." away, so
-- DELETE /api/messages/:id/reactions/.. reached DELETE /api/messages/:id and deleted the
-- message. Any such reaction made before can never be removed: it goes.
DELETE FROM `message_reactions` WHERE `emoji` IN ('.', '..');
