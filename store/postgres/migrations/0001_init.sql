-- 0001: every table of the Doze stores. Times are Unix nanoseconds
-- (bigint, NULL for "none"); keys compare bytewise (COLLATE "C"), as
-- bbolt's keys do, so both stores return the same order.

CREATE TABLE devices (
	id                text COLLATE "C" PRIMARY KEY,
	node_key          text COLLATE "C" NOT NULL CONSTRAINT devices_node_key_key UNIQUE,
	node_id           text NOT NULL,
	verify_code       text NOT NULL,
	psk               bytea,
	no_security       boolean NOT NULL,
	manufacturer_id   text COLLATE "C" NOT NULL,
	manufacturer_name text NOT NULL,
	device_type       text COLLATE "C" NOT NULL,
	model             text COLLATE "C" NOT NULL,
	protocol_type     text NOT NULL,
	name              text NOT NULL,
	sw_version        text NOT NULL,
	fw_version        text NOT NULL,
	mode              text NOT NULL,
	gateway_id        text COLLATE "C" CONSTRAINT devices_gateway_fkey REFERENCES devices (id),
	node_type         text COLLATE "C" NOT NULL,
	groups            text[] COLLATE "C" NOT NULL,
	status            text COLLATE "C" NOT NULL,
	timeout_ns        bigint NOT NULL,
	bound             boolean NOT NULL,
	connected         boolean NOT NULL,
	created_at        bigint,
	last_modified     bigint,
	last_seen         bigint,
	disconnected_at   bigint,
	deadline          bigint
);
CREATE INDEX devices_status ON devices (status, id);
CREATE INDEX devices_product ON devices (manufacturer_id, model, id);
CREATE INDEX devices_gateway ON devices (gateway_id, id) WHERE gateway_id IS NOT NULL;
CREATE INDEX devices_groups ON devices USING gin (groups);
CREATE INDEX devices_deadline ON devices (deadline) WHERE deadline IS NOT NULL;

CREATE TABLE device_groups (
	id          text COLLATE "C" PRIMARY KEY,
	name        text COLLATE "C" NOT NULL CONSTRAINT device_groups_name_key UNIQUE,
	description text NOT NULL,
	created_at  bigint
);

-- Commands: rec is the whole command as JSON (the layout of the bbolt
-- store's record); the other columns are what the queries need. due is
-- set only while the command is open and has a due time.
CREATE TABLE commands (
	device_id   text COLLATE "C" NOT NULL,
	seq         bigint NOT NULL,
	id          text COLLATE "C" NOT NULL CONSTRAINT commands_id_key UNIQUE,
	status      smallint NOT NULL,
	open        boolean NOT NULL,
	due         bigint,
	executed    bigint,
	rec         bytea NOT NULL,
	claim_owner text,
	claim_until bigint,
	PRIMARY KEY (device_id, seq)
);
CREATE INDEX commands_open ON commands (device_id, seq) WHERE open;
CREATE INDEX commands_due ON commands (due, device_id, seq) WHERE due IS NOT NULL;
CREATE INDEX commands_ended ON commands (executed) WHERE NOT open;

CREATE TABLE command_last (
	device_id text COLLATE "C" PRIMARY KEY,
	seq       bigint NOT NULL
);
CREATE TABLE command_modes (
	device_id text COLLATE "C" PRIMARY KEY,
	rec       bytea NOT NULL
);
CREATE TABLE command_tasks (
	id  text COLLATE "C" PRIMARY KEY,
	rec bytea NOT NULL
);

CREATE TABLE push_subscriptions (
	id           text COLLATE "C" PRIMARY KEY,
	app_id       text COLLATE "C" NOT NULL,
	notify_type  text COLLATE "C" NOT NULL,
	callback_url text NOT NULL,
	secret       text NOT NULL,
	created      bigint
);
CREATE INDEX push_subscriptions_app ON push_subscriptions (app_id, notify_type, id);

-- The outbox is keyed by a hash of the URL (a URL may be longer than a
-- btree entry allows) and the message id.
CREATE TABLE push_messages (
	url_hash        bytea NOT NULL,
	id              text COLLATE "C" NOT NULL,
	url             text COLLATE "C" NOT NULL,
	body            bytea NOT NULL,
	secret          text NOT NULL,
	notify_type     text NOT NULL,
	subscription_id text NOT NULL,
	created         bigint NOT NULL,
	expires         bigint NOT NULL,
	claim_owner     text,
	claim_until     bigint,
	PRIMARY KEY (url_hash, id)
);

CREATE TABLE ota_packages (
	id  text COLLATE "C" PRIMARY KEY,
	rec bytea NOT NULL
);
CREATE TABLE ota_tasks (
	id  text COLLATE "C" PRIMARY KEY,
	rec bytea NOT NULL
);
CREATE TABLE ota_subtasks (
	task_id     text COLLATE "C" NOT NULL CONSTRAINT ota_subtasks_task_fkey REFERENCES ota_tasks (id) ON DELETE CASCADE,
	device_id   text COLLATE "C" NOT NULL,
	final       boolean NOT NULL,
	deadline    bigint,
	rec         bytea NOT NULL,
	claim_owner text,
	claim_until bigint,
	PRIMARY KEY (task_id, device_id)
);
CREATE INDEX ota_subtasks_deadline ON ota_subtasks (deadline) WHERE NOT final AND deadline IS NOT NULL;

CREATE TABLE observations (
	token    text COLLATE "C" PRIMARY KEY,
	endpoint text COLLATE "C" NOT NULL,
	created  bigint,
	rec      bytea NOT NULL
);
CREATE INDEX observations_endpoint ON observations (endpoint, created, token);

-- History: one row per service per report. Queries name one device and
-- walk (device_id, ts) backwards; Prune deletes by ts, which the BRIN
-- index finds cheaply because rows arrive in time order.
CREATE TABLE history (
	seq        bigint GENERATED ALWAYS AS IDENTITY,
	device_id  text COLLATE "C" NOT NULL,
	ts         bigint NOT NULL,
	gateway_id text NOT NULL,
	app_id     text NOT NULL,
	service_id text NOT NULL,
	data       bytea NOT NULL
);
CREATE INDEX history_device_ts ON history (device_id, ts DESC, seq DESC);
CREATE INDEX history_ts ON history USING brin (ts);

CREATE TABLE shadows (
	device_id text COLLATE "C" PRIMARY KEY,
	rec       bytea NOT NULL
);

CREATE TABLE inbox (
	seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	rec bytea NOT NULL
);

CREATE TABLE products (
	manufacturer_id text COLLATE "C" NOT NULL,
	model           text COLLATE "C" NOT NULL,
	rec             bytea NOT NULL,
	PRIMARY KEY (manufacturer_id, model)
);
