-- LwM2M state that outlives a restart (issue 20 item 9, LWM-14).
--
-- DTLS sessions kept for resumption by session ID: one row per session,
-- written is the Unix ns of the last write; rows older than the TTL are
-- not returned and are deleted by the next writes (oldest first, by the
-- index) or by Prune. Values hold master secrets.
CREATE TABLE dtls_sessions (
	id      bytea PRIMARY KEY,
	written bigint NOT NULL,
	value   bytea NOT NULL
);
CREATE INDEX dtls_sessions_written ON dtls_sessions (written);

-- Registrations by endpoint; expires (Unix ns) for inspection and pruning.
CREATE TABLE lwm2m_registrations (
	endpoint text COLLATE "C" PRIMARY KEY,
	expires  bigint,
	rec      bytea NOT NULL
);

-- Parked DTLS sessions by endpoint, found by Connection ID too. rec holds
-- session keys.
CREATE TABLE lwm2m_parked (
	endpoint text COLLATE "C" PRIMARY KEY,
	cid      bytea,
	rec      bytea NOT NULL
);
CREATE INDEX lwm2m_parked_cid ON lwm2m_parked (cid) WHERE cid IS NOT NULL;
