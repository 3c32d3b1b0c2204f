/**
 * The single-node store: the feature services on SQLite, bound to the app. Their
 * transactions are synchronous (one embedded connection), so each answers at once.
 */
import type { AppContext } from "../../context";
import type { Store } from "../store";
import * as users from "../../users/service";
import * as friends from "../../friends/service";
import * as conversations from "../../conversations/service";
import * as messages from "../../messages/service";
import { and, eq, inArray } from "drizzle-orm";
import { inOrder } from "../../lib/in-order";
import type { DB } from "../../db/client";
import { conversations as conversationsTable, members, messages as messagesTable } from "../../db/schema";
import { viewConversations, type ViewedRow } from "../../conversations/view";
import { selectMessages, toMessages } from "../../messages/view";

/** The user's conversations among `ids`, each with the user's membership. */
function conversationRowsOf(db: DB, userId: string, ids: string[]): ViewedRow[] {
  if (!ids.length) return [];
  return db
    .select({ c: conversationsTable, role: members.role, lastReadMessageId: members.lastReadMessageId })
    .from(conversationsTable)
    .innerJoin(members, and(eq(members.conversationId, conversationsTable.id), eq(members.userId, userId)))
    .where(inArray(conversationsTable.id, ids))
    .all()
    .map((r) => ({ ...r.c, role: r.role, lastReadMessageId: r.lastReadMessageId }));
}

export function sqliteStore(ctx: AppContext): Store {
  const { db } = ctx;
  return {
    users: {
      row: users.cachedUserRows(db),
      missing: (ids) => users.missingUsers(db, ids),
      get: (id) => users.getUser(db, id),
      search: (q, limit, cursor) => users.searchUsers(db, q, limit, cursor),
      updateProfile: (userId, patch) => users.updateProfile(ctx, userId, patch),
      visibleAmong: (viewer, targets) => users.visibleAmong(db, viewer, targets),
      touchLastActive(batch) {
        const update = db.$client.query("UPDATE users SET last_active_at = ? WHERE id = ?");
        db.$client.transaction(() => {
          for (const [id, at] of batch) update.run(at, id);
        })();
      },
    },
    friends: {
      request: (me, friendId) => friends.requestFriend(ctx, me, friendId),
      accept: (me, id) => friends.acceptFriend(ctx, me, id),
      reject: (me, id) => friends.rejectFriend(ctx, me, id),
      remove: (me, id) => friends.removeFriend(ctx, me, id),
      list: (me, filter, limit, cursor) => friends.listFriendships(ctx, me, filter, limit, cursor),
    },
    conversations: {
      create: (me, input) => conversations.createConversation(ctx, me, input),
      listJson: (userId, limit, cursor) => conversations.listConversationsJson(ctx, userId, limit, cursor),
      get: (userId, id) => conversations.getConversation(ctx, userId, id),
      members: (userId, id, limit, cursor) => conversations.listMembers(ctx, userId, id, limit, cursor),
      rename: (me, id, title) => conversations.renameConversation(ctx, me, id, title),
      remove: (me, id) => conversations.deleteConversation(ctx, me, id),
      addMembers: (me, id, userIds) => conversations.addMembers(ctx, me, id, userIds),
      removeMember: (me, id, userId) => conversations.removeMember(ctx, me, id, userId),
      setRole: (me, id, userId, role) => conversations.setRole(ctx, me, id, userId, role),
      requireMembership: (conversationId, userId) => conversations.requireMembership(db, conversationId, userId),
      idsOf: (userId) => conversations.conversationIdsOf(db, userId),
      viewed: (userId, ids) => inOrder(ids, viewConversations(db, conversationRowsOf(db, userId, ids), userId)),
      // One connection: nothing commits between the reads.
      membership: (userId) => conversations.openingView(ctx, userId),
    },
    messages: {
      send: (me, conversationId, input) => messages.sendMessage(ctx, me, conversationId, input),
      list: (me, conversationId, q) => messages.listMessages(ctx, me, conversationId, q),
      edit: (me, messageId, content) => messages.editMessage(ctx, me, messageId, content),
      remove: (me, messageId) => messages.deleteMessage(ctx, me, messageId),
      markRead: (me, conversationId, messageId) => messages.markRead(ctx, me, conversationId, messageId),
      react: (me, messageId, emoji, action) => messages.react(ctx, me, messageId, emoji, action),
      byIds: (ids) => (ids.length ? inOrder(ids, toMessages(db, selectMessages(db, inArray(messagesTable.id, ids)))) : []),
    },
  };
}
