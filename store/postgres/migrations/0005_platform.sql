-- What the platform keeps besides the Stores of the domain packages, so
-- that several platform nodes can share one database (CLU-1).
--
-- Queued LwM2M operations (LWM-11) follow the command discipline and are
-- kept exactly as commands are, in tables of their own: an operation never
-- shows up among a device's commands, nor a command among its operations,
-- and each has its own sequence numbers (the bbolt store's "lwm2mops"
-- bucket).
CREATE TABLE lwm2m_ops (
	device_id   text COLLATE "C" NOT NULL,
	seq         bigint NOT NULL,
	id          text COLLATE "C" NOT NULL CONSTRAINT lwm2m_ops_id_key UNIQUE,
	status      smallint NOT NULL,
	open        boolean NOT NULL,
	due         bigint,
	executed    bigint,
	rec         bytea NOT NULL,
	claim_owner text,
	claim_until bigint,
	PRIMARY KEY (device_id, seq)
);
CREATE INDEX lwm2m_ops_open ON lwm2m_ops (device_id, seq) WHERE open;
CREATE INDEX lwm2m_ops_due ON lwm2m_ops (due, device_id, seq) WHERE due IS NOT NULL;
CREATE INDEX lwm2m_ops_ended ON lwm2m_ops (executed) WHERE NOT open;

CREATE TABLE lwm2m_op_last (
	device_id text COLLATE "C" PRIMARY KEY,
	seq       bigint NOT NULL
);
CREATE TABLE lwm2m_op_modes (
	device_id text COLLATE "C" PRIMARY KEY,
	rec       bytea NOT NULL
);
CREATE TABLE lwm2m_op_tasks (
	id  text COLLATE "C" PRIMARY KEY,
	rec bytea NOT NULL
);

-- The device log (APP-2): the last entries of each device, newest by seq.
-- seq is one sequence for every device, so nodes appending at once need
-- no per-device counter; each Append prunes the device to its last N.
CREATE TABLE device_log (
	device_id text COLLATE "C" NOT NULL,
	seq       bigint GENERATED ALWAYS AS IDENTITY,
	rec       bytea NOT NULL,
	PRIMARY KEY (device_id, seq)
);

-- The platform's applications (APP-1, APP-3), one row each: rec is the
-- platform's own JSON record of the app (secret included), opaque here.
CREATE TABLE platform_apps (
	id  text COLLATE "C" PRIMARY KEY,
	rec bytea NOT NULL
);
