-- Search folds Latin letters without a decomposition too (ł → l, æ → ae, ß → ss: see
-- src/search/fold.js), and the trigram index now holds folded text. An index built
-- before holds the old folding: forgetting its id makes the server empty search.db at
-- start and index every message again in the background, searching the messages
-- directly meanwhile (src/search/sqlite.ts, adopt).
DELETE FROM `meta` WHERE `key` = 'search_index_id';
