-- A priority given as a number (the seed's 1-10): shown as given, and it orders jobs within their
-- band. NULL when the job named its band.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS priority_level INTEGER
    CHECK (priority_level BETWEEN 1 AND 10);
