-- 0005: the application that owns each device (APP-3). '' is no owner: a
-- device registered before ownership, which the platform assigns when it
-- opens the database.

ALTER TABLE devices ADD COLUMN app_id text NOT NULL DEFAULT '';
CREATE INDEX devices_app_id ON devices (app_id, id);
