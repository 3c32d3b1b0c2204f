-- Search folds Latin letters without a decomposition too (src/search/fold.js: ł → l,
-- æ → ae, ß → ss, …). search_text is fold(content), already lower-cased, so spelling
-- those letters out here gives what the new fold() gives.
UPDATE "messages" SET "search_text" =
  replace(replace(replace(replace(translate("search_text", 'ðøđħłŧ', 'dodhlt'), 'ß', 'ss'), 'æ', 'ae'), 'œ', 'oe'), 'þ', 'th')
  WHERE "search_text" ~ '[ßæðøþđħłœŧ]';
