-- What sells (issue 28, part 4): Printify's orders, as its order:created / order:updated
-- webhooks tell them, folded by the monitor.
--
-- One row per Printify order, holding its LATEST state: the webhook calls of one order may be
-- delivered twice or out of order (a retried order:created after an order:updated), so each
-- call carries a version (the call's time, then how far along its status is, then its id) and
-- only a newer call changes the row. `lines_known`: the order's lines were read from a call
-- that had them (an order:updated may carry the status alone).
CREATE TABLE IF NOT EXISTS orders (
    order_id             TEXT PRIMARY KEY,
    shop_id              TEXT,
    status               TEXT NOT NULL,
    -- When the order was placed (the order's created_at; else the earliest call seen).
    placed_at            TIMESTAMPTZ NOT NULL,
    total_price_cents    BIGINT,
    total_shipping_cents BIGINT,
    version_at           TIMESTAMPTZ NOT NULL,
    version_rank         SMALLINT NOT NULL,
    version_event        TEXT NOT NULL,
    lines_known          BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS orders_placed_idx ON orders (placed_at DESC);

-- One row per line of an order, as Printify reported it. The line is mapped to OUR product
-- when read (products.product_id), not when folded, so an order folded before its product's
-- creation is still attributed to its design; a product we never made stays "other".
-- price_cents: what the buyer paid for one unit (metadata.price); cost_cents: what Printify
-- charges for one unit (the line's cost), NULL when it did not say (our recorded cost is used).
CREATE TABLE IF NOT EXISTS order_lines (
    order_id            TEXT NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no             INTEGER NOT NULL,
    product_id          TEXT NOT NULL,
    variant_id          BIGINT,
    quantity            INTEGER NOT NULL CHECK (quantity > 0),
    price_cents         BIGINT,
    cost_cents          BIGINT,
    shipping_cost_cents BIGINT,
    status              TEXT,
    PRIMARY KEY (order_id, line_no)
);
CREATE INDEX IF NOT EXISTS order_lines_product_idx ON order_lines (product_id);

-- Lines are mapped to products by Printify's product id.
CREATE INDEX IF NOT EXISTS products_product_id_idx ON products (product_id);
