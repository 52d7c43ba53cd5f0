-- Why a job waits. Each instance's heartbeat carries what its in-flight work is waiting for
-- (a vendor's limit, a GPU, a credential), kept on its row until the next heartbeat replaces
-- it; GET /jobs/{id} reads the live instances' waits for the job.
ALTER TABLE workers ADD COLUMN IF NOT EXISTS waits JSONB NOT NULL DEFAULT '[]'::jsonb;

-- What each shared rate budget is, for the people watching it: a label and the limit and
-- window its users take grants under (the grants themselves say only how many are counting).
ALTER TABLE rate_budgets ADD COLUMN IF NOT EXISTS label TEXT;
ALTER TABLE rate_budgets ADD COLUMN IF NOT EXISTS lim INTEGER;
ALTER TABLE rate_budgets ADD COLUMN IF NOT EXISTS window_s DOUBLE PRECISION;
