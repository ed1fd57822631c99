-- Intentionally empty on SQLite: its planner uses indexes without table statistics. The
-- migration exists so both backends carry the same migration names in the same order.
SELECT 1;
