-- Create the todo table.
-- depends:
CREATE TABLE todo (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    text varchar(500) NOT NULL CHECK (char_length(text) BETWEEN 1 AND 500),
    done boolean NOT NULL DEFAULT false,
    created timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX todo_created_idx ON todo (created DESC);
