-- Printify's mockup images of each product (its default first), shown in GET /jobs/{id}.
ALTER TABLE products ADD COLUMN IF NOT EXISTS mockups TEXT[];
