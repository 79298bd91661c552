-- 0002: MQTT devices (MQT-1). A device registered with security SECRET
-- keeps the salted hash of its secret here; NULL for every other device.

ALTER TABLE devices ADD COLUMN secret_hash bytea;
