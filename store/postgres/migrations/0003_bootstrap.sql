-- 0003: the bootstrap configuration of each device (LWM-13), keyed by its
-- normalized nodeId, the record as JSON in the bbolt store's encoding.

CREATE TABLE bootstrap (
	node_id text COLLATE "C" PRIMARY KEY,
	rec     bytea NOT NULL
);
