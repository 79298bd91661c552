-- Parked DTLS sessions found by source address too (CLU-3): a record
-- without a Connection ID that no node knows is looked up by the address
-- it came from; parked (Unix ns) picks the session parked last there.
ALTER TABLE lwm2m_parked ADD COLUMN addr text COLLATE "C";
ALTER TABLE lwm2m_parked ADD COLUMN parked bigint;
CREATE INDEX lwm2m_parked_addr ON lwm2m_parked (addr, parked DESC) WHERE addr IS NOT NULL;
