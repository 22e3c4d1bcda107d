-- portcullis 0006: keys for HTTP Message Signatures (RFC 9421) and the
-- consumers and tokens of OAuth 1.0a (RFC 5849). Public keys are stored as
-- PEM text; every shared secret (HMAC keys, consumer and token secrets) is
-- sealed with the secret key, which never enters the database, so a stolen
-- database alone yields no usable secret. OAuth 1.0a verifiers are kept as
-- keyed digests. Rows go with their user (and tokens with their consumer).

CREATE TABLE portcullis_signature_key (
    key_id varchar(255) PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    algorithm varchar(32) NOT NULL,
    key_data text NOT NULL,
    created_at timestamp with time zone NOT NULL
);

CREATE INDEX portcullis_signature_key_user_id ON portcullis_signature_key (user_id);

CREATE TABLE portcullis_oauth1_consumer (
    consumer_key varchar(64) PRIMARY KEY,
    name varchar(255) NOT NULL,
    sealed_secret text NOT NULL,
    rsa_public_key text NULL,
    callback varchar(2048) NULL,
    created_at timestamp with time zone NOT NULL
);

CREATE TABLE portcullis_oauth1_token (
    token varchar(64) PRIMARY KEY,
    consumer_key varchar(64) NOT NULL
        REFERENCES portcullis_oauth1_consumer (consumer_key) ON DELETE CASCADE,
    user_id bigint NULL REFERENCES auth_user (id) ON DELETE CASCADE,
    kind varchar(16) NOT NULL,
    sealed_secret text NOT NULL,
    callback varchar(2048) NULL,
    verifier_digest varchar(128) NULL,
    created_at timestamp with time zone NOT NULL,
    expires_at timestamp with time zone NULL
);

CREATE INDEX portcullis_oauth1_token_user_id ON portcullis_oauth1_token (user_id);
CREATE INDEX portcullis_oauth1_token_consumer_key ON portcullis_oauth1_token (consumer_key);
