-- Drop the todo table.
DROP TABLE todo;
