-- Claude tokens each job's briefs cost (a cost metric; cache reads are billed at a tenth).
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS claude_input_tokens BIGINT;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS claude_output_tokens BIGINT;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS claude_cache_read_tokens BIGINT;
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS claude_cache_write_tokens BIGINT;
