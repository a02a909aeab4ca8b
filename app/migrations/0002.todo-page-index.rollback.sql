-- transactional: false
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_created_idx ON todo (created DESC);
DROP INDEX CONCURRENTLY IF EXISTS todo_created_id_idx;
