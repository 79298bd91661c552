-- Named leases: one node at a time does a piece of shared work (the
-- registry's deadline sweep); "until" is Unix nanoseconds by the owner's
-- clock. The index serves the push engine renewing its claims.
CREATE TABLE leases (
	name  text COLLATE "C" PRIMARY KEY,
	owner text COLLATE "C" NOT NULL,
	until bigint NOT NULL
);
CREATE INDEX push_messages_claim_owner ON push_messages (claim_owner) WHERE claim_owner IS NOT NULL;
