-- portcullis 0006: keys for HTTP Message Signatures (RFC 9421) and the
-- consumers and tokens of OAuth 1.0a (RFC 5849). Public keys are stored as
-- PEM text; every shared secret (HMAC keys, consumer and token secrets) is
-- sealed with the secret key, which never enters the database, so a stolen
-- database alone yields no usable secret. OAuth 1.0a verifiers are kept as
-- keyed digests. Rows go with their user (and tokens with their consumer).
-- Identifiers are VARBINARY so they compare exactly, trailing spaces and
-- case included.

CREATE TABLE portcullis_signature_key (
    key_id varbinary(1020) NOT NULL PRIMARY KEY,
    user_id bigint NOT NULL,
    algorithm varchar(32) NOT NULL,
    key_data text NOT NULL,
    created_at datetime(6) NOT NULL,
    INDEX portcullis_signature_key_user_id (user_id),
    CONSTRAINT portcullis_signature_key_user_id_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE portcullis_oauth1_consumer (
    consumer_key varbinary(64) NOT NULL PRIMARY KEY,
    name varchar(255) NOT NULL,
    sealed_secret text NOT NULL,
    rsa_public_key text NULL,
    callback varchar(2048) NULL,
    created_at datetime(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE portcullis_oauth1_token (
    token varbinary(64) NOT NULL PRIMARY KEY,
    consumer_key varbinary(64) NOT NULL,
    user_id bigint NULL,
    kind varchar(16) NOT NULL,
    sealed_secret text NOT NULL,
    callback varchar(2048) NULL,
    verifier_digest varchar(128) NULL,
    created_at datetime(6) NOT NULL,
    expires_at datetime(6) NULL,
    INDEX portcullis_oauth1_token_user_id (user_id),
    INDEX portcullis_oauth1_token_consumer_key (consumer_key),
    CONSTRAINT portcullis_oauth1_token_user_id_fk
        FOREIGN KEY (user_id) REFERENCES auth_user (id) ON DELETE CASCADE,
    CONSTRAINT portcullis_oauth1_token_consumer_key_fk
        FOREIGN KEY (consumer_key) REFERENCES portcullis_oauth1_consumer (consumer_key) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
