-- Naive order placement for pgbench, the baseline of bench/orders.py: one statement per
-- round trip inside BEGIN/COMMIT, so the stock row locked by the first UPDATE stays locked
-- for four more round trips and the commit. Run with -M prepared and
--   -D wh=<WH1 store id> -D pmin=<first product id> -D pmax=<last product id>
-- (pmin = pmax = the id of SKU-00001 for the hot case). Quantity 1 (1000 scaled), price 100.00
-- (10000 scaled), like the HTTP requests of bench/orders.lua.
\set p random(:pmin, :pmax)
BEGIN;
UPDATE stock_levels SET reserved = reserved + 1000, updated_at = now() WHERE product_id = :p AND store_id = :wh AND on_hand - reserved >= 1000 RETURNING on_hand AS on_hand, reserved AS reserved \gset
INSERT INTO orders (id, number, channel, source, fulfillment, status, payment_status, total, currency, customer, hold_expires_at, created_at, updated_at) VALUES (gen_random_uuid()::text, nextval('orders_number_seq'), 'online', 'order', 'delivery', 'placed', 'unpaid', 10000, 'RUB', '{}', now() + interval '30 minutes', now(), now()) RETURNING id AS oid \gset
INSERT INTO order_lines (order_id, line_no, product_id, quantity, price) VALUES (:oid, 1, :p, 1000, 10000);
INSERT INTO holds (order_id, line_no, product_id, store_id, quantity, state, created_at, expires_at) VALUES (:oid, 1, :p, :wh, 1000, 'active', now(), now() + interval '30 minutes');
INSERT INTO outbox_events (type, aggregate_type, aggregate_id, payload, created_at) VALUES ('stock.changed', 'stock', CAST(:p AS integer)::text || chr(58) || CAST(:wh AS integer)::text, json_build_object('product_id', CAST(:p AS integer), 'store_id', CAST(:wh AS integer), 'on_hand', trim_scale(CAST(:on_hand AS bigint) / 1000.0)::text, 'reserved', trim_scale(CAST(:reserved AS bigint) / 1000.0)::text, 'available', trim_scale((CAST(:on_hand AS bigint) - CAST(:reserved AS bigint)) / 1000.0)::text, 'reason', 'hold', 'document_type', 'order', 'document_id', CAST(:oid AS text)), now());
COMMIT;
