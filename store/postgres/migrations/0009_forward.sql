-- Forwarding rules and their outbox (package forward), so that rules work
-- on a shared database and every node forwards reports (CLU-1).
--
-- A rule is one row: rec is its JSON record (the bbolt store's encoding),
-- app_id is what Rules filters on.
CREATE TABLE forward_rules (
	id     text COLLATE "C" PRIMARY KEY,
	app_id text COLLATE "C" NOT NULL,
	rec    bytea NOT NULL
);
CREATE INDEX forward_rules_app ON forward_rules (app_id, id);

-- The forwarding outbox has the push outbox's layout (the same statements
-- serve both), leases included: each forwarding message is delivered by
-- the node that claimed it. URLs are rule://<rule id>/<target index>.
CREATE TABLE forward_messages (
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
CREATE INDEX forward_messages_claim_owner ON forward_messages (claim_owner) WHERE claim_owner IS NOT NULL;
