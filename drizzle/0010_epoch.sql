-- The event log's epoch (PROTOCOL §7.5): a random name for this timeline of seqs.
-- `parley backup` gives its copy a new one, so a restored server is another timeline.
INSERT OR IGNORE INTO `meta` (`key`, `value`) VALUES ('epoch', lower(hex(randomblob(16))));
