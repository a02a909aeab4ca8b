-- The list page's keyset order, newest first: (created, id) DESC. One index serves every page
-- (LIMIT from a cursor, no sort), built without blocking writes; it replaces the index on created.
-- depends: 0001.create-todo
-- transactional: false
CREATE INDEX CONCURRENTLY IF NOT EXISTS todo_created_id_idx ON todo (created DESC, id DESC);
DROP INDEX CONCURRENTLY IF EXISTS todo_created_idx;
