-- Holds both projectors' writes (readers go on) while the swap is checked.
-- Live tables first, in the order an apply writes them.
LOCK TABLE query.order_views, query.order_timeline, {shadow_views}, {shadow_timeline}
    IN SHARE MODE
