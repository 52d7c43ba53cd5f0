-- The resolution each product's art prints at (the lowest over its print areas).
ALTER TABLE products ADD COLUMN IF NOT EXISTS print_dpi REAL;
