-- 0006: the application that owns each resource (APP-3).
--
-- A device's owner is its app_id; '' is no owner: a device registered
-- before ownership, which the platform gives its default application
-- when it opens the database.
ALTER TABLE devices ADD COLUMN app_id text COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX devices_app_id ON devices (app_id, id);

-- The owners of the resources that are not devices (groups, products,
-- upgrade packages and tasks), by kind and id, both opaque here.
CREATE TABLE resource_owners (
	kind   text COLLATE "C" NOT NULL,
	id     text COLLATE "C" NOT NULL,
	app_id text COLLATE "C" NOT NULL,
	PRIMARY KEY (kind, id)
);
CREATE INDEX resource_owners_app ON resource_owners (app_id, kind, id);

-- One-time migrations of the platform that have run, by name.
CREATE TABLE platform_migrations (
	name text COLLATE "C" PRIMARY KEY
);
