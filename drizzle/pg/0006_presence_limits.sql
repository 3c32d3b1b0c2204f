-- Presence and limits of cluster mode without Redis (src/platform/postgres/presence.ts,
-- limits.ts). UNLOGGED (drizzle-kit generated CREATE TABLE; it has no UNLOGGED): soft state
-- that the nodes rebuild, so its rows write no WAL (a connect or a send waits for no disk
-- flush), nothing is copied to replicas, and PostgreSQL empties these tables after a crash,
-- which the nodes take as a Redis restart: each node's next heartbeat writes its users back,
-- budgets start full.
CREATE UNLOGGED TABLE "limit_buckets" (
	"kind" text NOT NULL,
	"key" text NOT NULL,
	"tokens" double precision NOT NULL,
	"at" double precision NOT NULL,
	"granted" boolean NOT NULL,
	"full_at" double precision NOT NULL,
	CONSTRAINT "limit_buckets_kind_key_pk" PRIMARY KEY("kind","key")
);
--> statement-breakpoint
CREATE UNLOGGED TABLE "limit_failures" (
	"kind" text NOT NULL,
	"key" text NOT NULL,
	"count" integer NOT NULL,
	"reset_at" bigint NOT NULL,
	"refused" boolean NOT NULL,
	CONSTRAINT "limit_failures_kind_key_pk" PRIMARY KEY("kind","key")
);
--> statement-breakpoint
CREATE UNLOGGED TABLE "presence_nodes" (
	"node_id" text PRIMARY KEY NOT NULL,
	"deadline" bigint NOT NULL
);
--> statement-breakpoint
CREATE UNLOGGED TABLE "presence_sockets" (
	"user_id" text NOT NULL,
	"node_id" text NOT NULL,
	"n" integer NOT NULL,
	CONSTRAINT "presence_sockets_user_id_node_id_pk" PRIMARY KEY("user_id","node_id")
);
--> statement-breakpoint
CREATE UNLOGGED TABLE "presence_users" (
	"user_id" text PRIMARY KEY NOT NULL,
	"total" integer DEFAULT 0 NOT NULL,
	"announced" boolean DEFAULT false NOT NULL,
	"gen" bigint DEFAULT 0 NOT NULL,
	"settler" text
);

--> statement-breakpoint
-- Presence's decisions, one call (one round trip, one transaction) each, as the Lua scripts
-- of src/platform/redis/presence.ts. Every change to a user's presence first takes the
-- user's presence_users row lock (the heartbeat: its dead nodes' users, in user_id order),
-- so the decisions about one user are serialized across nodes without deadlocks; each
-- statement after it sees what the lock waited for (READ COMMITTED).

-- A new socket of p_user on p_node: 'full' (p_max sockets anywhere already), 'first' (the
-- user was offline) or 'more'. The cap is the conditional update of the locked row.
CREATE FUNCTION presence_connect(p_user text, p_node text, p_max integer) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  total_now integer;
  was_announced boolean;
BEGIN
  INSERT INTO presence_users AS u (user_id, total, gen) VALUES (p_user, 1, 1)
    ON CONFLICT (user_id) DO UPDATE SET total = u.total + 1, gen = u.gen + 1 WHERE u.total < p_max
    RETURNING u.total, u.announced INTO total_now, was_announced;
  IF NOT FOUND THEN RETURN 'full'; END IF;
  INSERT INTO presence_sockets AS s (user_id, node_id, n) VALUES (p_user, p_node, 1)
    ON CONFLICT (user_id, node_id) DO UPDATE SET n = s.n + 1;
  RETURN CASE WHEN total_now > 1 OR was_announced THEN 'more' ELSE 'first' END;
END $$;
--> statement-breakpoint
-- A counted socket closed: the generation to settle after the grace period when it was the
-- user's last anywhere (p_node then runs the timer: it is the user's settler), else -1.
CREATE FUNCTION presence_disconnect(p_user text, p_node text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  left_here integer;
  total_now integer;
  gen_now bigint;
BEGIN
  PERFORM 1 FROM presence_users WHERE user_id = p_user FOR UPDATE;
  IF NOT FOUND THEN RETURN -1; END IF;
  UPDATE presence_sockets SET n = n - 1 WHERE user_id = p_user AND node_id = p_node RETURNING n INTO left_here;
  -- Not counted here: this node was taken for dead meanwhile, and its sockets with it.
  IF NOT FOUND THEN RETURN -1; END IF;
  IF left_here <= 0 THEN DELETE FROM presence_sockets WHERE user_id = p_user AND node_id = p_node; END IF;
  UPDATE presence_users SET total = total - 1, gen = gen + (total = 1)::int, settler = CASE WHEN total = 1 THEN p_node ELSE settler END
    WHERE user_id = p_user RETURNING total, gen INTO total_now, gen_now;
  RETURN CASE WHEN total_now > 0 THEN -1 ELSE gen_now END;
END $$;
--> statement-breakpoint
-- p_node's heartbeat: its deadline is now + p_dead_after_ms (PostgreSQL's clock). `fresh`:
-- its row was gone (taken for dead, or the table emptied by a crash). Takes away the nodes
-- past their deadline, each by exactly one beat (a racing beat skips the locked row or finds
-- it gone), and with them their sockets and grace periods: `offline`, the users left with no
-- socket anywhere whose user.online had gone out (the caller announces them offline).
CREATE FUNCTION presence_beat(p_node text, p_dead_after_ms bigint, OUT fresh boolean, OUT offline text[]) LANGUAGE plpgsql AS $$
DECLARE
  now_ms bigint := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  dead text[];
  touched text[];
  lost text[];
BEGIN
  offline := '{}';
  UPDATE presence_nodes SET deadline = now_ms + p_dead_after_ms WHERE node_id = p_node;
  fresh := NOT FOUND;
  IF fresh THEN
    INSERT INTO presence_nodes (node_id, deadline) VALUES (p_node, now_ms + p_dead_after_ms)
      ON CONFLICT (node_id) DO UPDATE SET deadline = excluded.deadline;
  END IF;
  WITH gone AS (
    DELETE FROM presence_nodes WHERE node_id IN (SELECT node_id FROM presence_nodes WHERE deadline < now_ms FOR UPDATE SKIP LOCKED)
    RETURNING node_id)
  SELECT array_agg(node_id) INTO dead FROM gone;
  IF dead IS NULL THEN RETURN; END IF;
  SELECT array_agg(user_id) INTO touched FROM (
    SELECT user_id FROM presence_users
      WHERE settler = ANY(dead) OR user_id IN (SELECT user_id FROM presence_sockets WHERE node_id = ANY(dead))
      ORDER BY user_id FOR UPDATE) locked;
  WITH gone AS (DELETE FROM presence_sockets WHERE node_id = ANY(dead) RETURNING user_id, n),
    per_user AS (SELECT user_id, sum(n)::int AS n FROM gone GROUP BY user_id),
    counted AS (UPDATE presence_users u SET total = u.total - p.n FROM per_user p WHERE u.user_id = p.user_id RETURNING u.user_id)
  SELECT array_agg(user_id) INTO lost FROM counted;
  WITH off AS (
    DELETE FROM presence_users WHERE total <= 0 AND user_id = ANY(coalesce(touched, '{}') || coalesce(lost, '{}'))
    RETURNING user_id, announced)
  SELECT coalesce(array_agg(user_id) FILTER (WHERE announced), '{}') INTO offline FROM off;
END $$;
--> statement-breakpoint
-- After p_node's heartbeat was found gone: its users and socket counts written back, as
-- online (announced), in user_id order (the order the heartbeat locks them in).
CREATE FUNCTION presence_reregister(p_node text, p_users text[], p_counts integer[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  r record;
  had integer;
BEGIN
  FOR r IN SELECT * FROM unnest(p_users, p_counts) AS x(user_id, n) ORDER BY user_id LOOP
    INSERT INTO presence_users AS u (user_id, announced) VALUES (r.user_id, true)
      ON CONFLICT (user_id) DO UPDATE SET announced = true;
    had := coalesce((SELECT n FROM presence_sockets WHERE user_id = r.user_id AND node_id = p_node), 0);
    INSERT INTO presence_sockets AS s (user_id, node_id, n) VALUES (r.user_id, p_node, r.n)
      ON CONFLICT (user_id, node_id) DO UPDATE SET n = excluded.n;
    UPDATE presence_users SET total = total + r.n - had WHERE user_id = r.user_id;
  END LOOP;
END $$;
